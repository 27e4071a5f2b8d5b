/**
 * `deliver`'s delivery status notifications where a real server cannot show it (docs/bounces.md):
 * a crash between the DSN's 250 and its mark (injected: the mark fails as a killed process's
 * would never be written), the give-up time (an injected clock days ahead), a bounce server that
 * is down, and the flags' mistakes. Scripted servers; test/postfix/dsn.test.ts has a real one.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MailDirStore } from '../../../cli/adapters/mail-dir-store';
import { createMailDirSink } from '../../../cli/adapters/mail-dir-sink';
import type { ClaimedMail, MailStore, StoredRef } from '../../../cli/delivery/mail-store';
import {
  ScriptedMailServer,
  type ScriptedMailServerOptions,
} from '../../../peers/scripted-mail-server';
import { tempDir } from '../../core/odmr/odmr-fixtures';
import { runCli } from '../../support/cli-run';
import { message, store, type StoredMessage } from './stored-mail';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function mailDir(messages: readonly StoredMessage[]) {
  const dir = await tempDir('dequeue-dsn-');
  cleanups.push(dir.remove);
  await store(createMailDirSink(dir.path), 'odmr', messages);
  return dir.path;
}

async function server(options: ScriptedMailServerOptions = {}) {
  const s = await new ScriptedMailServer(options).start();
  cleanups.push(() => s.stop());
  return s;
}

const emls = async (path: string) =>
  (await readdir(path).catch(() => [] as string[])).filter((n) => n.endsWith('.eml')).sort();
const dsnsAt = (s: ScriptedMailServer) => s.accepted.filter((a) => a.mailFrom === '');
const mailAt = (s: ScriptedMailServer) => s.accepted.filter((a) => a.mailFrom !== '');
const deliver = (root: string, port: number, ...more: string[]) => [
  'deliver',
  '--mail-dir',
  root,
  '--to',
  `smtp://127.0.0.1:${port}`,
  '--json',
  ...more,
];

/** The mail directory, with every claim's last mark failing as if the process died before it. */
function crashingBeforeMark(root: string): MailStore {
  const real = new MailDirStore(root);
  const crash = () => Promise.reject(new Error('killed before the mark (injected)'));
  return Object.assign(Object.create(real) as MailDirStore, {
    claim: async (ref: StoredRef): Promise<ClaimedMail | null> => {
      const claim = await real.claim(ref);
      if (!claim) return null;
      return Object.assign(Object.create(claim) as ClaimedMail, {
        failed: crash,
        deferred: crash,
        delivered: crash,
      });
    },
  });
}

describe('deliver: DSNs at least once, and the give-up time', () => {
  it("a crash after the DSN's 250 and before its mark: the next run sends the same DSN once more, and not the message", async () => {
    const m = message(1, { to: ['ok@customer.test', 'nobody@customer.test'] });
    const root = await mailDir([m]);
    const mx = await server({
      rcpt: (a) => (a.startsWith('nobody') ? '550 5.1.1 no such user' : '250 2.1.5 Ok'),
    });

    const crashed = await runCli(deliver(root, mx.port), {
      openMailStore: () => crashingBeforeMark(root),
    });
    expect(crashed.json[0]).toMatchObject({
      outcome: 'deferred',
      error: expect.stringMatching(/killed before the mark/),
      dsn: { outcome: 'sent' },
    });
    const firstId = crashed.json[0].dsn.messageId;
    expect(dsnsAt(mx)).toHaveLength(1);
    expect(await emls(join(root, 'odmr'))).toEqual([`${m.id}.eml`]);

    const again = await runCli(deliver(root, mx.port));
    expect(again.json[0]).toMatchObject({
      outcome: 'failed',
      recipients: [
        { address: 'ok@customer.test', code: 250 },
        { address: 'nobody@customer.test', code: 550 },
      ],
      dsn: { outcome: 'sent', messageId: firstId, recipients: ['nobody@customer.test'] },
    });
    // The DSN twice (the crash is the reason), with one Message-ID; the message once.
    expect(
      dsnsAt(mx).map((a) => a.text.toString('latin1').match(/^Message-ID: (.*)$/m)?.[1]),
    ).toEqual([`<${firstId}>`, `<${firstId}>`]);
    expect(mailAt(mx).map((a) => a.rcptTo)).toEqual([['ok@customer.test']]);
    expect(await emls(join(root, 'odmr', 'failed'))).toEqual([`${m.id}.eml`]);

    // Recorded: no third DSN.
    const third = await runCli(deliver(root, mx.port));
    expect(third).toMatchObject({ status: 0, json: [] });
    expect(dsnsAt(mx)).toHaveLength(2);
  });

  it('a recipient deferred past --give-up-after (clock injected): given up, its sender told, the message out of the undelivered set', async () => {
    const m = message(2, { to: ['ok@customer.test', 'full@customer.test'] });
    const root = await mailDir([m]);
    const mx = await server({
      rcpt: (a) => (a.startsWith('full') ? '452 4.2.2 mailbox full' : '250 2.1.5 Ok'),
    });
    const first = await runCli(deliver(root, mx.port));
    expect(first.json[0]).toMatchObject({ outcome: 'deferred', dsn: null });
    expect(dsnsAt(mx)).toHaveLength(0);

    // Four days on: not yet (the default is five).
    const day = 86_400_000;
    const soon = await runCli(deliver(root, mx.port), {
      now: () => new Date(Date.now() + 4 * day),
    });
    expect(soon.json[0]).toMatchObject({ outcome: 'deferred', dsn: null });

    const late = await runCli(deliver(root, mx.port), {
      now: () => new Date(Date.now() + 5 * day + 60_000),
    });
    expect(late.status).toBe(1);
    expect(late.json[0]).toMatchObject({
      outcome: 'failed',
      error: expect.stringMatching(/given up for <full@customer\.test>/),
      dsn: { outcome: 'sent', to: m.mailFrom, recipients: ['full@customer.test'] },
    });
    const text = dsnsAt(mx)[0]!.text.toString('latin1').replace(/\r\n /g, ' ');
    expect(text).toContain(
      'Final-Recipient: rfc822; full@customer.test\r\nAction: failed\r\nStatus: 4.2.2\r\n',
    );
    expect(text).toContain('Diagnostic-Code: smtp; 452 4.2.2 mailbox full');
    expect(text).toContain('Not delivered within 5 days');
    expect(await emls(join(root, 'odmr'))).toEqual([]);
    const replies = JSON.parse(
      await readFile(join(root, 'odmr', 'failed', `${m.id}.replies.json`), 'utf8'),
    );
    expect(replies.recipients).toEqual([
      { address: 'ok@customer.test', code: 250, text: '2.0.0 Ok: queued' },
      { address: 'full@customer.test', code: 452, text: '4.2.2 mailbox full', expired: true },
    ]);
    expect(replies.dsn).toMatchObject([{ recipients: ['full@customer.test'], code: 250 }]);
    // ok@ had it once, in the first run.
    expect(mailAt(mx).map((a) => a.rcptTo)).toEqual([['ok@customer.test']]);
  });

  it('--give-up-after 2h with the server down: the DSN goes --bounce-via, and the text line says so', async () => {
    const m = message(3);
    const root = await mailDir([m]);
    const relay = await server();
    const out = await runCli(
      [
        'deliver',
        '--mail-dir',
        root,
        '--to',
        'smtp://127.0.0.1:9',
        '--timeout',
        '5',
        '--give-up-after',
        '2h',
        '--bounce-via',
        `smtp://127.0.0.1:${relay.port}`,
      ],
      { now: () => new Date(Date.now() + 3 * 3_600_000) },
    );
    expect(out.status).toBe(1);
    expect(out.stdout).toMatch(
      new RegExp(
        `^failed +odmr/${m.id}: .*\\[DSN sent to <${m.mailFrom}> via smtp://127\\.0\\.0\\.1:${relay.port}: 250 `,
      ),
    );
    expect(out.stderr).toMatch(/1 DSN\(s\) sent/);
    const text = dsnsAt(relay)[0]!.text.toString('latin1');
    expect(text).toContain('Status: 4.4.7');
    expect(text).toContain('Not delivered within 2 hours');
  });

  it('a bounce server that is down: the message stays, and the next run sends only the DSN', async () => {
    const m = message(4, { to: ['ok@customer.test', 'nobody@customer.test'] });
    const root = await mailDir([m]);
    const mx = await server({
      rcpt: (a) => (a.startsWith('nobody') ? '550 5.1.1 no such user' : '250 2.1.5 Ok'),
    });
    const down = await runCli(deliver(root, mx.port, '--bounce-via', 'smtp://127.0.0.1:9'));
    expect(down.json[0]).toMatchObject({
      outcome: 'deferred',
      error: expect.stringMatching(/DSN to its sender is not sent yet/),
      dsn: { outcome: 'deferred', to: m.mailFrom },
    });
    expect(await emls(join(root, 'odmr'))).toEqual([`${m.id}.eml`]);
    const up = await runCli(deliver(root, mx.port));
    expect(up.json[0]).toMatchObject({ outcome: 'failed', dsn: { outcome: 'sent' } });
    expect(mailAt(mx).map((a) => a.rcptTo)).toEqual([['ok@customer.test']]);
    expect(dsnsAt(mx)).toHaveLength(1);
  });

  it.each([
    [['--to', 'lmtp:/run/dovecot/lmtp'], /is LMTP, which cannot relay .* give --bounce-via smtp:/],
    [
      ['--to', 'smtp://127.0.0.1', '--bounce-via', 'lmtp://h:24'],
      /--bounce-via lmtp:\/\/h:24: LMTP cannot relay/,
    ],
    [
      ['--to', 'smtp://127.0.0.1', '--bounce-via', 'mx.example'],
      /--bounce-via mx\.example: not a URL/,
    ],
    [['--to', 'smtp://127.0.0.1', '--give-up-after', '5'], /--give-up-after 5: must be a duration/],
    [['--to', 'smtp://127.0.0.1', '--give-up-after', '0d'], /--give-up-after 0d: must be/],
  ])('%j: a usage error naming the flag, exit 2', async (flags, said) => {
    const out = await runCli(['deliver', '--mail-dir', '/tmp', ...flags]);
    expect(out.status).toBe(2);
    expect(out.stderr).toMatch(said);
  });
});
