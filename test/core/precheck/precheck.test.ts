/**
 * Which lines a target may send after its check: a fixed server gates the whole target, "mx"
 * gates each domain on its own MX set, --force sends everything and still reports. The servers
 * here are scripted verdicts (server-check.test.ts checks real sockets).
 */
import { describe, expect, it } from 'vitest';
import { NO_SUCH_DOMAIN, type MxResolver } from '../../../lambda/core/precheck/mx-servers';
import { precheckRelease, precheckText } from '../../../lambda/core/precheck/precheck';
import type { ServerCheckOptions } from '../../../lambda/core/precheck/server-check';

const server = { host: 'mx1.customer.example', port: 25, timeoutSeconds: 10, tls: 'none' as const };

/** Servers by host: up (220) unless listed as down with what they did. */
function servers(down: Record<string, string> = {}) {
  const asked: string[] = [];
  const check = async (o: ServerCheckOptions) => {
    asked.push(o.host);
    const failed = down[o.host];
    return failed
      ? { server: `${o.host}:${o.port}`, passed: false, text: failed }
      : { server: `${o.host}:${o.port}`, passed: true, text: 'greeted 220' };
  };
  return { asked, check };
}

const mx: MxResolver = async (domain) => {
  switch (domain) {
    case 'a.example':
      return [
        { exchange: 'mx2.a.example', priority: 20 },
        { exchange: 'mx1.a.example', priority: 10 },
        { exchange: 'relay.isp.example', priority: 30 },
      ];
    case 'b.example':
      return [{ exchange: 'mx.b.example', priority: 10 }];
    case 'shared.example':
      return [{ exchange: 'mx1.a.example', priority: 10 }];
    case 'gone.example':
      return NO_SUCH_DOMAIN;
    default:
      throw new Error('SERVFAIL from the DNS');
  }
};

const target = (commands: string[]) => ({
  name: 'isp',
  host: 'relay.isp.example',
  protocol: 'smtp',
  commands,
});

describe('the check before the signal', () => {
  it('a fixed server up: every line goes', async () => {
    const s = servers();
    const d = await precheckRelease(
      target(['ETRN a.example', 'ETRN b.example']),
      server,
      {},
      {
        checkServer: s.check,
      },
    );
    expect(d).toMatchObject({ send: ['ETRN a.example', 'ETRN b.example'], withheld: [] });
    expect(d.report.passed).toBe(true);
    expect(d.reason).toBeUndefined();
  });

  it('a fixed server down: nothing goes, and the reason names the server and what happened', async () => {
    const s = servers({ 'mx1.customer.example': 'refused the connection' });
    const d = await precheckRelease(
      target(['ETRN customer.example']),
      server,
      {},
      {
        checkServer: s.check,
      },
    );
    expect(d.send).toEqual([]);
    expect(d.reason).toBe(
      'mx1.customer.example:25 refused the connection: the provider could not deliver now; ETRN customer.example not sent',
    );
    expect(precheckText(d.report)).toBe('mx1.customer.example:25 refused the connection');
  });

  it('a bare connection down says so', async () => {
    const s = servers({ 'mx1.customer.example': 'did not answer within 10 s' });
    const d = await precheckRelease(target([]), server, {}, { checkServer: s.check });
    expect(d.reason).toMatch(/; the bare connection not sent$/);
  });

  it('"mx": hosts in preference order until one answers; the provider itself is never checked', async () => {
    const s = servers({ 'mx1.a.example': 'refused the connection' });
    const d = await precheckRelease(
      target(['ETRN a.example']),
      'mx',
      {},
      {
        checkServer: s.check,
        resolveMx: mx,
      },
    );
    expect(s.asked).toEqual(['mx1.a.example', 'mx2.a.example']);
    expect(d.send).toEqual(['ETRN a.example']);
    expect(precheckText(d.report)).toBe(
      'a.example: mx1.a.example:25 refused the connection, mx2.a.example:25 greeted 220',
    );
  });

  it('"mx" with several domains: each is released only when its own server answers', async () => {
    const s = servers({ 'mx.b.example': 'greeted 421 busy' });
    const d = await precheckRelease(
      target(['ETRN a.example', 'ETRN b.example', 'ETRN shared.example']),
      'mx',
      {},
      { checkServer: s.check, resolveMx: mx },
    );
    expect(d.send).toEqual(['ETRN a.example', 'ETRN shared.example']);
    expect(d.withheld).toEqual([
      {
        command: 'ETRN b.example',
        code: null,
        text: 'not sent: b.example: mx.b.example:25 greeted 421 busy: the provider could not deliver now',
      },
    ]);
    expect(d.reason).toBeUndefined();
    // mx1.a.example serves two domains: one connection.
    expect(s.asked.filter((h) => h === 'mx1.a.example')).toHaveLength(1);
  });

  it('"mx": NXDOMAIN and a failed lookup fail that domain, saying which', async () => {
    const s = servers();
    const d = await precheckRelease(
      target(['ETRN gone.example', 'ETRN broken.example']),
      'mx',
      {},
      { checkServer: s.check, resolveMx: mx },
    );
    expect(d.send).toEqual([]);
    expect(d.reason).toMatch(/^gone\.example: gone\.example does not exist in the DNS/);
    expect(d.reason).toMatch(
      /broken\.example: the MX records of broken\.example could not be looked up: SERVFAIL from the DNS/,
    );
    expect(s.asked).toEqual([]);
  });

  it('--force sends every line and still reports the failed check', async () => {
    const s = servers({ 'mx1.customer.example': 'refused the connection' });
    const d = await precheckRelease(
      target(['ETRN customer.example']),
      server,
      { force: true },
      {
        checkServer: s.check,
      },
    );
    expect(d.send).toEqual(['ETRN customer.example']);
    expect(d.report.passed).toBe(false);
  });
});
