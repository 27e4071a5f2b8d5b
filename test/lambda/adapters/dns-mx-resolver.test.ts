/**
 * The system-resolver adapter for `"precheck": "mx"` against a DNS server on loopback
 * (peers/scripted-dns-server.ts): each DNS answer mapped to what the precheck reads from it, and
 * every lookup bounded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dnsMxResolver } from '../../../lambda/adapters/dns-mx-resolver';
import { NO_SUCH_DOMAIN } from '../../../lambda/core/precheck/mx-servers';
import { providerExchange } from '../../../lambda/core/precheck/provider-exchange';
import { ScriptedDnsServer } from '../../../peers/scripted-dns-server';

let dns: ScriptedDnsServer;
beforeAll(async () => {
  dns = await new ScriptedDnsServer({
    'customer.test': {
      mx: [
        { exchange: 'mx1.customer.test', priority: 10 },
        { exchange: 'mx2.isp.test', priority: 20 },
      ],
    },
    'mx1.customer.test': { a: ['198.51.100.1'] },
    'mx2.isp.test': { aaaa: ['2001:db8::7'] },
    'smtp.isp.test': { a: ['203.0.113.7'], aaaa: ['2001:db8::7'] },
    'nodata.test': { a: ['192.0.2.1'] },
    'broken.test': { fail: 'servfail' },
    'slow.test': { fail: 'silence' },
  }).start();
});
afterAll(() => dns?.stop());

describe('the MX resolver over DNS', () => {
  it('MX records as the server gave them', async () => {
    const resolve = dnsMxResolver([dns.address]);
    expect(await resolve('customer.test')).toEqual([
      { exchange: 'mx1.customer.test', priority: 10 },
      { exchange: 'mx2.isp.test', priority: 20 },
    ]);
  });

  it('a name with no MX is no records (the implicit MX); NXDOMAIN is no such domain', async () => {
    const resolve = dnsMxResolver([dns.address]);
    expect(await resolve('nodata.test')).toEqual([]);
    expect(await resolve('gone.test')).toBe(NO_SUCH_DOMAIN);
  });

  it('SERVFAIL is a failed lookup, said as one', async () => {
    const resolve = dnsMxResolver([dns.address]);
    await expect(resolve('broken.test')).rejects.toThrow('ESERVFAIL from the DNS');
  });

  it('addresses: A and AAAA together, none for a name without them, SERVFAIL fails', async () => {
    const { addresses } = dnsMxResolver([dns.address]);
    expect([...(await addresses!('smtp.isp.test'))].sort()).toEqual(['2001:db8::7', '203.0.113.7']);
    expect(await addresses!('gone.test')).toEqual([]);
    await expect(addresses!('broken.test')).rejects.toThrow('ESERVFAIL from the DNS');
  });

  it('finds the provider among the MX records by address', async () => {
    const resolve = dnsMxResolver([dns.address]);
    const records = await resolve('customer.test');
    const own = await providerExchange(records, 'smtp.isp.test', resolve.addresses);
    expect(own.exchange).toBe('mx2.isp.test');
  });

  it('a server that never answers fails within the bound; an abort ends the wait at once', async () => {
    const resolve = dnsMxResolver([dns.address], { timeoutMs: 200, tries: 2 });
    const started = Date.now();
    await expect(resolve('slow.test')).rejects.toThrow('ETIMEOUT from the DNS');
    // c-ares doubles the wait on each try: 200 + 400 ms, with slack for a busy machine.
    expect(Date.now() - started).toBeLessThan(600 + 5_000);
    expect(dns.asked.filter((q) => q === 'slow.test MX')).toHaveLength(2);

    const abort = new AbortController();
    const waiting = resolve('slow.test', abort.signal);
    const settled = waiting.then(
      () => 'resolved',
      (e: Error) => e.message,
    );
    abort.abort();
    expect(await settled).toBe('ECANCELLED from the DNS');
  });
});
