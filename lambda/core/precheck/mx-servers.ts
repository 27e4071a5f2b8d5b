/**
 * `"precheck": "mx"`: which servers the provider would deliver a domain's mail to, in the order
 * it would try them, from the domain's MX records (RFC 5321 section 5.1):
 *
 * - lower preference first; records of equal preference in the order the resolver gave them
 *   (5.1 asks senders to randomise these; any order finds a server that answers);
 * - the provider's own host is left out, and with it every record of the same or a higher
 *   preference number: 5.1 says a sender that finds itself among the MX records "MUST discard"
 *   those, so the provider delivers only to the hosts it prefers to itself;
 * - no MX records at all: the domain itself is the one host (the "implicit MX", 5.1);
 * - a "null MX" (RFC 7505: one record, preference 0, exchange ".") says the domain takes no mail.
 *
 * The provider is recognised by name or by address (provider-exchange.ts).
 *
 * The lookup itself is a port (`MxResolver`): the core imports no DNS client; the CLI and the
 * Lambda plug in the system resolver (lambda/adapters/dns-mx-resolver.ts), tests their own.
 */

export interface MxRecord {
  readonly exchange: string;
  readonly priority: number;
}

/**
 * Looks up a domain's MX records. Resolves to the records ([] when the domain exists but has
 * none), or to NO_SUCH_DOMAIN for NXDOMAIN; rejects when the lookup itself failed (a timeout,
 * SERVFAIL), with an Error whose message says why.
 */
export interface MxResolver {
  (domain: string, signal?: AbortSignal): Promise<readonly MxRecord[] | typeof NO_SUCH_DOMAIN>;
  /**
   * The addresses (A and AAAA) of a host, to find the provider among the MX records when its
   * configured name is not the one its record uses (provider-exchange.ts). Without it the
   * provider is recognised by name only.
   */
  readonly addresses?: AddressResolver;
}

/**
 * Looks up a host's addresses: [] when it has none or does not exist; rejects when the lookup
 * failed (a timeout, SERVFAIL).
 */
export type AddressResolver = (host: string, signal?: AbortSignal) => Promise<readonly string[]>;

export const NO_SUCH_DOMAIN = 'no-such-domain' as const;

/** Hosts tried per domain at most: each may wait its timeout twice, and the run has a deadline. */
export const MAX_MX_HOSTS = 5;

/** The hosts to check for a domain, or why there is none to check. */
export type MxServers =
  | { readonly hosts: readonly string[]; readonly note: string }
  | { readonly hosts?: undefined; readonly problem: string };

/** A host name compared as DNS compares it: case-insensitive, the trailing dot ignored. */
export function sameHost(a: string, b: string): boolean {
  const norm = (h: string) => h.replace(/\.$/, '').toLowerCase();
  return norm(a) === norm(b);
}

/** The hosts the provider `provider` would deliver `domain`'s mail to, best first. */
export function mxServers(
  domain: string,
  records: readonly MxRecord[] | typeof NO_SUCH_DOMAIN,
  provider: string,
): MxServers {
  if (records === NO_SUCH_DOMAIN)
    return { problem: `${domain} does not exist in the DNS (NXDOMAIN): nothing can deliver to it` };
  if (records.length === 0)
    return {
      hosts: [domain],
      note: `${domain} has no MX records: its own address is its mail server (RFC 5321 section 5.1)`,
    };
  if (records.some((r) => r.exchange === '' || r.exchange === '.'))
    return {
      problem: `${domain} publishes a null MX (RFC 7505): it accepts no mail, so nothing can deliver to it`,
    };
  const sorted = records
    .map((r, i) => ({ ...r, i }))
    .sort((a, b) => a.priority - b.priority || a.i - b.i);
  const own = sorted.find((r) => sameHost(r.exchange, provider));
  const kept = own ? sorted.filter((r) => r.priority < own.priority) : sorted;
  const listed = sorted.map((r) => `${r.exchange.replace(/\.$/, '')} (${r.priority})`).join(', ');
  if (kept.length === 0)
    return {
      problem: `the provider ${provider} is itself the most preferred MX of ${domain} (${listed}): it would not deliver to anyone else (RFC 5321 section 5.1), so there is no server of the customer to check`,
    };
  const hosts = kept.slice(0, MAX_MX_HOSTS).map((r) => r.exchange.replace(/\.$/, ''));
  const left = own
    ? `; ${own.exchange.replace(/\.$/, '')} and any not preferred to it left out (the provider)`
    : '';
  const cut = kept.length > MAX_MX_HOSTS ? `; only the first ${MAX_MX_HOSTS} are tried` : '';
  return { hosts, note: `MX of ${domain}: ${listed}${left}${cut}` };
}
