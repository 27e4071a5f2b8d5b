/**
 * `dequeue deliver` into a real Dovecot's LMTP (peers/servers/dovecot.ts), over its unix socket
 * and over TCP: what a user sees is each message in the right Maildirs, byte for byte as stored
 * (canonical line ends: Dovecot keeps CRLF), Dovecot's own refusals paired with the right
 * recipient, and each message moved to delivered/ or failed/ accordingly.
 *
 * Without Dovecot: fails in CI, skipped elsewhere.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createMailDirSink } from '../../cli/adapters/mail-dir-sink';
import { message, store, type StoredMessage } from '../cli/delivery/stored-mail';
import { ScriptedMailServer } from '../../peers/scripted-mail-server';
import { runCli } from '../support/cli-run';
import { canonicalText, tempDir } from '../core/odmr/odmr-fixtures';
import { describeWithDovecot, startDovecot, type Dovecot } from '../servers/dovecot';

const QUOTA_BYTES = 4096;

describeWithDovecot("dequeue deliver into a real Dovecot's LMTP", () => {
  let dovecot: Dovecot;
  /** The SMTP relay the DSNs go through (LMTP cannot relay them). */
  let relay: ScriptedMailServer;
  const relayUrl = () => `smtp://127.0.0.1:${relay.port}`;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    relay = await new ScriptedMailServer().start();
    dovecot = await startDovecot({
      users: [
        { name: 'alice' },
        { name: 'bob' },
        { name: 'carol', quotaBytes: QUOTA_BYTES },
        { name: 'dave' },
        { name: 'erin' },
      ],
    });
  });

  afterAll(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await dovecot?.stop();
    await relay?.stop();
  });

  async function mailDir(messages: readonly StoredMessage[]): Promise<string> {
    const dir = await tempDir('dequeue-dovecot-deliver-');
    cleanups.push(dir.remove);
    await store(createMailDirSink(dir.path), 'odmr', messages);
    return dir.path;
  }

  const ids = async (path: string) =>
    (await readdir(path).catch(() => [] as string[]))
      .filter((n) => n.endsWith('.eml'))
      .map((n) => n.slice(0, -4))
      .sort();

  /** The Maildir file holds the message exactly as deliver sent it, after Dovecot's own trace lines. */
  function expectSame(file: Buffer | undefined, m: StoredMessage): void {
    const sent = canonicalText(m.text);
    expect(file).toBeDefined();
    expect(file!.subarray(file!.length - sent.length).equals(sent)).toBe(true);
    const added = file!.subarray(0, file!.length - sent.length).toString('latin1');
    expect(added).toMatch(/^(?:(?:Return-Path|Delivered-To|Received):.*\r\n(?:[ \t].*\r\n)*)*$/);
  }

  it("over its unix socket: every message in every recipient's Maildir, byte for byte", async () => {
    const messages = [
      message(1, { to: ['alice@customer.test', 'bob@customer.test'] }),
      message(2, { to: ['alice@customer.test'], bodyBytes: 200_000 }),
    ];
    const root = await mailDir(messages);
    const out = await runCli([
      'deliver',
      '--mail-dir',
      root,
      '--to',
      `lmtp:${dovecot.socketPath}`,
      '--bounce-via',
      relayUrl(),
      '--json',
    ]);
    expect(out.status, out.stderr).toBe(0);
    expect(out.json.map((r) => r.outcome)).toEqual(['delivered', 'delivered']);
    const alice = await dovecot.maildir('alice');
    const bob = await dovecot.maildir('bob');
    expect(alice).toHaveLength(2);
    expectSame(
      alice.find((f) => f.includes(messages[0]!.messageId)),
      messages[0]!,
    );
    expectSame(
      alice.find((f) => f.includes(messages[1]!.messageId)),
      messages[1]!,
    );
    expectSame(bob[0], messages[0]!);
    expect(await ids(join(root, 'odmr', 'delivered'))).toEqual(messages.map((m) => m.id).sort());
  });

  it('over TCP: the message arrives byte for byte', async () => {
    const m = message(3, { to: ['dave@customer.test'] });
    const root = await mailDir([m]);
    const out = await runCli([
      'deliver',
      '--mail-dir',
      root,
      '--to',
      `lmtp://${dovecot.host}:${dovecot.port}`,
      '--bounce-via',
      relayUrl(),
      '--json',
    ]);
    expect(out.status, out.stderr).toBe(0);
    expectSame((await dovecot.maildir('dave'))[0], m);
  });

  it("an unknown user: Dovecot's 550 for that recipient, the others have it, the message in failed/", async () => {
    const m = message(4, { to: ['erin@customer.test', 'nobody-here@customer.test'] });
    const root = await mailDir([m]);
    const out = await runCli([
      'deliver',
      '--mail-dir',
      root,
      '--to',
      `lmtp:${dovecot.socketPath}`,
      '--bounce-via',
      relayUrl(),
      '--json',
    ]);
    expect(out.status).toBe(1);
    expect(out.json).toMatchObject([
      {
        outcome: 'failed',
        recipients: [
          { address: 'erin@customer.test', code: 250 },
          { address: 'nobody-here@customer.test', code: 550 },
        ],
      },
    ]);
    expectSame((await dovecot.maildir('erin'))[0], m);
    expect(await ids(join(root, 'odmr', 'failed'))).toEqual([m.id]);
    // Its sender is told, through the relay, about nobody-here@ alone.
    expect(out.json[0].dsn).toMatchObject({
      outcome: 'sent',
      recipients: ['nobody-here@customer.test'],
    });
    const dsn = relay.accepted.find((a) => a.rcptTo[0] === m.mailFrom);
    expect(dsn?.mailFrom).toBe('');
    expect(dsn?.text.toString('latin1')).toContain(
      'Final-Recipient: rfc822; nobody-here@customer.test',
    );
  });

  it("over quota: Dovecot's 552 paired with that recipient, not the one who got it", async () => {
    const m = message(5, {
      to: ['alice@customer.test', 'carol@customer.test'],
      bodyBytes: QUOTA_BYTES * 3,
    });
    const root = await mailDir([m]);
    const before = (await dovecot.maildir('alice')).length;
    const out = await runCli([
      'deliver',
      '--mail-dir',
      root,
      '--to',
      `lmtp:${dovecot.socketPath}`,
      '--bounce-via',
      relayUrl(),
      '--json',
    ]);
    expect(out.status).toBe(1);
    expect(out.json).toMatchObject([
      {
        outcome: 'failed',
        recipients: [
          { address: 'alice@customer.test', code: 250 },
          { address: 'carol@customer.test', code: 552 },
        ],
      },
    ]);
    expect(await dovecot.maildir('alice')).toHaveLength(before + 1);
    expect(await dovecot.maildir('carol')).toEqual([]);
  });
});
