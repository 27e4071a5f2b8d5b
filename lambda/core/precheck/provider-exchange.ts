/**
 * Which of a domain's MX records is the provider itself.
 *
 * RFC 5321 section 5.1: a sender that finds itself among the MX records discards that record and
 * every one it does not prefer to it, and it knows itself by its names *and its addresses*. A
 * target's `host` is how we reach the provider (`203.0.113.7`, `smtp.isp.example`), not always
 * the name its MX record uses (`mx2.isp.example`). Compared by name only, such a provider would
 * not be recognised: the check would go on to the provider's own host, find it up, and release
 * mail the provider can only defer again. So when no record names the provider, the addresses
 * are compared: the provider's, and each exchange's.
 *
 * Every lookup is bounded by the resolver (lambda/adapters/dns-mx-resolver.ts); one that fails
 * only leaves that host unmatched, and a provider whose own addresses cannot be found is compared
 * by name only, said in the note.
 */
import { isIP } from 'node:net';
import { type AddressResolver, type MxRecord, NO_SUCH_DOMAIN, sameHost } from './mx-servers';

/** Exchanges looked up at most per domain: a bound on lookups, as MAX_MX_HOSTS is on checks. */
export const MAX_EXCHANGE_LOOKUPS = 10;

export interface ProviderExchange {
  /** The name to treat as the provider in the MX records: a record's exchange, or `host` itself. */
  readonly exchange: string;
  /** What the comparison found, when it was by address or could not be made. */
  readonly note?: string;
}

/** The provider `host` among `records`, by name, else by address when `addresses` is given. */
export async function providerExchange(
  records: readonly MxRecord[] | typeof NO_SUCH_DOMAIN,
  host: string,
  addresses: AddressResolver | undefined,
  signal?: AbortSignal,
): Promise<ProviderExchange> {
  if (records === NO_SUCH_DOMAIN || records.length === 0) return { exchange: host };
  if (!addresses || records.some((r) => sameHost(r.exchange, host))) return { exchange: host };
  let own: ReadonlySet<string>;
  try {
    own = new Set((await addressesOf(host, addresses, signal)).map(canonical));
  } catch (e) {
    return {
      exchange: host,
      note: `the provider's own addresses could not be looked up (${(e as Error).message}): it is recognised among the MX records by name only`,
    };
  }
  if (own.size === 0) return { exchange: host };
  const byPreference = [...records]
    .map((r, i) => ({ ...r, i }))
    .sort((a, b) => a.priority - b.priority || a.i - b.i);
  const names = [...new Set(byPreference.map((r) => r.exchange))].slice(0, MAX_EXCHANGE_LOOKUPS);
  // A failed lookup of one exchange leaves it unmatched; the others still count.
  const found = await Promise.all(
    names.map((name) => addressesOf(name, addresses, signal).catch(() => [] as string[])),
  );
  for (const record of byPreference) {
    const at = names.indexOf(record.exchange);
    if (at < 0) continue;
    const shared = found[at]!.map(canonical).find((a) => own.has(a));
    if (shared !== undefined)
      return {
        exchange: record.exchange,
        note: `${record.exchange.replace(/\.$/, '')} is the provider ${host} (both at ${shared})`,
      };
  }
  return { exchange: host };
}

async function addressesOf(
  host: string,
  addresses: AddressResolver,
  signal?: AbortSignal,
): Promise<readonly string[]> {
  const bare = host.replace(/\.$/, '');
  return isIP(bare) !== 0 ? [bare] : addresses(bare, signal);
}

/** One spelling per address: IPv6 in lower case, an IPv4-mapped IPv6 address as IPv4. */
function canonical(address: string): string {
  const lower = address.toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  return mapped ? mapped[1]! : lower;
}
