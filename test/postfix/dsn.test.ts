/**
 * Delivery status notifications received by a real Postfix (docs/bounces.md): `dequeue deliver`
 * into a private Postfix that refuses one recipient for good (a check_recipient_access table
 * answering 550), and into a private Dovecot's LMTP with an unknown user, `--bounce-via` that
 * Postfix. Postfix relays each DSN to the sender's domain (held for ETRN like the customer's,
 * then released), and what arrives in the sender's mailbox is read: from the null reverse-path,
 * a multipart/report naming the refused recipient with its status and Postfix's (or Dovecot's)
 * own reply, and the original headers. A message with the null reverse-path gets none.
 *
 * Without Postfix (or Dovecot, for the second): fails in CI, skipped elsewhere.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createMailDirSink } from '../../cli/adapters/mail-dir-sink';
import { dovecotMissing, startDovecot, type Dovecot } from '../../peers/servers/dovecot';
import { message, store, type StoredMessage } from '../cli/delivery/stored-mail';
import { tempDir } from '../core/odmr/odmr-fixtures';
import { describeWithPostfix, startPostfix, type PostfixInstance } from '../servers/postfix';
import { runCli } from '../support/cli-run';
import { startCustomerMx, type CustomerMx, type ReceivedMessage } from './customer-mx';

/** Postfix refuses this recipient for good at RCPT (access(5): a 5NN action). */
const REFUSED = 'nobody@customer.test';

describeWithPostfix('DSNs through a real Postfix', () => {
  let senders: CustomerMx;
  let postfix: PostfixInstance;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    // The senders' domain (origin.test) is held like the customer's: released below, it reaches
    // this listener, the senders' mailbox.
    senders = await startCustomerMx();
    postfix = await startPostfix({
      customerMxPort: senders.port,
      relayDomains: ['customer.test', 'origin.test'],
      mainCf: {
        smtpd_recipient_restrictions: `check_recipient_access inline:{ { ${REFUSED} = 550 5.1.1 no such user here } }, permit_mynetworks, reject_unauth_destination`,
      },
    });
  });
  afterAll(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await postfix?.stop();
    await senders?.stop();
  });

  async function mailDir(messages: readonly StoredMessage[]): Promise<string> {
    const dir = await tempDir('dequeue-dsn-postfix-');
    cleanups.push(dir.remove);
    await store(createMailDirSink(dir.path), 'odmr', messages);
    return dir.path;
  }

  /** Release what Postfix holds for the senders' domain (what ETRN would do) and wait for the DSN. */
  async function dsnArriving(messageId: string): Promise<ReceivedMessage> {
    await postfix.waitForDeferred((e) => e.sender === 'MAILER-DAEMON', 1);
    await promisify(execFile)('postqueue', ['-c', postfix.configDir, '-s', 'origin.test'], {
      env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin` },
    });
    return senders.waitFor(`<${messageId}>`);
  }

  it('a recipient Postfix refuses: its sender gets a DSN with the status, the reply and the original headers; a null sender gets none', async () => {
    const refused = message(1, { to: ['alice@customer.test', REFUSED] });
    const bounce = message(2, { from: '', to: [REFUSED] });
    const root = await mailDir([refused, bounce]);
    const out = await runCli([
      'deliver',
      '--mail-dir',
      root,
      '--to',
      `smtp://127.0.0.1:${postfix.port}`,
      '--helo-name',
      'mx.dequeue.test',
      '--json',
    ]);
    expect(out.status).toBe(1);
    const [first, second] = out.json;
    expect(first).toMatchObject({
      outcome: 'failed',
      recipients: [
        { address: 'alice@customer.test', code: 250 },
        { address: REFUSED, code: 550, text: expect.stringMatching(/no such user here/) },
      ],
      dsn: {
        outcome: 'sent',
        to: refused.mailFrom,
        via: `smtp://127.0.0.1:${postfix.port}`,
        recipients: [REFUSED],
        code: 250,
      },
    });
    expect(second).toMatchObject({ outcome: 'failed', dsn: { outcome: 'suppressed', to: '' } });
    expect(out.stderr).toMatch(/1 DSN\(s\) sent/);

    const dsn = await dsnArriving(first.dsn.messageId);
    expect(dsn.mailFrom).toBe('');
    expect(dsn.rcptTo).toEqual([refused.mailFrom]);
    expect(dsn.header('from')).toBe('Mail Delivery System <MAILER-DAEMON@mx.dequeue.test>');
    expect(dsn.header('content-type')).toMatch(/^multipart\/report; report-type=delivery-status;/);
    const status = dsn.text.replace(/\r\n[ \t]+/g, ' ');
    expect(status).toContain(
      `Final-Recipient: rfc822; ${REFUSED}\r\nAction: failed\r\nStatus: 5.1.1\r\n`,
    );
    expect(status).toMatch(/Diagnostic-Code: smtp; 550 5\.1\.1 .*no such user here/);
    expect(status).not.toContain('Final-Recipient: rfc822; alice@customer.test');
    // The original headers (RET=HDRS), not the body.
    expect(dsn.text).toContain('Content-Type: text/rfc822-headers');
    expect(dsn.text).toContain(`Message-ID: ${refused.messageId}\r\nSubject: stored 1\r\n`);
    expect(dsn.text).not.toContain('..two');
    // The null-sender message's DSN was never made: only one came from MAILER-DAEMON.
    expect((await postfix.queue()).filter((e) => e.sender === 'MAILER-DAEMON')).toEqual([]);
    expect(senders.received.filter((m) => m.mailFrom === '')).toHaveLength(1);
  });

  it.skipIf(dovecotMissing)(
    "Dovecot's LMTP refuses an unknown user: the DSN goes --bounce-via the Postfix and arrives",
    async () => {
      const dovecot: Dovecot = await startDovecot({ users: [{ name: 'erin' }] });
      cleanups.push(() => dovecot.stop());
      const m = message(3, { to: ['erin@customer.test', 'nobody-at-all@customer.test'] });
      const root = await mailDir([m]);
      const out = await runCli([
        'deliver',
        '--mail-dir',
        root,
        '--to',
        `lmtp:${dovecot.socketPath}`,
        '--bounce-via',
        `smtp://127.0.0.1:${postfix.port}`,
        '--helo-name',
        'mx.dequeue.test',
        '--json',
      ]);
      expect(out.status).toBe(1);
      expect(out.json[0]).toMatchObject({
        outcome: 'failed',
        recipients: [
          { address: 'erin@customer.test', code: 250 },
          { address: 'nobody-at-all@customer.test', code: 550 },
        ],
        dsn: { outcome: 'sent', recipients: ['nobody-at-all@customer.test'] },
      });
      const dsn = await dsnArriving(out.json[0].dsn.messageId);
      expect(dsn.rcptTo).toEqual([m.mailFrom]);
      const status = dsn.text.replace(/\r\n[ \t]+/g, ' ');
      expect(status).toMatch(
        /Final-Recipient: rfc822; nobody-at-all@customer\.test\r\nAction: failed\r\nStatus: 5\.1\.1\r\n/,
      );
      expect(dsn.text).toContain(`Message-ID: ${m.messageId}`);
    },
  );
});
