/**
 * `dequeue deliver --tls` into a real Postfix (3.7 from Debian), through bin/dequeue.js as cron
 * runs it: one Postfix offering STARTTLS with a self-signed certificate made with openssl when the
 * suite starts (a stock Debian Postfix's snakeoil certificate is one such), and one offering no
 * STARTTLS at all (what a stripped STARTTLS looks like from our side).
 *
 * What a user notices: the message delivered or still in the store, exit 0 or 1, the line that
 * says why, and `--json`'s `"tls"` (verified, unverified, none). Postfix's own log is the
 * witness of what went over the wire: its "disconnect from" line counts each session's commands
 * (starttls=1, mail=1, ...), so "nothing sent in cleartext" is Postfix's word, not ours.
 *
 * Without Postfix: fails in CI, skipped elsewhere (peers/servers/postfix.ts).
 */
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createMailDirSink } from '../../cli/adapters/mail-dir-sink';
import { message, store } from '../cli/delivery/stored-mail';
import { describeWithPostfix, startPostfix, type PostfixInstance } from '../servers/postfix';
import { runDequeue } from '../support/dequeue-process';
import { startCustomerMx, type CustomerMx } from './customer-mx';

/** Postfix's count of one session's commands, from its "disconnect from" line. */
const SESSION = /disconnect from \S+ (.*)$/;
const LOG_WAIT_MS = 20_000;

describeWithPostfix('dequeue deliver --tls into a real Postfix', () => {
  let mx: CustomerMx;
  let tls: PostfixInstance;
  let plain: PostfixInstance;
  let work: string;
  let cert: string;
  let n = 0;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'dequeue-deliver-postfix-tls-'));
    cert = join(work, 'cert.pem');
    const key = join(work, 'key.pem');
    // Self-signed, for the names deliver is given: --to smtp://127.0.0.1 checks the address.
    await promisify(execFile)(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { timeout: 30_000 },
    );
    await chmod(key, 0o600);
    mx = await startCustomerMx();
    [tls, plain] = await Promise.all([
      startPostfix({
        customerMxPort: mx.port,
        mainCf: {
          smtpd_tls_security_level: 'may',
          smtpd_tls_cert_file: cert,
          smtpd_tls_key_file: key,
          smtpd_tls_loglevel: '1',
        },
      }),
      startPostfix({ customerMxPort: mx.port }),
    ]);
  });

  afterAll(async () => {
    await tls?.stop();
    await plain?.stop();
    await mx?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /**
   * One stored message delivered to `postfix` with `flags`, one connection; the run, its JSON
   * line, the messages still waiting, and Postfix's count of the session's commands.
   */
  async function deliver(postfix: PostfixInstance, ...flags: string[]) {
    const root = join(work, `mail-${++n}`);
    await store(createMailDirSink(root), 'odmr', [message(n)]);
    const before = (await postfix.log()).length;
    const run = await runDequeue(
      [
        'deliver',
        '--mail-dir',
        root,
        '--to',
        `smtp://127.0.0.1:${postfix.port}`,
        '--connections',
        '1',
        '--json',
        ...flags,
      ],
      60_000,
    );
    const report = JSON.parse(run.stdout.trim().split('\n')[0] ?? 'null');
    const waiting = (await readdir(join(root, 'odmr'))).filter((f) => f.endsWith('.eml'));
    const session = await sessionAfter(postfix, before);
    return { run, report, waiting, session };
  }

  /** The command counts of the first session Postfix ended after `offset` in its log. */
  async function sessionAfter(postfix: PostfixInstance, offset: number): Promise<string> {
    const limit = Date.now() + LOG_WAIT_MS;
    for (;;) {
      const line = (await postfix.log())
        .slice(offset)
        .split('\n')
        .find((l) => SESSION.test(l));
      if (line) return SESSION.exec(line)![1]!;
      if (Date.now() > limit) throw new Error(`Postfix logged no session end after ${offset}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('--tls none: delivered in cleartext though STARTTLS is offered; "tls": "none"', async () => {
    const { run, report, waiting, session } = await deliver(tls, '--tls', 'none');
    expect(run.status, run.stderr).toBe(0);
    expect(report).toMatchObject({ outcome: 'delivered', tls: 'none' });
    expect(waiting).toEqual([]);
    expect(session).toMatch(/^ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5$/);
  });

  it('opportunistic (the loopback default, and said): delivered over TLS though the certificate is self-signed', async () => {
    for (const flags of [[], ['--tls', 'opportunistic']]) {
      const { run, report, waiting, session } = await deliver(tls, ...flags);
      expect(run.status, run.stderr).toBe(0);
      expect(report).toMatchObject({ outcome: 'delivered', tls: 'unverified' });
      expect(waiting).toEqual([]);
      expect(session).toMatch(/^ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7$/);
    }
  });

  it('required refuses the self-signed certificate: nothing sent, the message kept, the line says what to give', async () => {
    const { run, report, waiting, session } = await deliver(tls, '--tls', 'required');
    expect(run.status).toBe(1);
    expect(report).toMatchObject({ outcome: 'deferred', tls: null });
    expect(report.error).toMatch(
      /^TLS with 127\.0\.0\.1:\d+ failed: self[- ]signed certificate \(give the CA that signed it with --tls-ca FILE, or --no-tls-verify to encrypt without authenticating the server\)$/,
    );
    expect(waiting).toHaveLength(1);
    // Postfix saw EHLO and a STARTTLS whose handshake we ended (0 of 1 succeeded), then nothing:
    // no MAIL, in cleartext or otherwise.
    expect(session).toBe('ehlo=1 starttls=0/1 commands=1/2');
  });

  it('required with --no-tls-verify: delivered encrypted, "tls": "unverified"', async () => {
    const { run, report, session } = await deliver(tls, '--tls', 'required', '--no-tls-verify');
    expect(run.status, run.stderr).toBe(0);
    expect(report).toMatchObject({ outcome: 'delivered', tls: 'unverified' });
    expect(session).toMatch(/starttls=1 mail=1/);
  });

  it('required with --tls-ca naming that certificate: verified and delivered', async () => {
    const { run, report, session } = await deliver(tls, '--tls', 'required', '--tls-ca', cert);
    expect(run.status, run.stderr).toBe(0);
    expect(report).toMatchObject({ outcome: 'delivered', tls: 'verified' });
    expect(session).toMatch(/starttls=1 mail=1/);
  });

  it('implicit against the plain port: exit 1, the message kept, one line saying to use STARTTLS there', async () => {
    const root = join(work, `mail-${++n}`);
    await store(createMailDirSink(root), 'odmr', [message(n)]);
    const before = (await tls.log()).length;
    const run = await runDequeue(
      ['deliver', '--mail-dir', root, '--to', `smtps://127.0.0.1:${tls.port}`],
      60_000,
    );
    expect(run.status).toBe(1);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^deferred {2}odmr\/\S+: <user\d+@customer\.test> - \(TLS with 127\.0\.0\.1:\d+ failed: the server speaks plain SMTP on this port, not TLS from the first byte: use STARTTLS here \(smtp:\/\/ with --tls opportunistic or required\), or the port of its implicit TLS \(465\)\)$/,
    );
    expect((await readdir(join(root, 'odmr'))).filter((f) => f.endsWith('.eml'))).toHaveLength(1);
    // Postfix got our TLS hello where a command belongs, and not one command.
    expect(await sessionAfter(tls, before)).toBe('commands=0/0');
  });

  it('required against a Postfix without STARTTLS: nothing in cleartext after EHLO, the message kept, the reason said', async () => {
    const { run, report, waiting, session } = await deliver(plain, '--tls', 'required');
    expect(run.status).toBe(1);
    expect(report).toMatchObject({ outcome: 'deferred', tls: null });
    expect(report.error).toBe(
      `smtp://127.0.0.1:${plain.port} does not offer STARTTLS and --tls is required: nothing was sent`,
    );
    expect(waiting).toHaveLength(1);
    expect(session).toMatch(/^ehlo=1 quit=1 commands=2$/);
    expect(await plain.queue()).toEqual([]);
  });

  it('opportunistic against that Postfix: delivered in cleartext, and said on stderr', async () => {
    const { run, report, session } = await deliver(plain);
    expect(run.status, run.stderr).toBe(0);
    expect(report).toMatchObject({ outcome: 'delivered', tls: 'none' });
    expect(run.stderr).toMatch(/does not offer STARTTLS: the mail goes in cleartext/);
    expect(session).toMatch(/^ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5$/);
  });
});
