/**
 * ETRN through STARTTLS to a real Postfix (3.7 from Debian), through the CLI as a user runs it:
 * `smtpd_tls_security_level = may` with a self-signed certificate made with openssl when the
 * suite starts (the target says `"tlsVerify": false`, as one must for such a certificate).
 *
 * Postfix's own log is the witness: its "disconnect from" line counts what our session said
 * (ehlo=2 starttls=1 etrn=1 quit=1), and a session that ended without QUIT, or dropped TLS
 * without closing it, shows there as "lost connection" instead. A failure path is checked the
 * same way: AUTH that this Postfix does not offer ends with QUIT, inside TLS.
 *
 * Without Postfix: fails in CI, skipped elsewhere (peers/servers/postfix.ts).
 */
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TargetResult } from '../../lambda/core/result';
import { describeWithPostfix, startPostfix, type PostfixInstance } from '../servers/postfix';
import { runDequeue } from '../support/dequeue-process';
import { startCustomerMx, type CustomerMx } from './customer-mx';

describeWithPostfix('ETRN through STARTTLS to a real Postfix, through the CLI', () => {
  let mx: CustomerMx;
  let postfix: PostfixInstance;
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'dequeue-postfix-tls-'));
    const cert = join(work, 'cert.pem');
    const key = join(work, 'key.pem');
    await promisify(execFile)(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=localhost',
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { timeout: 30_000 },
    );
    await chmod(key, 0o600);
    mx = await startCustomerMx();
    postfix = await startPostfix({
      relayDomains: ['customer.test'],
      customerMxPort: mx.port,
      mainCf: {
        smtpd_tls_security_level: 'may',
        smtpd_tls_cert_file: cert,
        smtpd_tls_key_file: key,
        smtpd_tls_loglevel: '1',
      },
    });
  });

  afterAll(async () => {
    await postfix?.stop();
    await mx?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function configFile(name: string, fields: Record<string, unknown>): Promise<string> {
    const path = join(work, `${name}.json`);
    const document = {
      settings: { helloName: 'mx.customer.test' },
      targets: [
        {
          name,
          host: postfix.host,
          port: postfix.port,
          tls: 'required',
          tlsVerify: false,
          command: 'ETRN customer.test',
          timeoutSeconds: 10,
          ...fields,
        },
      ],
    };
    await writeFile(path, JSON.stringify(document));
    return path;
  }

  it('releases a held message through STARTTLS: 250 inside TLS, the mail reaches the customer MX, Postfix counts a clean session', async () => {
    const held = await postfix.inject({
      to: 'alice@customer.test',
      subject: 'held until ETRN over TLS',
    });
    const run = await runDequeue([
      '--config',
      await configFile('postfix-tls', {}),
      '--json',
      '--verbose',
    ]);

    expect(run.status, run.stderr).toBe(0);
    const [result] = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as TargetResult);
    expect(result).toMatchObject({
      target: 'postfix-tls',
      outcome: 'signalled',
      replies: [{ command: 'ETRN customer.test', code: 250, text: 'Queuing started' }],
      error: null,
    });
    expect(run.stderr).toMatch(/\[postfix-tls\] \*: TLS started \(TLSv1\.[23]\)/);

    const message = await mx.waitFor(held.messageId);
    expect(message.header('Subject')).toBe('held until ETRN over TLS');
    await postfix.waitForLog(/TLS connection established from \S+\[127\.0\.0\.1\]/);
    await postfix.waitForLog(/disconnect from \S+ ehlo=2 starttls=1 etrn=1 quit=1 commands=5$/);
    expect(await postfix.log()).not.toMatch(/lost connection/);
  });

  it('AUTH that Postfix does not offer: permanent-failure, and still QUIT inside TLS (no "lost connection")', async () => {
    const secrets = join(work, 'secrets.json');
    await writeFile(
      secrets,
      JSON.stringify({ isp: { username: 'customer', password: 'never-sent' } }),
      { mode: 0o600 },
    );
    const run = await runDequeue([
      '--config',
      await configFile('postfix-tls-auth', { auth: { secretId: 'isp' } }),
      '--secrets',
      secrets,
      '--json',
    ]);

    expect(run.status, run.stderr).toBe(1);
    const [result] = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as TargetResult);
    expect(result).toMatchObject({
      target: 'postfix-tls-auth',
      outcome: 'permanent-failure',
      error: expect.stringMatching(/does not offer AUTH/),
    });
    await postfix.waitForLog(/disconnect from \S+ ehlo=2 starttls=1 quit=1 commands=4$/);
    expect(await postfix.log()).not.toMatch(/lost connection/);
  });
});
