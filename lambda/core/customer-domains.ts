/**
 * Whose mail a target may receive after ATRN: the domains named in its ATRN command (RFC 2645
 * section 4: `ATRN domain,domain`), or, for a bare `ATRN`, its `mail.domains`. RFC 2645 has the
 * provider deliver the mail of the domains the customer asked for; a recipient in any other
 * domain does not belong in the session (stored and handed to the customer's server, it would
 * be relayed by proxy), so the reversed session refuses it and `deliver` will not send it.
 *
 * Comparison is of whole domains, case-insensitive (RFC 5321 2.4), one trailing dot ignored.
 * A subdomain is NOT covered by its parent: `customer.example` does not accept
 * `user@sales.customer.example`; list each domain. Exact match is the safe default: a provider
 * holding mail for a stranger's `x.customer.example` cannot push it through.
 */
import { isIP } from 'node:net';
import { ConfigError } from './errors';
import { isHost } from './config-names';

/** `Customer.Example.` -> `customer.example`. */
export function normaliseDomain(domain: string): string {
  const lower = domain.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** The domains an ATRN command names (`ATRN a.example,b.example`), none for a bare `ATRN`. */
export function atrnCommandDomains(command: string): string[] {
  const m = /^ATRN(?:[ \t]+(.*))?$/is.exec(command.trim());
  const args = m?.[1]?.trim() ?? '';
  return args === '' ? [] : args.split(',').map((d) => d.trim());
}

interface DomainsOf {
  readonly commands: readonly string[];
  readonly mail?: { readonly domains?: readonly string[] };
}

/**
 * The domains a target's ATRN mail may be for, normalised: its ATRN command's, else its
 * `mail.domains`; empty when it has neither (then no recipient is accepted).
 */
export function customerDomains(target: DomainsOf): readonly string[] {
  const atrn = target.commands.find((c) => /^ATRN\b/i.test(c.trim()));
  const named = atrn ? atrnCommandDomains(atrn) : [];
  const domains = named.length ? named : (target.mail?.domains ?? []);
  return [...new Set(domains.map(normaliseDomain))];
}

/** The domain of `local@domain` (after the last `@`: a quoted local part may hold one). */
export function domainOf(address: string): string | null {
  const at = address.lastIndexOf('@');
  return at === -1 ? null : address.slice(at + 1);
}

/**
 * Why `address` is not the customer's, or null when its domain is one of `domains`. `<Postmaster>`
 * without a domain (RFC 5321 4.5.1) is no customer's either: refused like any other.
 */
export function foreignRecipient(address: string, domains: readonly string[]): string | null {
  const domain = domainOf(address);
  if (domain === null) return "has no domain, and only the customer's domains are accepted";
  if (domains.includes(normaliseDomain(domain))) return null;
  if (!domains.length) return 'is refused: no domains are known for this customer';
  return `is not in the customer's domains (${domains.slice(0, 5).join(', ')}${domains.length > 5 ? ', ...' : ''})`;
}

/**
 * The configuration's rule (config.ts): an ATRN target says whose mail it takes. The command's
 * domains must be domain names; a bare `ATRN` needs `mail.domains`; with both, each domain the
 * command names must be one of `mail.domains` (they would disagree on whose mail it is).
 */
export function checkAtrnDomains(
  command: string,
  mailDomains: readonly string[] | undefined,
  where: string,
  commandField: string,
  domainsField: string,
): void {
  const named = atrnCommandDomains(command);
  for (const d of named)
    if (d === '' || isIP(d) !== 0 || !isHost(d))
      throw new ConfigError(
        where,
        commandField,
        `ATRN names "${d}": each must be a domain name, as in "ATRN example.com,example.net" (RFC 2645 section 4)`,
      );
  if (!named.length && !mailDomains?.length)
    throw new ConfigError(
      where,
      domainsField,
      'is required for a bare "ATRN": the domains whose mail this customer receives; mail for any other domain is refused (550 5.7.1). Or name them in the command: "ATRN example.com"',
    );
  if (named.length && mailDomains?.length) {
    const listed = mailDomains.map(normaliseDomain);
    const missing = named.find((d) => !listed.includes(normaliseDomain(d)));
    if (missing !== undefined)
      throw new ConfigError(
        where,
        domainsField,
        `does not list "${missing}", which the ATRN command names: list every domain the command names, or leave mail.domains out`,
      );
  }
}
