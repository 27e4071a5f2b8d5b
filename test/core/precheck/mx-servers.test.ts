/**
 * Which hosts `"precheck": "mx"` checks for a domain: the order the provider would try them in,
 * without the provider itself and everything it does not prefer to itself (RFC 5321 section 5.1),
 * and the cases with nothing to check.
 */
import { describe, expect, it } from 'vitest';
import { mxServers, NO_SUCH_DOMAIN } from '../../../lambda/core/precheck/mx-servers';

const provider = 'backup.isp.example';

describe('the MX set of a domain, as the provider sees it', () => {
  it("lowest preference first; equal preferences keep the resolver's order", () => {
    const found = mxServers(
      'customer.example',
      [
        { exchange: 'mx3.customer.example', priority: 30 },
        { exchange: 'mx1.customer.example', priority: 10 },
        { exchange: 'mx2b.customer.example', priority: 20 },
        { exchange: 'mx2a.customer.example', priority: 20 },
      ],
      provider,
    );
    expect(found.hosts).toEqual([
      'mx1.customer.example',
      'mx2b.customer.example',
      'mx2a.customer.example',
      'mx3.customer.example',
    ]);
  });

  it('the provider and every host it does not prefer to itself are left out, case and trailing dot aside', () => {
    const found = mxServers(
      'customer.example',
      [
        { exchange: 'mx1.customer.example', priority: 10 },
        { exchange: 'BACKUP.isp.example.', priority: 20 },
        { exchange: 'mx-same.customer.example', priority: 20 },
        { exchange: 'mx-last.customer.example', priority: 30 },
      ],
      provider,
    );
    expect(found.hosts).toEqual(['mx1.customer.example']);
    expect(found.hosts && found.note).toMatch(
      /BACKUP\.isp\.example and any not preferred to it left out/,
    );
  });

  it('the provider as the best MX: nobody to check, and it says why', () => {
    const found = mxServers(
      'customer.example',
      [
        { exchange: provider, priority: 5 },
        { exchange: 'mx1.customer.example', priority: 10 },
      ],
      provider,
    );
    expect(found.hosts).toBeUndefined();
    expect(!found.hosts && found.problem).toMatch(
      /the provider backup\.isp\.example is itself the most preferred MX of customer\.example/,
    );
  });

  it('no MX records: the domain itself (the implicit MX)', () => {
    expect(mxServers('customer.example', [], provider).hosts).toEqual(['customer.example']);
  });

  it('NXDOMAIN and a null MX (RFC 7505) leave nothing to check', () => {
    const none = mxServers('gone.example', NO_SUCH_DOMAIN, provider);
    expect(!none.hosts && none.problem).toMatch(/gone\.example does not exist in the DNS/);
    const nul = mxServers('nomail.example', [{ exchange: '', priority: 0 }], provider);
    expect(!nul.hosts && nul.problem).toMatch(/null MX \(RFC 7505\)/);
  });

  it('at most five hosts are tried', () => {
    const records = Array.from({ length: 8 }, (_, i) => ({
      exchange: `mx${i}.customer.example`,
      priority: i,
    }));
    const found = mxServers('customer.example', records, provider);
    expect(found.hosts).toHaveLength(5);
    expect(found.hosts && found.note).toMatch(/only the first 5 are tried/);
  });
});
