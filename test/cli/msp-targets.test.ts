/**
 * An MSP serves many customers from one configuration: each ATRN target's `mail` overrides
 * `settings.mail` field by field (its own relay, its own limits) and its `helloName` the
 * settings' one. Through the CLI, as a user runs it, with one provider and one relay per customer.
 * Also: `--dry-run` with an ATRN target checks the mail directory and sends nothing.
 */
import { mkdtemp, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfigDocument } from '../../lambda/core/config';
import { ACCOUNT, AtrnProvider } from '../../peers/atrn-provider';
import { ScriptedMailServer } from '../../peers/scripted-mail-server';
import { heldMessage } from '../core/odmr/odmr-fixtures';
import { runCli } from '../support/cli-run';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function files(config: unknown) {
  const dir = await mkdtemp(join(tmpdir(), 'dequeue-msp-'));
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  await writeFile(
    join(dir, 'secrets.json'),
    JSON.stringify({ 'dequeue/a': ACCOUNT, 'dequeue/b': ACCOUNT }),
  );
  return { dir, config: join(dir, 'config.json'), secrets: join(dir, 'secrets.json') };
}

const atrn = (name: string, port: number, extra: Record<string, unknown>) => ({
  name,
  host: '127.0.0.1',
  port,
  tls: 'none',
  auth: { secretId: `dequeue/${name}` },
  command: 'ATRN',
  mail: { domains: ['customer.test'] },
  timeoutSeconds: 20,
  ...extra,
});

describe('per-target helloName and mail', () => {
  it("each customer's mail goes to its own relay, with its own limits and its own name", async () => {
    const relayA = await new ScriptedMailServer().start();
    const relayB = await new ScriptedMailServer().start();
    const big = heldMessage(9, 8_000);
    const providerA = await new AtrnProvider({ queue: [heldMessage(1), big] }).start();
    const providerB = await new AtrnProvider({ queue: [heldMessage(2), big] }).start();
    cleanups.push(
      () => relayA.stop(),
      () => relayB.stop(),
      () => providerA.stop(),
      () => providerB.stop(),
    );
    const f = await files({
      settings: {
        helloName: 'mx.msp.test',
        mail: { maxMessageBytes: 1024 * 1024, relay: { host: '127.0.0.1', port: 1 } },
      },
      targets: [
        atrn('a', providerA.port, {
          helloName: 'mx.a.test',
          mail: {
            domains: ['customer.test'],
            relay: { host: '127.0.0.1', port: relayA.port, tls: 'none' },
          },
        }),
        // b keeps the settings' name, gets its own relay and a smaller limit.
        atrn('b', providerB.port, {
          mail: {
            domains: ['customer.test'],
            maxMessageBytes: 4096,
            relay: { host: '127.0.0.1', port: relayB.port, tls: 'none' },
          },
        }),
      ],
    });
    const out = await runCli([
      '--config',
      f.config,
      '--secrets',
      f.secrets,
      '--mail-dir',
      join(f.dir, 'mail'),
      '--json',
    ]);
    await Promise.all([providerA.idle(), providerB.idle()]);
    const [a, b] = out.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .sort((x, y) => (x.target < y.target ? -1 : 1));
    expect(a).toMatchObject({ target: 'a', outcome: 'signalled', messages: 2 });
    // b's limit refuses the big message (552, the provider bounces it); the small one goes through.
    expect(b).toMatchObject({ target: 'b', outcome: 'permanent-failure', messages: 1 });
    expect(b.error).toMatch(/exceeds maxMessageBytes 4096/);
    expect(relayA.accepted.map((m) => m.mailFrom)).toEqual([
      'sender1@origin.test',
      'sender9@origin.test',
    ]);
    expect(relayB.accepted.map((m) => m.mailFrom)).toEqual(['sender2@origin.test']);
    expect(providerA.serverLines).toContain('EHLO mx.a.test');
    expect(providerB.serverLines).toContain('EHLO mx.msp.test');
    expect(relayA.lines).toContain('EHLO mx.a.test');
    expect(relayB.lines).toContain('EHLO mx.msp.test');
  });

  it('target.mail overrides settings.mail field by field', () => {
    const doc = parseConfigDocument(
      {
        settings: {
          mail: { maxMessageBytes: 2048, maxRecipients: 500, relay: { host: 'relay.msp.test' } },
        },
        targets: [
          {
            name: 'c',
            host: 'p.test',
            command: 'ATRN',
            auth: { secretId: 'x' },
            mail: { maxRecipients: 200, domains: ['customer.test'] },
            helloName: 'mx.c.test',
          },
        ],
      },
      'f.json',
    );
    expect(doc.targets[0]).toMatchObject({ helloName: 'mx.c.test', mail: { maxRecipients: 200 } });
    expect(() =>
      parseConfigDocument(
        { targets: [{ name: 'c', host: 'p.test', mail: { maxRecipients: 5 } }] },
        'f.json',
      ),
    ).toThrow(/targets\[0\]\.mail\.maxRecipients: must be at least 100/);
    expect(() =>
      parseConfigDocument(
        { targets: [{ name: 'c', host: 'p.test', helloName: 'not a name' }] },
        'f.json',
      ),
    ).toThrow(/targets\[0\]\.helloName/);
  });
});

describe('--dry-run with an ATRN target', () => {
  it('checks that the mail directory could be used, creates nothing, and sends nothing', async () => {
    const provider = await new AtrnProvider({ queue: [heldMessage(1)] }).start();
    cleanups.push(() => provider.stop());
    const f = await files({ targets: [atrn('a', provider.port, {})] });
    const mailDir = join(f.dir, 'not-yet', 'mail');
    const out = await runCli([
      '--config',
      f.config,
      '--secrets',
      f.secrets,
      '--mail-dir',
      mailDir,
      '--json',
      '--dry-run',
    ]);
    expect(out.status).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({
      target: 'a',
      outcome: 'skipped',
      reason: expect.stringMatching(/would send ATRN .*store the mail it pulls/),
    });
    expect(provider.serverLines).toEqual([]);
    await expect(stat(join(f.dir, 'not-yet'))).rejects.toThrow(/ENOENT/);
  });

  it('a mail directory that cannot be made: exit 2, nothing sent', async () => {
    const provider = await new AtrnProvider({ queue: [heldMessage(1)] }).start();
    cleanups.push(() => provider.stop());
    const f = await files({ targets: [atrn('a', provider.port, {})] });
    const out = await runCli([
      '--config',
      f.config,
      '--secrets',
      f.secrets,
      '--mail-dir',
      join(f.config, 'mail'),
      '--dry-run',
    ]);
    expect(out.status).toBe(2);
    expect(out.stderr).toMatch(/--mail-dir: .*cannot store mail there/);
    expect(provider.serverLines).toEqual([]);
  });
});
