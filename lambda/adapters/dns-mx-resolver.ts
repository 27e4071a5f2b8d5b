/**
 * `MxResolver` (lambda/core/precheck/mx-servers.ts) over the system's DNS servers, for
 * `"precheck": "mx"`. The CLI and the Lambda plug it in; the core imports no DNS client.
 *
 * c-ares' answers mapped to the port's: ENODATA (the name exists, no MX) is no records, which
 * RFC 5321 section 5.1 reads as the implicit MX; ENOTFOUND (NXDOMAIN) is no such domain; anything
 * else (SERVFAIL, a timeout, a refusal) is a failed lookup, said as such. Each lookup is bounded:
 * every try waits at most LOOKUP_TIMEOUT_MS, and there are LOOKUP_TRIES of them. `addresses`
 * (A and AAAA) lets the precheck find the provider among the MX records by address.
 */
import { Resolver } from 'node:dns/promises';
import { type AddressResolver, type MxResolver, NO_SUCH_DOMAIN } from '../core/precheck/mx-servers';

export const LOOKUP_TIMEOUT_MS = 3_000;
export const LOOKUP_TRIES = 2;

/**
 * A resolver using the system's configured DNS servers (or `servers`, e.g. for a test), each try
 * waiting `timeoutMs` (c-ares doubles it on each further try).
 */
export function dnsMxResolver(
  servers?: readonly string[],
  { timeoutMs = LOOKUP_TIMEOUT_MS, tries = LOOKUP_TRIES } = {},
): MxResolver {
  const resolver = new Resolver({ timeout: timeoutMs, tries });
  if (servers) resolver.setServers([...servers]);
  const cancellable = async <T>(lookup: () => Promise<T>, signal?: AbortSignal): Promise<T> => {
    const onAbort = () => resolver.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await lookup();
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  };
  const mx = async (domain: string, signal?: AbortSignal) => {
    try {
      // Only the two fields the port promises: some Node versions add `type: 'MX'`.
      const records = await cancellable(() => resolver.resolveMx(domain), signal);
      return records.map(({ exchange, priority }) => ({ exchange, priority }));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENODATA') return [];
      if (code === 'ENOTFOUND') return NO_SUCH_DOMAIN;
      throw lookupFailed(e);
    }
  };
  // A and AAAA asked at once; a name with neither (ENODATA, ENOTFOUND) has no addresses.
  const addresses: AddressResolver = async (host, signal) => {
    const families = await Promise.allSettled([
      cancellable(() => resolver.resolve4(host), signal),
      cancellable(() => resolver.resolve6(host), signal),
    ]);
    const found: string[] = [];
    let failure: unknown;
    for (const family of families) {
      if (family.status === 'fulfilled') found.push(...family.value);
      else if (!NO_ADDRESS.has((family.reason as NodeJS.ErrnoException).code ?? ''))
        failure ??= family.reason;
    }
    if (found.length === 0 && failure !== undefined) throw lookupFailed(failure);
    return found;
  };
  return Object.assign(mx, { addresses });
}

const NO_ADDRESS = new Set(['ENODATA', 'ENOTFOUND']);

function lookupFailed(e: unknown): Error {
  const code = (e as NodeJS.ErrnoException).code;
  return new Error(`${code ?? 'lookup failed'} from the DNS`, { cause: e });
}
