/**
 * The signal session against scripted providers on loopback: the ordinary dialogue, and one test
 * per fault a real server will not produce on demand. STARTTLS, AUTH and the raw protocol:
 * session-tls-auth.test.ts.
 */
import { createServer, type Server } from 'node:net';
import { describe, expect, it } from 'vitest';
import { releaseSignal } from '../../../lambda/core/signal/session';
import { credentials, etrnSessions } from './session-peers';

const { provider, target, signal } = etrnSessions();

describe('release signal: the ordinary dialogue', () => {
  it('sends EHLO, the ETRN and QUIT, and reports the reply', async () => {
    const p = await provider();
    const report = await signal(target(p));
    expect(report.outcome).toBe('signalled');
    expect(report.replies).toEqual([
      { command: 'ETRN example.com', code: 250, text: 'Queuing started' },
    ]);
    expect(p.lines).toEqual(['EHLO mx.customer.test', 'ETRN example.com', 'QUIT']);
  });

  it('sends every command even after a 251, and pipelines them with QUIT when PIPELINING is offered', async () => {
    const p = await provider({
      etrn: {
        'a.test': '251 No messages waiting for a.test',
        'b.test': '250 Queuing started for b.test',
      },
    });
    const report = await signal(target(p, { command: ['ETRN a.test', 'ETRN b.test'] }));
    expect(report.outcome).toBe('signalled');
    expect(report.replies.map((r) => r.code)).toEqual([251, 250]);
    expect(p.lines).toEqual(['EHLO mx.customer.test', 'ETRN a.test', 'ETRN b.test', 'QUIT']);
  });

  it('reports no-mail when every domain answers 251', async () => {
    const p = await provider({
      extensions: ['ETRN'],
      etrn: { 'a.test': '251 none', 'b.test': '251 none' },
    });
    const report = await signal(target(p, { command: ['ETRN a.test', 'ETRN b.test'] }));
    expect(report.outcome).toBe('no-mail');
    expect(p.lines).toEqual(['EHLO mx.customer.test', 'ETRN a.test', 'ETRN b.test', 'QUIT']);
  });

  it.each([
    ['458 Unable to queue messages for node', 'temporary-failure'],
    ['459 Node example.com not allowed: access denied', 'permanent-failure'],
    ['554 5.7.1 Access denied', 'permanent-failure'],
    ['500 5.5.2 Syntax error, command unrecognized', 'permanent-failure'],
    ['450 4.7.1 Client host rejected', 'temporary-failure'],
    ['252 OK, pending messages for node started', 'signalled'],
    ['253 OK, 14 pending messages for node example.com started', 'signalled'],
  ])('maps ETRN reply %s to %s', async (reply, outcome) => {
    const p = await provider({ etrn: { 'example.com': reply } });
    const report = await signal(target(p));
    expect(report.outcome).toBe(outcome);
    expect(report.replies[0]).toMatchObject({
      command: 'ETRN example.com',
      code: Number(reply.slice(0, 3)),
    });
  });

  it('a failure on one domain is the outcome even when another was accepted', async () => {
    const p = await provider({ etrn: { 'a.test': '250 ok', 'b.test': '458 cannot queue now' } });
    const report = await signal(target(p, { command: ['ETRN a.test', 'ETRN b.test'] }));
    expect(report.outcome).toBe('temporary-failure');
  });

  it('falls back to HELO when EHLO is refused with 5xx', async () => {
    const p = await provider({
      onLine: (l, c) =>
        l.startsWith('EHLO') ? (c.reply('502 5.5.1 EHLO not implemented'), true) : false,
    });
    const report = await signal(target(p));
    expect(report.outcome).toBe('signalled');
    expect(p.lines).toEqual([
      'EHLO mx.customer.test',
      'HELO mx.customer.test',
      'ETRN example.com',
      'QUIT',
    ]);
  });

  it('a command written with spaces around it is sent trimmed', async () => {
    const p = await provider({ extensions: ['ETRN'] });
    const report = await signal(target(p, { command: ['  ETRN a.test ', 'ETRN b.test\t'] }));
    expect(report.replies.map((r) => r.command)).toEqual(['ETRN a.test', 'ETRN b.test']);
    expect(p.lines).toEqual(['EHLO mx.customer.test', 'ETRN a.test', 'ETRN b.test', 'QUIT']);
  });

  it('says neither EHLO nor HELO when ehlo is false', async () => {
    const p = await provider();
    await signal(target(p, { ehlo: false }));
    expect(p.lines).toEqual(['ETRN example.com', 'QUIT']);
  });

  it('a bare connection (empty command) is signalled after the greeting', async () => {
    const p = await provider();
    const report = await signal(target(p, { command: [] }));
    expect(report).toMatchObject({ outcome: 'signalled', replies: [] });
    expect(p.lines).toEqual(['EHLO mx.customer.test', 'QUIT']);
  });

  it('sends an address literal of our own end when no helloName is set (RFC 5321 4.1.3)', async () => {
    const p = await provider();
    await releaseSignal(target(p), {}, { credentials });
    expect(p.lines[0]).toBe('EHLO [127.0.0.1]');
  });

  it('works over IPv6 and with a host name', async () => {
    const six = await provider({ host: '::1' });
    expect((await signal(target(six, { host: '::1' }))).outcome).toBe('signalled');
    const named = await provider();
    expect((await signal(target(named, { host: 'localhost' }))).outcome).toBe('signalled');
  });
});

describe('release signal: faults', () => {
  it('silence before the greeting is a temporary failure within the timeout', async () => {
    const p = await provider({ greeting: null });
    const started = Date.now();
    const report = await signal(target(p, { timeoutSeconds: 0.5 }));
    expect(report.outcome).toBe('temporary-failure');
    expect(report.error?.message).toMatch(/no complete reply .* to the greeting within/);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('421 at the greeting is temporary, 554 permanent, and nothing but QUIT is sent', async () => {
    const busy = await provider({ greeting: '421 4.3.2 Service not available, closing channel' });
    const r1 = await signal(target(busy));
    expect(r1.outcome).toBe('temporary-failure');
    expect(r1.replies).toEqual([
      { command: '(greeting)', code: 421, text: '4.3.2 Service not available, closing channel' },
    ]);
    expect(busy.lines).toEqual(['QUIT']);
    const denied = await provider({ greeting: '554 5.7.1 No service for you' });
    expect((await signal(target(denied))).outcome).toBe('permanent-failure');
  });

  it('a reset in the middle of a reply is a temporary failure naming the peer', async () => {
    const p = await provider({
      onLine: (l, c) => {
        if (!l.startsWith('EHLO')) return false;
        c.write('250-provider.test\r\n250-PIPE');
        setTimeout(() => c.destroy(), 20);
        return true;
      },
    });
    const report = await signal(target(p));
    expect(report.outcome).toBe('temporary-failure');
    expect(report.error?.message).toMatch(/127\.0\.0\.1:\d+ closed the connection/);
  });

  it('an endless line is cut off at 8 KiB, not buffered', async () => {
    const p = await provider({
      onLine: (l, c) => {
        if (!l.startsWith('EHLO')) return false;
        // 1 MiB without a line end: refused at 8 KiB, never held whole.
        c.write(Buffer.alloc(1024 * 1024, 'x'));
        return true;
      },
    });
    const report = await signal(target(p));
    expect(report.outcome).toBe('temporary-failure');
    expect(report.error?.message).toMatch(/longer than 8192 bytes|not an SMTP reply line/);
  });

  it('garbage instead of a reply is a protocol error', async () => {
    const p = await provider({ greeting: 'HTTP/1.1 400 Bad Request' });
    const report = await signal(target(p));
    expect(report.outcome).toBe('temporary-failure');
    expect(report.error?.name).toBe('ProtocolError');
    expect(report.error?.message).toMatch(/not an SMTP reply line: "HTTP\/1.1 400 Bad Request"/);
  });

  it('a reply nobody asked for is a protocol error, not ignored', async () => {
    const twice = (l: string, c: { write: (d: string) => void }) =>
      l.startsWith('ETRN') ? (c.write('250 one\r\n250 two\r\n'), true) : false;
    const p = await provider({ onLine: twice, extensions: ['ETRN'] });
    const report = await signal(target(p, { command: ['ETRN a.test', 'ETRN b.test'] }));
    expect(report.outcome).toBe('temporary-failure');
    expect(report.error?.name).toBe('ProtocolError');
    expect(report.error?.message).toMatch(/sent a reply nobody asked for: 250 two/);
    // The second reply was not taken as b.test's answer.
    expect(report.replies).toEqual([
      { command: 'ETRN a.test', code: 250, text: 'one' },
      {
        command: 'ETRN b.test',
        code: null,
        text: expect.stringMatching(/^no reply: .*nobody asked for/),
      },
    ]);
  });

  it('5xx to both EHLO and HELO is a permanent failure', async () => {
    const p = await provider({
      onLine: (l, c) => (/^(EHLO|HELO)/.test(l) ? (c.reply('550 go away'), true) : false),
    });
    const report = await signal(target(p));
    expect(report.outcome).toBe('permanent-failure');
    expect(report.replies).toEqual([{ command: 'HELO', code: 550, text: 'go away' }]);
    expect(p.lines).not.toContain('ETRN example.com');
  });

  it('a reply code changing inside a multi-line reply is a protocol error', async () => {
    const p = await provider({
      onLine: (l, c) => (l.startsWith('EHLO') ? (c.write('250-a\r\n251 b\r\n'), true) : false),
    });
    const report = await signal(target(p));
    expect(report.error?.message).toMatch(/reply code changed from 250 to 251/);
  });

  it('a provider that never answers QUIT does not hold the session: signalled after a brief wait', async () => {
    const p = await provider({ extensions: ['ETRN'], onLine: (l) => l === 'QUIT' });
    const started = Date.now();
    const report = await signal(target(p));
    expect(report.outcome).toBe('signalled');
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it("the run's deadline cuts a wait shorter than timeoutSeconds", async () => {
    const p = await provider({ extensions: ['ETRN'], onLine: (l) => l.startsWith('ETRN') });
    const started = Date.now();
    const report = await releaseSignal(
      target(p, { timeoutSeconds: 60 }),
      { deadline: Date.now() + 400 },
      { credentials },
    );
    expect(report.outcome).toBe('temporary-failure');
    expect(report.error?.message).toMatch(
      /no complete reply from 127\.0\.0\.1:\d+ to ETRN example.com before the run's deadline/,
    );
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('told to stop while an ETRN awaits its reply: the reply still counts, the next ETRN is not sent, QUIT ends the session', async () => {
    const stop = new AbortController();
    const p = await provider({
      extensions: ['ETRN'],
      onLine: (l, c) => {
        if (l !== 'ETRN a.test') return false;
        // The operator's Ctrl-C comes while the provider is still answering.
        stop.abort('SIGINT');
        setTimeout(() => c.reply('250 Queuing started'), 50);
        return true;
      },
    });
    const report = await releaseSignal(
      target(p, { command: ['ETRN a.test', 'ETRN b.test'], timeoutSeconds: 60 }),
      { stop: stop.signal },
      { credentials },
    );
    expect(p.lines.slice(1)).toEqual(['ETRN a.test', 'QUIT']);
    expect(report.replies).toEqual([
      { command: 'ETRN a.test', code: 250, text: 'Queuing started' },
      {
        command: 'ETRN b.test',
        code: null,
        text: 'no reply: the run was stopped (SIGINT): not sent',
      },
    ]);
    expect(report.outcome).toBe('temporary-failure');
  });

  it('told to stop while a reply never comes: the wait ends within the stop grace, not timeoutSeconds', async () => {
    const stop = new AbortController();
    const p = await provider({
      extensions: ['ETRN'],
      onLine: (l) => {
        if (!l.startsWith('ETRN')) return false;
        stop.abort('SIGTERM');
        return true;
      },
    });
    const started = Date.now();
    const report = await releaseSignal(
      target(p, { timeoutSeconds: 60 }),
      { stop: stop.signal },
      { credentials },
    );
    expect(report.outcome).toBe('temporary-failure');
    expect(report.error?.message).toMatch(
      /no complete reply from 127\.0\.0\.1:\d+ to ETRN example.com once the run was stopped \(SIGTERM\)/,
    );
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('a refused connection is a temporary failure', async () => {
    const server: Server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((r) => server.close(() => r()));
    const report = await signal(target({ port }));
    expect(report.outcome).toBe('temporary-failure');
    expect(report.error?.message).toMatch(
      /^cannot connect to 127\.0\.0\.1:\d+: the connection was refused \(ECONNREFUSED\): nothing listens on that port there, or a firewall refuses it$/,
    );
  });
});
