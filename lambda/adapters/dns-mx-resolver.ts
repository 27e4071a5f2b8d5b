/**
 * `MxResolver` (lambda/core/precheck/mx-servers.ts) over the system's DNS servers, for
 * `"precheck": "mx"`. The CLI and the Lambda plug it in; the core imports no DNS client.
 *
 * c-ares' answers mapped to the port's: ENODATA (the name exists, no MX) is no records, which
 * RFC 5321 section 5.1 reads as the implicit MX; ENOTFOUND (NXDOMAIN) is no such domain; anything
 * else (SERVFAIL, a timeout, a refusal) is a failed lookup, said as such. Each lookup is bounded:
 * every try waits at most LOOKUP_TIMEOUT_MS, and there are LOOKUP_TRIES of them.
 */
import { Resolver } from 'node:dns/promises';
import { NO_SUCH_DOMAIN, type MxResolver } from '../core/precheck/mx-servers';

export const LOOKUP_TIMEOUT_MS = 3_000;
export const LOOKUP_TRIES = 2;

/** A resolver using the system's configured DNS servers (or `servers`, e.g. for a test). */
export function dnsMxResolver(servers?: readonly string[]): MxResolver {
  const resolver = new Resolver({ timeout: LOOKUP_TIMEOUT_MS, tries: LOOKUP_TRIES });
  if (servers) resolver.setServers([...servers]);
  return async (domain, signal) => {
    const onAbort = () => resolver.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await resolver.resolveMx(domain);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENODATA') return [];
      if (code === 'ENOTFOUND') return NO_SUCH_DOMAIN;
      throw new Error(`${code ?? 'lookup failed'} from the DNS`, { cause: e });
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  };
}
