/**
 * `dequeue deliver` from a mail directory into a scripted server (peers/scripted-mail-server.ts):
 * per-recipient answers, a cut in the middle of DATA, a server that is down, LMTP over a unix
 * socket (two runs at once: deliver-two-runs.test.ts). After each: every message delivered exactly once, still undelivered,
 * or in failed/, none lost.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deliverTo, ls, mailDir, messageIdOf, server, where } from './mail-dir-delivery';
import { message } from './stored-mail';
import { runCli } from '../../support/cli-run';

describe('dequeue deliver from a mail directory', () => {
  it('delivers each message with its own envelope, oldest first, canonical and stuffed on the wire; then delivered/', async () => {
    const messages = [
      message(1, { to: ['a@customer.test', 'b@customer.test'] }),
      message(2, { from: '' }), // a bounce: the null reverse-path is kept
      message(3),
    ];
    const root = await mailDir(messages);
    const mx = await server();
    const out = await deliverTo(root, mx.port, '--json');
    expect(out.status).toBe(0);
    expect(out.json).toEqual(
      messages.map((m) => ({
        message: m.id,
        target: 'odmr',
        outcome: 'delivered',
        recipients: m.rcptTo.map((address) => ({ address, code: 250, text: '2.0.0 Ok: queued' })),
        error: null,
        // A loopback server without STARTTLS: cleartext, and the JSON says so.
        tls: 'none',
        dsn: null,
      })),
    );
    expect(mx.accepted.map((a) => [a.mailFrom, a.rcptTo, messageIdOf(a.text)])).toEqual(
      messages.map((m) => [m.mailFrom, m.rcptTo, m.messageId]),
    );
    // BODY=8BITMIME as stored, SIZE as the server offers it (RFC 1870): the stored size, an
    // estimate (the text's bare LF goes out as CRLF, one byte more).
    expect(mx.lines).toContain(`MAIL FROM:<> BODY=8BITMIME SIZE=${messages[1]!.text.length}`);
    expect(mx.accepted[1]!.text.length).toBe(messages[1]!.text.length + 1);
    for (const a of mx.accepted) {
      const wire = a.wire.toString('latin1');
      // CRLF only, every line that starts with a dot stuffed; the bare LF of the text became CRLF.
      expect(/\r(?!\n)|(?<!\r)\n/.test(wire)).toBe(false);
      expect(wire).toContain('\r\n..\r\n...two\r\n..leading\r\nbare LF\r\n..after it\r\n');
    }
    expect(await where(root)).toEqual({
      waiting: [],
      delivered: messages.map((m) => m.id),
      failed: [],
    });
    expect(await ls(join(root, 'odmr'))).toEqual(['delivered']);
    expect(await ls(join(root, 'odmr', 'delivered'))).toEqual(
      messages.flatMap((m) => [`${m.id}.eml`, `${m.id}.json`]),
    );

    // Nothing left: a second run delivers nothing again.
    const again = await deliverTo(root, mx.port, '--json');
    expect(again).toMatchObject({ status: 0, json: [] });
    expect(mx.accepted).toHaveLength(3);
  });

  it('a large message is streamed, and one whose file grew past its envelope still goes out whole', async () => {
    const large = message(1, { bodyBytes: 1_200_000 });
    const small = message(2);
    const root = await mailDir([large, small]);
    // A file that holds more than its envelope's byte count (it should never): read to its end.
    const extra = Buffer.from('X-Appended: after the envelope was written\r\n'.repeat(8000));
    const path = join(root, 'odmr', `${small.id}.eml`);
    await writeFile(path, Buffer.concat([await readFile(path), extra]));
    const mx = await server();
    const out = await deliverTo(root, mx.port, '--json');
    expect(out.status).toBe(0);
    expect(out.json.map((r) => r.outcome)).toEqual(['delivered', 'delivered']);
    const canonical = (b: Buffer) => b.toString('latin1').replace(/\r?\n/g, '\r\n');
    // Two connections by default: the small one may be accepted first.
    const textOf = (m: typeof large) =>
      mx.accepted.find((a) => a.mailFrom === m.mailFrom)!.text.toString('latin1');
    expect(textOf(large).endsWith(canonical(large.text))).toBe(true);
    expect(textOf(small).endsWith(canonical(Buffer.concat([small.text, extra])))).toBe(true);
  });

  it('250, 451 and 550 for three recipients: kept with the 451 one waiting; the next run sends only to it, then failed/ with the replies', async () => {
    const m = message(1, {
      to: ['ok@customer.test', 'later@customer.test', 'nobody@customer.test'],
    });
    const root = await mailDir([m]);
    let laterReply = '451 4.2.0 mailbox busy, try later';
    const mx = await server({
      extensions: ['8BITMIME'], // no PIPELINING: one command at a time
      rcpt: (a) =>
        a.startsWith('nobody')
          ? '550 5.1.1 no such user'
          : a.startsWith('later')
            ? laterReply
            : '250 2.1.5 Ok',
    });
    const first = await deliverTo(root, mx.port, '--json');
    expect(first.status).toBe(1);
    expect(first.json).toEqual([
      {
        message: m.id,
        target: 'odmr',
        outcome: 'deferred',
        recipients: [
          { address: 'ok@customer.test', code: 250, text: '2.0.0 Ok: queued' },
          { address: 'later@customer.test', code: 451, text: '4.2.0 mailbox busy, try later' },
          { address: 'nobody@customer.test', code: 550, text: '5.1.1 no such user' },
        ],
        error: expect.any(String),
        tls: 'none',
        // nobody@ is refused for good: its sender is told at once, through the same server.
        dsn: {
          outcome: 'sent',
          to: m.mailFrom,
          via: `smtp://127.0.0.1:${mx.port}`,
          messageId: expect.stringMatching(new RegExp(`^${m.id}\\.dsn1@`)),
          recipients: ['nobody@customer.test'],
          code: 250,
          text: '2.0.0 Ok: queued',
        },
      },
    ]);
    const mail = () => mx.accepted.filter((a) => a.mailFrom !== '');
    const dsns = () => mx.accepted.filter((a) => a.mailFrom === '');
    expect(mail().map((a) => a.rcptTo)).toEqual([['ok@customer.test']]);
    expect(dsns().map((a) => a.rcptTo)).toEqual([[m.mailFrom]]);
    expect(dsns()[0]!.text.toString('latin1')).toMatch(
      /Final-Recipient: rfc822; nobody@customer\.test\r\nAction: failed\r\nStatus: 5\.1\.1/,
    );
    expect(await where(root)).toEqual({ waiting: [m.id], delivered: [], failed: [] });

    laterReply = '250 2.1.5 Ok';
    const second = await deliverTo(root, mx.port, '--json');
    expect(second.status).toBe(1);
    expect(second.json).toMatchObject([
      { outcome: 'failed', recipients: [{ code: 250 }, { code: 250 }, { code: 550 }] },
    ]);
    expect(second.stderr).toMatch(/FAILED: refused for good for <nobody@customer\.test> \(550\)/);
    // ok@ got it once, later@ once; nobody@ was not tried again, nor its DSN sent again.
    expect(mail().map((a) => a.rcptTo)).toEqual([['ok@customer.test'], ['later@customer.test']]);
    expect(dsns()).toHaveLength(1);
    expect(second.json[0].dsn).toBeNull();
    expect(mx.lines.filter((l) => l.startsWith('RCPT TO:<nobody'))).toHaveLength(1);
    expect(await where(root)).toEqual({ waiting: [], delivered: [], failed: [m.id] });
    const replies = JSON.parse(
      await readFile(join(root, 'odmr', 'failed', `${m.id}.replies.json`), 'utf8'),
    );
    expect(replies.recipients).toEqual([
      { address: 'ok@customer.test', code: 250, text: '2.0.0 Ok: queued' },
      { address: 'later@customer.test', code: 250, text: '2.0.0 Ok: queued' },
      { address: 'nobody@customer.test', code: 550, text: '5.1.1 no such user' },
    ]);
    expect(replies.dsn).toMatchObject([
      { to: m.mailFrom, recipients: ['nobody@customer.test'], code: 250 },
    ]);
  });

  it('a cut in the middle of DATA leaves the message undelivered; the next run delivers it exactly once', async () => {
    const messages = [message(1), message(2, { bodyBytes: 200_000 }), message(3)];
    const root = await mailDir(messages);
    const cutting = await server({ cutInData: { message: 1, afterBytes: 50_000 } });
    const first = await deliverTo(root, cutting.port, '--json');
    expect(first.status).toBe(1);
    expect(first.json.map((r) => r.outcome)).toEqual(['delivered', 'deferred', 'delivered']);
    expect(first.json[1].recipients).toEqual([
      {
        address: 'user2@customer.test',
        code: null,
        text: expect.stringMatching(/closed the connection|ECONNRESET|EPIPE/),
      },
    ]);
    expect(cutting.accepted.map((a) => messageIdOf(a.text))).toEqual([
      messages[0]!.messageId,
      messages[2]!.messageId,
    ]);
    expect(cutting.connections).toBe(2); // reconnected for the third
    expect(await where(root)).toEqual({
      waiting: [messages[1]!.id],
      delivered: [messages[0]!.id, messages[2]!.id],
      failed: [],
    });

    const mx = await server();
    const second = await deliverTo(root, mx.port, '--json');
    expect(second.status).toBe(0);
    expect(mx.accepted.map((a) => messageIdOf(a.text))).toEqual([messages[1]!.messageId]);
    expect(await where(root)).toEqual({
      waiting: [],
      delivered: messages.map((m) => m.id),
      failed: [],
    });
  });

  it('a cut in the middle of a streamed message (its next chunk being read) leaves it undelivered; the next run sends it whole', async () => {
    const large = message(1, { bodyBytes: 1_200_000 });
    const root = await mailDir([large, message(2)]);
    const cutting = await server({ cutInData: { message: 0, afterBytes: 400_000 } });
    const args = ['deliver', '--mail-dir', root, '--json', '--connections', '1', '--to'];
    const first = await runCli([...args, `smtp://127.0.0.1:${cutting.port}`]);
    expect(first.status).toBe(1);
    expect(first.json.map((r) => r.outcome)).toEqual(['deferred', 'delivered']);
    expect(await where(root)).toMatchObject({ waiting: [large.id] });

    const mx = await server();
    const second = await runCli([...args, `smtp://127.0.0.1:${mx.port}`]);
    expect(second.status).toBe(0);
    const canonical = (b: Buffer) => b.toString('latin1').replace(/\r?\n/g, '\r\n');
    expect(mx.accepted).toHaveLength(1);
    expect(mx.accepted[0]!.text.toString('latin1').endsWith(canonical(large.text))).toBe(true);
    expect(await where(root)).toMatchObject({ waiting: [], failed: [] });
  });

  it('a server that is down: every message deferred, none moved, exit 1', async () => {
    const messages = [message(1), message(2)];
    const root = await mailDir(messages);
    const out = await runCli([
      'deliver',
      '--mail-dir',
      root,
      '--to',
      'smtp://127.0.0.1:1',
      '--json',
    ]);
    expect(out.status).toBe(1);
    expect(out.json.map((r) => [r.outcome, r.error])).toEqual(
      messages.map(() => ['deferred', expect.stringMatching(/cannot connect to 127\.0\.0\.1:1/)]),
    );
    expect(await where(root)).toEqual({
      waiting: messages.map((m) => m.id),
      delivered: [],
      failed: [],
    });
  });

  it('a message refused for all its recipients goes to failed/, and the rest of the run goes on', async () => {
    const messages = [message(1), message(2), message(3)];
    const root = await mailDir(messages);
    const mx = await server({
      mail: (from) =>
        from === 'sender2@origin.test' ? '550 5.7.1 sender rejected' : '250 2.1.0 Ok',
    });
    const out = await deliverTo(root, mx.port, '--json');
    expect(out.status).toBe(1);
    expect(out.json.map((r) => r.outcome)).toEqual(['delivered', 'failed', 'delivered']);
    expect(out.json[1].recipients).toEqual([
      { address: 'user2@customer.test', code: 550, text: '5.7.1 sender rejected' },
    ]);
    expect(out.json[1].dsn).toMatchObject({ outcome: 'sent', to: 'sender2@origin.test' });
    expect(await where(root)).toEqual({
      waiting: [],
      delivered: [messages[0]!.id, messages[2]!.id],
      failed: [messages[1]!.id],
    });
  });

  it('LMTP over a unix socket: one reply per recipient after the final dot (RFC 2033 4.2)', async () => {
    const m = message(1, { to: ['one@customer.test', 'two@customer.test', 'three@customer.test'] });
    const root = await mailDir([m]);
    const socketPath = join(root, 'lmtp.sock');
    const lmtp = await server({
      lmtp: true,
      socketPath,
      final: (a) =>
        a.startsWith('two')
          ? '452 4.2.2 mailbox full'
          : a.startsWith('three')
            ? '550 5.1.1 unknown user'
            : '250 2.0.0 delivered',
    });
    const relay = await server();
    const out = await runCli([
      'deliver',
      '--mail-dir',
      root,
      '--to',
      `lmtp:${socketPath}`,
      '--bounce-via',
      `smtp://127.0.0.1:${relay.port}`,
      '--json',
    ]);
    expect(out.status).toBe(1);
    expect(lmtp.lines[0]).toMatch(/^LHLO /);
    // three@ refused for good: the DSN goes through --bounce-via (LMTP cannot relay).
    expect(relay.accepted.map((a) => [a.mailFrom, a.rcptTo])).toEqual([['', [m.mailFrom]]]);
    expect(out.json).toMatchObject([
      {
        outcome: 'deferred',
        recipients: [
          { address: 'one@customer.test', code: 250 },
          { address: 'two@customer.test', code: 452, text: '4.2.2 mailbox full' },
          { address: 'three@customer.test', code: 550 },
        ],
      },
    ]);
    expect(lmtp.accepted.map((a) => a.rcptTo)).toEqual([['one@customer.test']]);
    expect(await where(root)).toEqual({ waiting: [m.id], delivered: [], failed: [] });
  });

  it('--dry-run lists what would go and connects to nothing', async () => {
    const root = await mailDir([message(1)]);
    const mx = await server();
    const out = await deliverTo(root, mx.port, '--dry-run', '--json');
    expect(out.status).toBe(0);
    expect(out.json).toMatchObject([
      { outcome: 'pending', recipients: [{ address: 'user1@customer.test', code: null }] },
    ]);
    expect(mx.connections).toBe(0);
    expect((await where(root)).waiting).toHaveLength(1);
  });

  it.each([
    [['deliver', '--to', 'smtp://127.0.0.1'], /exactly one of --mail-dir/],
    [
      ['deliver', '--mail-dir', '/tmp', '--bucket', 'b', '--to', 'smtp://x'],
      /exactly one of --mail-dir/,
    ],
    [['deliver', '--mail-dir', '/tmp'], /--to URL is required/],
    [['deliver', '--mail-dir', '/tmp', '--to', 'http://x'], /smtp, smtps or lmtp/],
    [['deliver', '--mail-dir', '/tmp', '--to', 'lmtp://host'], /needs a port/],
    [
      ['deliver', '--mail-dir', '/nonexistent/dequeue', '--to', 'smtp://127.0.0.1:1'],
      /cannot deliver from there: no such directory/,
    ],
  ])('usage errors exit 2: %j', async (argv, message) => {
    const out = await runCli(argv);
    expect(out.status).toBe(2);
    expect(out.stderr).toMatch(message);
  });
});
