/**
 * The provider among a domain's MX records when the target names it differently from its MX
 * record: by address (RFC 5321 section 5.1), so the check never counts the provider's own host as
 * the customer's server.
 */
import { describe, expect, it } from 'vitest';
import type { AddressResolver, MxResolver } from '../../../lambda/core/precheck/mx-servers';
import { precheckRelease } from '../../../lambda/core/precheck/precheck';
import { providerExchange } from '../../../lambda/core/precheck/provider-exchange';
import type { ServerCheckOptions } from '../../../lambda/core/precheck/server-check';

const DNS: Record<string, string[] | Error> = {
  'smtp.isp.example': ['203.0.113.7', '2001:db8::7'],
  'mx2.isp.example': ['2001:DB8::7'],
  'mx1.customer.example': ['198.51.100.1'],
  'mx3.elsewhere.example': ['192.0.2.99'],
  'broken.example': new Error('SERVFAIL from the DNS'),
};

function resolver() {
  const asked: string[] = [];
  const addresses: AddressResolver = async (host) => {
    asked.push(host);
    const found = DNS[host];
    if (found instanceof Error) throw found;
    return found ?? [];
  };
  return { asked, addresses };
}

const records = [
  { exchange: 'mx3.elsewhere.example', priority: 30 },
  { exchange: 'mx2.isp.example.', priority: 20 },
  { exchange: 'mx1.customer.example', priority: 10 },
];

describe('the provider among the MX records', () => {
  it('by name, without looking anything up', async () => {
    const r = resolver();
    const named = [...records, { exchange: 'SMTP.isp.example.', priority: 40 }];
    expect(await providerExchange(named, 'smtp.isp.example', r.addresses)).toEqual({
      exchange: 'smtp.isp.example',
    });
    expect(r.asked).toEqual([]);
  });

  it('by address, when the target names it differently (IPv6 spelt another way)', async () => {
    const r = resolver();
    expect(await providerExchange(records, 'smtp.isp.example', r.addresses)).toEqual({
      exchange: 'mx2.isp.example.',
      note: 'mx2.isp.example is the provider smtp.isp.example (both at 2001:db8::7)',
    });
  });

  it('by address, when the target is an IP address, IPv4-mapped answers included', async () => {
    const mapped: AddressResolver = async (host) =>
      host === 'mx2.isp.example' ? ['::ffff:203.0.113.7'] : [];
    expect((await providerExchange(records, '203.0.113.7', mapped)).exchange).toBe(
      'mx2.isp.example.',
    );
  });

  it('an exchange whose lookup fails is only left unmatched', async () => {
    const r = resolver();
    const withBroken = [{ exchange: 'broken.example', priority: 5 }, ...records];
    expect((await providerExchange(withBroken, 'smtp.isp.example', r.addresses)).exchange).toBe(
      'mx2.isp.example.',
    );
  });

  it("the provider's own addresses unknown: by name only, and said", async () => {
    const r = resolver();
    const found = await providerExchange(records, 'broken.example', r.addresses);
    expect(found.exchange).toBe('broken.example');
    expect(found.note).toMatch(/could not be looked up \(SERVFAIL from the DNS\).*by name only/);
  });

  it('no address resolver: by name only, nothing looked up', async () => {
    expect(await providerExchange(records, 'smtp.isp.example', undefined)).toEqual({
      exchange: 'smtp.isp.example',
    });
  });
});

describe('"mx" precheck with a provider known by another name', () => {
  it("never checks the provider's own host, nor a host it does not prefer to itself", async () => {
    const checked: string[] = [];
    const checkServer = async (o: ServerCheckOptions) => {
      checked.push(o.host);
      return { server: `${o.host}:25`, passed: o.host !== 'mx1.customer.example', text: 'x' };
    };
    const r = resolver();
    const resolveMx: MxResolver = Object.assign(async () => records, {
      addresses: r.addresses,
    });
    const lines: string[] = [];
    const decision = await precheckRelease(
      {
        name: 'isp',
        host: 'smtp.isp.example',
        protocol: 'smtp',
        commands: ['ETRN customer.example'],
      },
      'mx',
      {},
      { checkServer, resolveMx, transcript: { line: (_t, _d, text) => lines.push(text) } },
    );
    // Before, mx2.isp.example (the provider, up) passed the check and the ETRN went.
    expect(checked).toEqual(['mx1.customer.example']);
    expect(decision.send).toEqual([]);
    expect(lines).toContain(
      'precheck: mx2.isp.example is the provider smtp.isp.example (both at 2001:db8::7)',
    );
  });
});
