/**
 * Against a real ATRN provider: INetSim (Debian's `inetsim`). The CLI, as a user runs it (`npx tsx cli/entry.ts`, what `npx dequeue` runs), signals
 * ATRN, and INetSim turns the connection around and delivers its canned message, which must land
 * in --mail-dir complete, with its envelope, despite INetSim's stray empty line after the dot.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithInetSim, startInetSim, type InetSim } from '../servers/inetsim';
import { providerBytes, readMailDir, tempDir } from '../core/odmr/odmr-fixtures';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');

describeWithInetSim('ODMR against INetSim, through the CLI', () => {
  let inetsim: InetSim;
  beforeAll(async () => {
    inetsim = await startInetSim();
  });
  afterAll(async () => {
    await inetsim?.stop();
  });

  /** The CLI as a user runs it, one ATRN target at INetSim; its JSON result and the mail directory. */
  async function pull(target: Record<string, unknown>) {
    const tmp = await tempDir('dequeue-inetsim-cli-');
    try {
      const config = join(tmp.path, 'dequeue.json');
      const secrets = join(tmp.path, 'secrets.json');
      const mailDir = join(tmp.path, 'mail');
      await writeFile(
        config,
        JSON.stringify({
          settings: { helloName: 'mx.customer.test' },
          targets: [
            {
              name: 'inetsim',
              host: '127.0.0.1',
              port: inetsim.port,
              tls: 'none',
              auth: { secretId: 'inetsim', mechanism: 'CRAM-MD5' },
              command: 'ATRN',
              mail: { domains: ['foo.org'] },
              timeoutSeconds: 20,
              ...target,
            },
          ],
        }),
      );
      await writeFile(
        secrets,
        JSON.stringify({ inetsim: { username: 'customer', password: 'anything' } }),
      );
      // Exit status 1 (a target failed) still prints the result.
      const { stdout, stderr } = await run(
        'npx',
        [
          'tsx',
          'cli/entry.ts',
          '--config',
          config,
          '--secrets',
          secrets,
          '--mail-dir',
          mailDir,
          '--json',
          '--verbose',
        ],
        {
          cwd: ROOT,
          timeout: 60_000,
        },
      ).catch((e: { code?: number; stdout?: string; stderr?: string }) => {
        if (e.code !== 1) throw e;
        return { stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
      });
      return {
        result: JSON.parse(stdout.trim()),
        stderr,
        mail: await readMailDir(mailDir, 'inetsim'),
      };
    } finally {
      await tmp.remove();
    }
  }

  /** INetSim's canned message, as it sends it, with its envelope. */
  function expectCannedMessage(mail: Awaited<ReturnType<typeof pull>>['mail'], tls: boolean): void {
    expect(mail.others).toEqual([]);
    expect(mail.stored).toHaveLength(1);
    // INetSim writes "Subject: ...\r\n", "\r\n", "This is ...\r\n", "\r\n", ".\r\n", "\r\n".
    expect(providerBytes(mail.stored[0]!).toString('latin1')).toBe(
      'Subject: INetSim test mail\r\n\r\nThis is an INetSim test mail...\r\n\r\n',
    );
    expect(mail.stored[0]!.envelope).toMatchObject({
      mailFrom: 'foo@bar.org',
      rcptTo: ['bar@foo.org'],
      target: 'inetsim',
      tls,
    });
  }

  it('pulls the held message into --mail-dir, byte for byte as INetSim sent it', async () => {
    const { result, stderr, mail } = await pull({ tls: 'none' });
    expect(result, stderr).toMatchObject({
      target: 'inetsim',
      outcome: 'signalled',
      messages: 1,
      error: null,
    });
    expect(result.replies.at(-1)).toMatchObject({ command: 'ATRN', code: 250 });
    expectCannedMessage(mail, false);
    // The stray empty line got no reply: INetSim read our 221 to its QUIT.
    expect(await inetsim.serviceLog()).toMatch(/recv: 221 /);
    expect(stderr).not.toMatch(/S: 5\d\d /);
  }, 90_000);

  it("ATRN through STARTTLS (tls required, INetSim's self-signed certificate): the turn happens inside TLS and the message is stored", async () => {
    const { result, stderr, mail } = await pull({ tls: 'required', tlsVerify: false });
    expect(result, stderr).toMatchObject({
      target: 'inetsim',
      outcome: 'signalled',
      messages: 1,
      error: null,
    });
    expect(stderr).toMatch(/C: STARTTLS/);
    expectCannedMessage(mail, true);
    expect(mail.stored[0]!.message.toString('latin1')).toMatch(
      /^Received: from provider\.inetsim\.test [^;]* with ESMTPS id /,
    );
  }, 90_000);

  it("ATRN over implicit TLS (INetSim's smtps service): the message is stored", async () => {
    const { result, stderr, mail } = await pull({
      port: inetsim.smtpsPort,
      tls: 'implicit',
      tlsVerify: false,
    });
    expect(result, stderr).toMatchObject({
      target: 'inetsim',
      outcome: 'signalled',
      messages: 1,
      error: null,
    });
    expect(stderr).not.toMatch(/C: STARTTLS/);
    expectCannedMessage(mail, true);
  }, 90_000);

  it("a verified TLS connection to INetSim's self-signed certificate is refused before any credential is sent", async () => {
    const { result, stderr } = await pull({ tls: 'required' });
    expect(result, stderr).toMatchObject({ target: 'inetsim', messages: 0 });
    expect(result.outcome).toMatch(/failure$/);
    expect(JSON.stringify(result.error)).toMatch(/certificate/i);
    expect(stderr).not.toMatch(/C: AUTH/);
  }, 90_000);
});
