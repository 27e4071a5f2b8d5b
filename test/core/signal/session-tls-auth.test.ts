/**
 * The signal session against scripted providers on loopback: STARTTLS and implicit TLS, each AUTH
 * mechanism and its refusals, and the raw (FINGER-style) protocol. The ordinary dialogue and its
 * faults: session.test.ts.
 */
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { parseTarget } from '../../../lambda/core/config';
import { testCert } from '../../../peers/scripted-provider';
import { account, etrnSessions } from './session-peers';

const { provider, target, signal } = etrnSessions();

describe('release signal: TLS', () => {
  it('upgrades with STARTTLS, verifies the certificate and asks EHLO again', async () => {
    const p = await provider({ tls: testCert('localhost') });
    const report = await signal(target(p, { host: 'localhost', tls: 'required' }));
    expect(report.outcome).toBe('signalled');
    expect(p.lines).toEqual([
      'EHLO mx.customer.test',
      'STARTTLS',
      'EHLO mx.customer.test',
      'ETRN example.com',
      'QUIT',
    ]);
    expect(p.connections[0]!.encrypted).toBe(true);
  });

  it('a certificate that does not match the host is a permanent failure and nothing is sent', async () => {
    const p = await provider({ tls: testCert('wrong') });
    const report = await signal(target(p, { host: 'localhost', tls: 'opportunistic' }));
    expect(report.outcome).toBe('permanent-failure');
    expect(report.error?.message).toMatch(
      /TLS with localhost:\d+ failed: .*(altnames|does not match)/i,
    );
    expect(p.lines).toEqual(['EHLO mx.customer.test', 'STARTTLS']);
  });

  it('tlsVerify false accepts the mismatched certificate', async () => {
    const p = await provider({ tls: testCert('wrong') });
    const report = await signal(
      target(p, { host: 'localhost', tls: 'required', tlsVerify: false }),
    );
    expect(report.outcome).toBe('signalled');
  });

  it('STARTTLS refused: "required" fails, "opportunistic" goes on unencrypted', async () => {
    const refuse = (l: string, c: { reply: (t: string) => void }) =>
      l === 'STARTTLS' ? (c.reply('454 4.7.0 TLS not available'), true) : false;
    const p = await provider({ tls: testCert('localhost'), onLine: refuse });
    const required = await signal(target(p, { host: 'localhost', tls: 'required' }));
    expect(required.outcome).toBe('temporary-failure');
    expect(required.replies).toEqual([
      { command: 'STARTTLS', code: 454, text: '4.7.0 TLS not available' },
    ]);
    const opportunistic = await signal(target(p, { host: 'localhost', tls: 'opportunistic' }));
    expect(opportunistic.outcome).toBe('signalled');
  });

  it('"required" without STARTTLS on offer is a permanent failure before any command', async () => {
    const p = await provider();
    const report = await signal(target(p, { tls: 'required' }));
    expect(report.outcome).toBe('permanent-failure');
    expect(report.error?.message).toMatch(/does not offer STARTTLS/);
    expect(p.lines).toEqual(['EHLO mx.customer.test', 'QUIT']);
  });

  it('bytes sent after the 220 to STARTTLS, before TLS, are refused (RFC 3207, CVE-2011-0411)', async () => {
    const inject = (l: string, c: { write: (d: string) => void }) =>
      l === 'STARTTLS' ? (c.write('220 go ahead\r\n250 injected\r\n'), true) : false;
    const p = await provider({ tls: testCert('localhost'), onLine: inject });
    const report = await signal(target(p, { host: 'localhost', tls: 'required' }));
    expect(report.outcome).toBe('temporary-failure');
    expect(report.error?.message).toMatch(
      /sent data after its 220 to STARTTLS|sent a reply nobody asked for: 250 injected/,
    );
    expect(p.lines).not.toContain('ETRN example.com');
  });

  it('a partial line injected after the 220 to STARTTLS is refused too', async () => {
    const inject = (l: string, c: { write: (d: string) => void }) =>
      l === 'STARTTLS' ? (c.write('220 go ahead\r\n250 inj'), true) : false;
    const p = await provider({ tls: testCert('localhost'), onLine: inject });
    const report = await signal(target(p, { host: 'localhost', tls: 'required' }));
    expect(report.error?.message).toMatch(/sent data after its 220 to STARTTLS, before TLS began/);
  });

  it('implicit TLS from the first byte', async () => {
    const p = await provider({ tls: testCert('localhost'), implicitTls: true });
    const report = await signal(target(p, { host: 'localhost', tls: 'implicit' }));
    expect(report.outcome).toBe('signalled');
    expect(p.connections[0]!.encrypted).toBe(true);
  });
});

describe('release signal: AUTH', () => {
  const auth = { secretId: 'isp' };

  it.each(['PLAIN', 'LOGIN', 'CRAM-MD5'])('authenticates with %s over TLS', async (mechanism) => {
    const p = await provider({
      tls: testCert('localhost'),
      extensions: ['PIPELINING', 'ETRN', `AUTH ${mechanism}`],
    });
    const lines: string[] = [];
    const report = await signal(
      target(p, { host: 'localhost', tls: 'required', auth: { ...auth, mechanism } }),
      {
        transcript: { line: (_t, d, x) => lines.push(`${d}: ${x}`) },
      },
    );
    expect(report.outcome).toBe('signalled');
    expect(p.connections[0]!.authenticated).toBe(true);
    const transcript = lines.join('\n');
    expect(transcript).not.toContain(account.password);
    expect(transcript).not.toContain(Buffer.from(account.username).toString('base64'));
    expect(transcript).not.toContain(
      Buffer.from(`\0${account.username}\0${account.password}`).toString('base64'),
    );
    expect(JSON.stringify(report)).not.toContain(account.password);
  });

  it('over TLS with a verified certificate prefers PLAIN to CRAM-MD5 (the server need not keep the password)', async () => {
    const p = await provider({
      tls: testCert('localhost'),
      extensions: ['ETRN', 'AUTH CRAM-MD5 PLAIN LOGIN'],
    });
    const report = await signal(target(p, { host: 'localhost', tls: 'required', auth }));
    expect(report.outcome).toBe('signalled');
    expect(p.lines[3]).toMatch(/^AUTH PLAIN /);
  });

  it('over TLS whose certificate is not verified keeps CRAM-MD5 first (the far end may not be the provider)', async () => {
    const p = await provider({
      tls: testCert('wrong'),
      extensions: ['ETRN', 'AUTH PLAIN LOGIN CRAM-MD5'],
    });
    const report = await signal(
      target(p, { host: 'localhost', tls: 'required', tlsVerify: false, auth }),
    );
    expect(report.outcome).toBe('signalled');
    expect(p.lines[3]).toBe('AUTH CRAM-MD5');
  });

  it('picks CRAM-MD5 first when several are offered, even unencrypted', async () => {
    const p = await provider({ extensions: ['ETRN', 'AUTH PLAIN LOGIN CRAM-MD5'] });
    const report = await signal(target(p, { auth }));
    expect(report.outcome).toBe('signalled');
    expect(p.lines[1]).toBe('AUTH CRAM-MD5');
  });

  it('never sends PLAIN or LOGIN unencrypted unless allowPlaintextAuth, and says why', async () => {
    const p = await provider({ extensions: ['ETRN', 'AUTH PLAIN LOGIN'] });
    const report = await signal(target(p, { auth }));
    expect(report.outcome).toBe('permanent-failure');
    expect(report.error?.message).toMatch(
      /no AUTH mechanism may be used: offered PLAIN LOGIN.*allowPlaintextAuth/,
    );
    expect(p.lines.some((l) => l.startsWith('AUTH'))).toBe(false);
    expect(p.lines).not.toContain('ETRN example.com');

    const allowed = await signal(target(p, { auth, allowPlaintextAuth: true }));
    expect(allowed.outcome).toBe('signalled');
  });

  it('a pinned mechanism the provider does not offer is a permanent failure', async () => {
    const p = await provider({ extensions: ['ETRN', 'AUTH CRAM-MD5'] });
    const report = await signal(
      target(p, { auth: { ...auth, mechanism: 'LOGIN' }, allowPlaintextAuth: true }),
    );
    expect(report.outcome).toBe('permanent-failure');
    expect(report.error?.message).toMatch(
      /AUTH LOGIN is not offered by the provider \(offered: CRAM-MD5\)/,
    );
  });

  it('535 is a permanent failure and the release command is not sent', async () => {
    const p = await provider({
      extensions: ['ETRN', 'AUTH CRAM-MD5'],
      account: { username: 'customer', password: 'other' },
    });
    const report = await signal(target(p, { auth }));
    expect(report.outcome).toBe('permanent-failure');
    expect(report.replies).toEqual([
      { command: 'AUTH CRAM-MD5', code: 535, text: '5.7.8 Authentication credentials invalid' },
    ]);
    expect(p.lines).not.toContain('ETRN example.com');
  });

  it('a missing secret fails before any connection is made', async () => {
    const p = await provider();
    await expect(signal(target(p, { auth: { secretId: 'nope' } }))).rejects.toThrow(
      /secret "nope" not found/,
    );
    expect(p.connections).toHaveLength(0);
  });
});

describe('release signal: raw protocol', () => {
  it('sends the FINGER line and reads until the host closes', async () => {
    const server = createServer((s) => {
      s.once('data', (d) => {
        s.end(`Login: ${d.toString().trim()}\r\nNo mail.\r\n`);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const report = await signal(
        parseTarget(
          { name: 'f', host: '127.0.0.1', port, protocol: 'raw', command: 'customer' },
          'test',
        ),
      );
      expect(report).toMatchObject({
        outcome: 'signalled',
        replies: [{ command: 'customer', code: null, text: 'Login: customer\nNo mail.' }],
      });
    } finally {
      server.close();
    }
  });
});
