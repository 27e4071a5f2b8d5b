/**
 * What a stored message owes its sender once the server has answered (docs/bounces.md), decided
 * as a value: which recipients a delivery status notification must report (refused for good, or
 * given up at the give-up time, and not reported by an earlier DSN), and where the message goes
 * once that is settled. No socket, no store: bounce-send.ts sends, deliver-run.ts marks.
 */
import type { MessageOutcome } from './message-outcome';
import type { DsnRecord, ExpiredRecipient, RecipientAnswer } from './mail-store';

export interface DsnDue {
  /** Refused for good (5xx) and not yet reported. */
  readonly refused: readonly RecipientAnswer[];
  /** Still without a final answer at the give-up time (reported or not). */
  readonly expired: readonly ExpiredRecipient[];
  /** The recipients the DSN must report now (refused, then expired), none already reported. */
  readonly owed: readonly string[];
  /** The null reverse-path: no DSN, ever (RFC 5321 4.5.5; RFC 3464 2: no loops). */
  readonly suppressed: boolean;
}

/**
 * The DSN a message owes after this run's answers (`decided`). `expiredNow`: the message is past
 * its give-up time, so every recipient still waiting is given up.
 */
export function dsnDue(
  mailFrom: string,
  decided: MessageOutcome,
  notified: readonly DsnRecord[],
  expiredNow: boolean,
  /** Recipients refused before sending (not the customer's, recipient-gate.ts): never reported. */
  unreported: readonly { readonly address: string }[] = [],
): DsnDue {
  const reported = new Set([
    ...notified.flatMap((d) => d.recipients),
    ...unreported.map((r) => r.address),
  ]);
  const final = new Set(decided.finals.map((a) => a.address));
  const refused = decided.finals.filter((a) => a.code >= 500);
  const expired: ExpiredRecipient[] = expiredNow
    ? decided.recipients
        .filter((r) => !final.has(r.address))
        .map((r) => ({ address: r.address, code: r.code, text: r.text, expired: true }))
    : [];
  const owed = [...refused, ...expired].map((r) => r.address).filter((a) => !reported.has(a));
  return {
    refused: refused.filter((a) => !reported.has(a.address)),
    expired,
    owed,
    suppressed: mailFrom === '',
  };
}

/** Where the message goes once its DSN, if it owes one, is settled. */
export interface Settled {
  readonly outcome: 'delivered' | 'deferred' | 'failed';
  /** Why it is not delivered, for the report; null when it is. */
  readonly error: string | null;
}

/**
 * Delivered when every recipient accepted it; failed (to failed/) once every recipient has a
 * final answer or was given up, and the DSN it owed is sent or needs none; else deferred, with
 * what is done so far recorded, for the next run.
 */
export function settle(decided: MessageOutcome, due: DsnDue, dsnDone: boolean): Settled {
  const given = new Set(due.expired.map((e) => e.address));
  const waiting = decided.recipients.filter(
    (r) => !decided.finals.some((a) => a.address === r.address) && !given.has(r.address),
  );
  if (waiting.length) return { outcome: 'deferred', error: decided.error };
  if (due.owed.length && !due.suppressed && !dsnDone)
    return {
      outcome: 'deferred',
      error: `${describeFailure(decided, due)}; the DSN to its sender is not sent yet: it is kept until it is`,
    };
  if (decided.outcome === 'delivered' && !due.expired.length)
    return { outcome: 'delivered', error: null };
  return {
    outcome: 'failed',
    error: `${describeFailure(decided, due)}; kept in failed/ with the replies`,
  };
}

function describeFailure(decided: MessageOutcome, due: DsnDue): string {
  const refused = decided.finals.filter((a) => a.code >= 500);
  return [
    ...(refused.length
      ? [`refused for good for ${refused.map((a) => `<${a.address}> (${a.code})`).join(', ')}`]
      : []),
    ...(due.expired.length
      ? [`given up for ${due.expired.map((a) => `<${a.address}>`).join(', ')}`]
      : []),
  ].join('; ');
}
