/**
 * The operator's second week (issue 18), TLS in the wrong mode, through the real binary
 * (bin/dequeue.js): implicit TLS against a plain port, STARTTLS against a port that speaks TLS
 * from the first byte. Each gets the exit status the docs promise and one line that says which
 * mode to use instead, whole in the status table. The rest of the issue: operator.test.ts.
 */
import { mkdtemp, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createMailDirSink } from '../../cli/adapters/mail-dir-sink';
import { ScriptedMailServer } from '../../peers/scripted-mail-server';
import { ScriptedProvider, testCert } from '../../peers/scripted-provider';
import { message, store } from './delivery/stored-mail';
import { dir, file, lines, plain, silent, useOperatorBench } from './operator-bench';
import { runDequeue } from '../support/dequeue-process';

useOperatorBench('dequeue-operator-tls-');

const dequeue = (args: string[]) => runDequeue(args, 60_000);

describe('TLS in the wrong mode (item 6) and the status table (item 7)', () => {
  it('implicit TLS against a plain port says what to use instead, and the status table shows all of it', async () => {
    const config = await file('config.json', {
      targets: [
        {
          name: 'isp',
          host: '127.0.0.1',
          port: plain.port,
          tls: 'implicit',
          command: 'ETRN a.test',
        },
      ],
    });
    const state = join(await mkdtemp(join(dir, 'state-')), 'state.json');
    const r = await dequeue(['--config', config, '--state', state]);
    expect(r.status).toBe(1);
    const hint = `TLS with 127.0.0.1:${plain.port} failed: the server speaks plain SMTP on this port, not TLS from the first byte: use STARTTLS here ("tls": "opportunistic" or "required"), or the port of its implicit TLS (465)`;
    expect(lines(r.stdout)).toEqual([
      expect.stringMatching(/^isp {18}config-error {6}cycle 1, \d+ ms$/),
      `    error: ${hint}`,
    ]);

    const status = await dequeue(['status', '--state', state]);
    expect(status.status).toBe(1);
    const row = lines(status.stdout)[1]!;
    expect(row).toMatch(/^isp +FAILING +cycle 1, /);
    // The whole error, never cut: the fix is at its end.
    expect(row).toMatch(/ 1 cycle in a row since \S+: TLS with /);
    expect(row.endsWith(`: ${hint}`)).toBe(true);
  });

  it('an error longer than the status keeps loses its middle between words, never the fix at its end', async () => {
    const account = { username: 'u', password: 'p' };
    const wordy = await new ScriptedProvider({
      account,
      extensions: ['ATRN', 'AUTH PLAIN'],
      onLine: (line, conn) => {
        if (!/^ATRN\b/i.test(line)) return false;
        conn.reply(`450 ${'this account may not release mail for that domain '.repeat(18).trim()}`);
        return true;
      },
    }).start();
    try {
      const config = await file('config.json', {
        targets: [
          {
            name: 'odmr',
            host: '127.0.0.1',
            port: wordy.port,
            tls: 'none',
            command: 'ATRN',
            auth: { secretId: 'odmr' },
            allowPlaintextAuth: true,
            mail: { domains: ['customer.test'] },
          },
        ],
      });
      const secrets = await file('secrets.json', { odmr: account });
      const home = await mkdtemp(join(dir, 'state-'));
      const state = join(home, 'state.json');
      const run = ['--config', config, '--secrets', secrets, '--state', state];
      const r = await dequeue([...run, '--mail-dir', join(home, 'mail')]);
      expect(r.stderr).toBe('dequeue: cycle 1: 1 permanent-failure\n');
      expect(r.status).toBe(1);

      const status = await dequeue(['status', '--state', state]);
      expect(status.status).toBe(1);
      const row = lines(status.stdout)[1]!;
      expect(row).toMatch(
        / 1 cycle in a row since \S+: 127\.0\.0\.1:\d+ refused ATRN \(450, "ATRN request refused" in RFC 2645\): this account may not .* … (\w+ )+domain; ask the provider which domains this account may release$/,
      );
    } finally {
      await wordy.stop();
    }
  });
});

describe('the other wrong TLS mode (beyond the list)', () => {
  it('a server that never greets gets the hint that its port may speak TLS from the first byte', async () => {
    const config = await file('config.json', {
      targets: [
        {
          name: 'isp',
          host: '127.0.0.1',
          port: silent.port,
          tls: 'opportunistic',
          command: 'ETRN a.test',
          timeoutSeconds: 1,
        },
      ],
    });
    const r = await dequeue(['--config', config, '--json']);
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({
      outcome: 'temporary-failure',
      error: `no complete reply from 127.0.0.1:${silent.port} to the greeting within 1 s: if this port speaks TLS from the first byte (465), use "tls": "implicit"`,
    });
  });

  it('a raw (FINGER-style) target with implicit TLS on a plain port is told "tls": "none", not STARTTLS', async () => {
    const config = await file('config.json', {
      targets: [
        {
          name: 'finger',
          host: '127.0.0.1',
          port: plain.port,
          protocol: 'raw',
          tls: 'implicit',
          command: 'customer',
        },
      ],
    });
    const r = await dequeue(['--config', config, '--json']);
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({
      outcome: 'config-error',
      error: `TLS with 127.0.0.1:${plain.port} failed: the server answers in plain text on this port, not TLS from the first byte: "protocol": "raw" has no STARTTLS, so use "tls": "none" here, or the port of its implicit TLS`,
    });
  });
});

describe('deliver in the wrong TLS mode (item 6, for deliver)', () => {
  /** One stored message delivered with `args`; the message, the lines, the status. */
  async function deliver(...args: string[]) {
    const mailDir = await mkdtemp(join(dir, 'mail-'));
    await store(createMailDirSink(mailDir), 'isp', [message(1)]);
    const r = await dequeue(['deliver', '--mail-dir', mailDir, ...args]);
    const kept = (await readdir(join(mailDir, 'isp'))).filter((f) => f.endsWith('.eml'));
    return { r, kept };
  }

  it('implicit TLS (smtps:// or --tls implicit) against a plain port: one line naming the flags to use, exit 1, the mail kept', async () => {
    const server = await new ScriptedMailServer().start();
    try {
      for (const args of [
        ['--to', `smtps://127.0.0.1:${server.port}`],
        ['--to', `smtp://127.0.0.1:${server.port}`, '--tls', 'implicit'],
      ]) {
        const { r, kept } = await deliver(...args);
        expect(r.status).toBe(1);
        expect(lines(r.stdout)).toEqual([
          expect.stringMatching(/^deferred {2}isp\/\S+: <user1@customer\.test> - \(/),
        ]);
        expect(
          lines(r.stdout)[0]!.endsWith(
            `(TLS with 127.0.0.1:${server.port} failed: the server speaks plain SMTP on this port, not TLS from the first byte: use STARTTLS here (smtp:// with --tls opportunistic or required), or the port of its implicit TLS (465))`,
          ),
        ).toBe(true);
        expect(r.stdout + r.stderr).not.toMatch(/\\n|SSL routines|wrong version number/);
        expect(kept).toHaveLength(1);
      }
      expect(server.accepted).toHaveLength(0);
    } finally {
      await server.stop();
    }
  });

  it('STARTTLS (smtp://, opportunistic) against a port that speaks TLS from the first byte: the line says smtps://', async () => {
    const server = await new ScriptedMailServer({
      tls: testCert('localhost'),
      implicitTls: true,
    }).start();
    try {
      const { r, kept } = await deliver(
        '--to',
        `smtp://127.0.0.1:${server.port}`,
        '--tls',
        'opportunistic',
        '--timeout',
        '1',
      );
      expect(r.status).toBe(1);
      const [line, ...more] = lines(r.stdout);
      expect(more).toEqual([]);
      expect(line).toMatch(/^deferred {2}isp\/\S+: <user1@customer\.test> - \(/);
      expect(
        line!.endsWith(
          `(no complete reply from smtp://127.0.0.1:${server.port} to the greeting within 1 s: if this port speaks TLS from the first byte (465), use smtps:// (or --tls implicit))`,
        ),
      ).toBe(true);
      expect(kept).toHaveLength(1);
      expect(server.accepted).toHaveLength(0);
    } finally {
      await server.stop();
    }
  });
});
