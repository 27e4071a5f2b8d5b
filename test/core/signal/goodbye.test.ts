/**
 * How a session ends, whatever went wrong: QUIT wherever the connection is still usable (RFC 5321
 * 4.1.1.10; servers otherwise log "lost connection after AUTH"), a clean TLS close (close_notify,
 * not "TLS connection was non-properly terminated"), and nothing left behind: no timer, no
 * socket, no rejected promise nobody handles.
 */
import { describe, expect, it } from 'vitest';
import type { Credentials } from '../../../lambda/core/ports';
import {
  type ScriptedProvider,
  type ScriptedProviderOptions,
  testCert,
} from '../../../peers/scripted-provider';
import { signalSessions } from '../../support/signal-session';
import { TlsCloseWatch } from '../../support/tls-close-watch';

const account = { username: 'customer', password: 's3cret-pass' };
const credentials: Credentials = { get: async () => account };

const { provider, target, signal } = signalSessions({
  credentials,
  account,
  targetFields: { host: 'localhost', command: 'ETRN example.com' },
});

/** The provider's side sees our close a turn or two of the event loop after we are done. */
async function providerSideClosed(p: ScriptedProvider): Promise<void> {
  for (let wait = 0; wait < 400 && !p.connections.every((c) => c.closed); wait++)
    await new Promise((r) => setTimeout(r, 5));
}

const tls = testCert('localhost');

describe('a failed session still says QUIT and closes TLS cleanly', () => {
  it('after AUTH 535 over TLS: QUIT, then a close_notify (a clean TLS close, not a dropped connection)', async () => {
    // Implicit TLS 1.2, so that the watch can see the client's alert record; this provider
    // answers QUIT but leaves the close to us, so the close_notify must be ours.
    const p = await provider({
      tls: { ...tls, maxVersion: 'TLSv1.2' } as typeof tls,
      implicitTls: true,
      extensions: ['ETRN', 'AUTH PLAIN'],
      account: { username: 'customer', password: 'other' },
      onLine: (l, c) => (l === 'QUIT' ? (c.reply('221 2.0.0 Bye'), true) : false),
    });
    const watch = await new TlsCloseWatch(p.port).start();
    try {
      const report = await signal(
        target({ port: watch.port }, { tls: 'implicit', auth: { secretId: 'isp' } }),
      );
      expect(report.outcome).toBe('permanent-failure');
      expect(report.replies).toEqual([
        { command: 'AUTH PLAIN', code: 535, text: '5.7.8 Authentication credentials invalid' },
      ]);
      expect(p.lines).toEqual([
        'EHLO mx.customer.test',
        expect.stringMatching(/^AUTH PLAIN /),
        'QUIT',
      ]);
      await providerSideClosed(p);
      expect(watch.alerts).toEqual([true]);
    } finally {
      await watch.stop();
    }
  });

  it.each<[string, ScriptedProviderOptions, Record<string, unknown>, string[]]>([
    [
      'a mechanism refused here (PLAIN would cross cleartext)',
      { extensions: ['ETRN', 'AUTH PLAIN'] },
      { auth: { secretId: 'isp' } },
      ['EHLO mx.customer.test', 'QUIT'],
    ],
    ['a refused greeting (554)', { greeting: '554 5.7.1 No service for you' }, {}, ['QUIT']],
    [
      'EHLO and HELO refused',
      { onLine: (l, c) => (/^(EHLO|HELO)/.test(l) ? (c.reply('550 go away'), true) : false) },
      {},
      ['EHLO mx.customer.test', 'HELO mx.customer.test', 'QUIT'],
    ],
    [
      '"tls": "required" and no STARTTLS on offer',
      {},
      { tls: 'required' },
      ['EHLO mx.customer.test', 'QUIT'],
    ],
    [
      'STARTTLS refused under "required"',
      {
        tls,
        onLine: (l, c) =>
          l === 'STARTTLS' ? (c.reply('454 4.7.0 TLS not available'), true) : false,
      },
      { tls: 'required' },
      ['EHLO mx.customer.test', 'STARTTLS', 'QUIT'],
    ],
  ])('after %s: QUIT', async (_what, options, fields, lines) => {
    const p = await provider(options);
    const report = await signal(target(p, fields));
    expect(report.outcome).toMatch(/failure$/);
    expect(p.lines).toEqual(lines);
  });

  it('an AUTH error after a HELO fallback says the provider answered HELO, and does not suggest STARTTLS', async () => {
    const p = await provider({
      onLine: (l, c) =>
        l.startsWith('EHLO') ? (c.reply('502 5.5.1 EHLO not implemented'), true) : false,
    });
    const report = await signal(target(p, { auth: { secretId: 'isp' } }));
    expect(report.outcome).toBe('permanent-failure');
    expect(report.error?.message).toMatch(
      /refused EHLO and answered HELO, so it offers no ESMTP extensions and no AUTH/,
    );
    expect(report.error?.message).not.toMatch(/STARTTLS|"tls"/);
    expect(p.lines).toEqual(['EHLO mx.customer.test', 'HELO mx.customer.test', 'QUIT']);
  });
});

describe('nothing outlives the session', () => {
  it('a provider that never answers a pipelined QUIT: signalled, and no timer of the 60 s reply timeout is left', async () => {
    const p = await provider({ extensions: ['PIPELINING', 'ETRN'], onLine: (l) => l === 'QUIT' });
    const report = await signal(target(p, { timeoutSeconds: 60 }));
    expect(report).toMatchObject({
      outcome: 'signalled',
      replies: [{ command: 'ETRN example.com', code: 250 }],
    });
    // afterEach: no timer or socket left, no unhandled rejection.
  });

  it('a cut while a pipelined group is in flight: temporary-failure, every command named, no rejection left unhandled', async () => {
    const p = await provider({
      tls,
      extensions: ['PIPELINING', 'ETRN'],
      onLine: (l, c) => (l === 'ETRN a.test' ? (c.destroy(), true) : false),
    });
    const report = await signal(
      target(p, { tls: 'required', command: ['ETRN a.test', 'ETRN b.test', 'ETRN c.test'] }),
    );
    expect(report.outcome).toBe('temporary-failure');
    expect(report.replies).toEqual(
      ['a', 'b', 'c'].map((d) => ({
        command: `ETRN ${d}.test`,
        code: null,
        text: expect.stringMatching(/^no reply: .*closed the connection/),
      })),
    );
    // Let any rejection that nobody handled surface before afterEach looks.
    await new Promise((r) => setImmediate(r));
  });

  it('a reply timeout while a pipelined group is in flight: temporary-failure, no rejection left unhandled', async () => {
    const p = await provider({
      tls,
      extensions: ['PIPELINING', 'ETRN'],
      onLine: (l) => l.startsWith('ETRN'),
    });
    const report = await signal(
      target(p, { tls: 'required', timeoutSeconds: 0.3, command: ['ETRN a.test', 'ETRN b.test'] }),
    );
    expect(report.outcome).toBe('temporary-failure');
    expect(report.error?.message).toMatch(
      /no complete reply from .* to ETRN a\.test within 300 ms/,
    );
    await new Promise((r) => setImmediate(r));
  });
});
