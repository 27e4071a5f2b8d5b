/**
 * Which stored recipients `deliver` may send to (issue 17 item 2): only those in the domains of
 * the message's target (RFC 2645 section 4: the customer's mail, nothing else). A store written
 * by someone else, an older version or a provider that slipped a stranger in must not make the
 * customer's server relay (it relays for localhost by default).
 *
 * The domains come from the configuration when `--config` is given (then a store cannot widen
 * them), else from the envelope, which records the domains the session accepted. An envelope of
 * an older version has none: without `--config` its recipients cannot be checked, so nothing is
 * sent and the message stays, deferred, with the reason.
 */
import { customerDomains, foreignRecipient } from '../../lambda/core/customer-domains';
import type { ConfigDocument } from '../../lambda/core/config';
import type { EnvelopeRecord } from '../../lambda/core/odmr/envelope-record';
import type { RecipientAnswer } from './mail-store';

/** The domains of a target by name, from `--config`; null: the configuration has no such target. */
export type DomainsOf = (target: string) => readonly string[] | null;

/** `--config`'s targets' domains (customer-domains.ts). */
export function domainsFromConfig(config: ConfigDocument): DomainsOf {
  const byName = new Map(config.targets.map((t) => [t.name, customerDomains(t)] as const));
  return (target) => byName.get(target) ?? null;
}

export type Gate =
  /** Recipients outside the domains, answered here (550 5.7.1), never sent. */
  | { readonly refused: readonly RecipientAnswer[] }
  /** The domains are not known: nothing is sent, the message stays. */
  | { readonly unknown: string };

export function recipientGate(
  envelope: EnvelopeRecord,
  target: string,
  domainsOf: DomainsOf | undefined,
): Gate {
  let domains: readonly string[] | undefined;
  if (domainsOf) {
    const configured = domainsOf(target);
    if (configured === null)
      return {
        unknown: `target ${target} is not in the --config file, so its recipients cannot be checked; nothing sent`,
      };
    domains = configured;
  } else if (envelope.domains) {
    domains = envelope.domains.map((d) => d.toLowerCase());
  } else {
    return {
      unknown:
        "the envelope records no customer's domains (stored by a version before issue 17): give --config so deliver can check its recipients; nothing sent",
    };
  }
  const refused: RecipientAnswer[] = [];
  for (const address of new Set(envelope.rcptTo)) {
    const why = foreignRecipient(address, domains);
    if (why)
      refused.push({
        address,
        code: 550,
        text: `5.7.1 not sent by dequeue deliver: the recipient ${why} of target ${target}`,
      });
  }
  return { refused };
}
