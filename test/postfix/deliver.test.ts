/**
 * `dequeue deliver` into a real Postfix (3.7 from Debian), through the CLI exactly as cron runs
 * it (bin/dequeue.js): the mail directory's messages go to Postfix's smtpd with their own
 * envelopes; Postfix queues them (customer.test is held for ETRN), and once released they reach
 * the listener behind it with the same envelope.
 *
 * Without Postfix: fails in CI, skipped elsewhere (peers/servers/postfix.ts).
 */
import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createMailDirSink } from '../../cli/adapters/mail-dir-sink';
import { message, store } from '../cli/delivery/stored-mail';
import { tempDir } from '../core/odmr/odmr-fixtures';
import { describeWithPostfix, startPostfix, type PostfixInstance } from '../servers/postfix';
import { runDequeue } from '../support/dequeue-process';
import { startCustomerMx, type CustomerMx } from './customer-mx';

describeWithPostfix('dequeue deliver into a real Postfix', () => {
  let mx: CustomerMx;
  let postfix: PostfixInstance;
  let dir: { path: string; remove: () => Promise<void> };

  beforeAll(async () => {
    mx = await startCustomerMx();
    postfix = await startPostfix({ customerMxPort: mx.port });
    dir = await tempDir('dequeue-deliver-postfix-');
  });
  afterAll(async () => {
    await postfix?.stop();
    await mx?.stop();
    await dir?.remove();
  });

  it('every message reaches Postfix once with its envelope (null reverse-path included), and the listener behind it', async () => {
    const messages = [
      message(101, { to: ['alice@customer.test', 'bob@customer.test'] }),
      message(102, { from: '' }),
      message(103, { bodyBytes: 300_000 }),
    ];
    await store(createMailDirSink(dir.path), 'odmr', messages);
    const run = await runDequeue(
      ['deliver', '--mail-dir', dir.path, '--to', `smtp://127.0.0.1:${postfix.port}`, '--json'],
      60_000,
    );
    expect(run.stderr).toMatch(/3 message\(s\) .*: 3 delivered, 0 deferred, 0 failed/);
    expect(run.status).toBe(0);
    const lines = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.message, l.outcome])).toEqual(
      messages.map((m) => [m.id, 'delivered']),
    );
    expect(lines[0].recipients[0]).toMatchObject({
      address: 'alice@customer.test',
      code: 250,
      text: expect.stringMatching(/queued as/),
    });
    expect(
      (await readdir(join(dir.path, 'odmr', 'delivered'))).filter((n) => n.endsWith('.eml')),
    ).toHaveLength(3);

    // Postfix holds them for customer.test (deferred, so that the release below flushes them);
    // each queue entry carries the stored envelope (postqueue shows the null reverse-path as
    // MAILER-DAEMON).
    const queued = await postfix.waitForDeferred(() => true, messages.length);
    expect(queued.map((q) => [q.sender, q.recipients.map((r) => r.address).sort()]).sort()).toEqual(
      messages.map((m) => [m.mailFrom || 'MAILER-DAEMON', [...m.rcptTo].sort()]).sort(),
    );

    // Released (what ETRN would do), they reach the listener behind Postfix.
    await promisify(execFile)('postqueue', ['-c', postfix.configDir, '-s', 'customer.test'], {
      env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin` },
    });
    for (const m of messages) {
      // Should one not arrive, Postfix's log says why (deferred, refused, never flushed).
      const got = await mx.waitFor(m.messageId).catch(async (e: Error) => {
        throw new Error(`${e.message}; Postfix's log ends:\n${(await postfix.log()).slice(-3000)}`);
      });
      expect([got.mailFrom, [...got.rcptTo].sort()]).toEqual([m.mailFrom, [...m.rcptTo].sort()]);
      // The text as stored: its dot lines unstuffed again on the way through Postfix.
      expect(got.text).toContain('\r\n.\r\n..two\r\n.leading\r\n');
    }
    expect(
      mx.received.filter((r) => messages.some((m) => r.header('Message-ID') === m.messageId)),
    ).toHaveLength(3);
  });
});
