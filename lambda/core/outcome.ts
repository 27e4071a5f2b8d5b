/**
 * One table from reply codes to outcomes, and the one place an error becomes an outcome.
 *
 * ETRN (RFC 1985 section 5): 250 queuing started, 251 no messages waiting, 252 pending messages
 * started, 253 N pending messages started, 458 unable to queue, 459 node not allowed.
 * Real servers also answer 450 (Postfix deferred restriction), 502, 554 and Exim's
 * `458 Already processing`: docs/real-servers.md.
 * ATRN (RFC 2645 section 4): 250 OK now reversing, 450 refused (a policy refusal: permanent),
 * 451 cannot now, 453 you have no mail, 501 syntax, 502 not available, 530 authentication required.
 * QSND (Post.Office) is answered like ETRN.
 */
import type { DequeueError } from './errors';
import type { Outcome } from './result';

export type CommandOutcome = Exclude<Outcome, 'skipped' | 'config-error'>;

/** Codes that mean something special for one verb; anything else falls to the class rules. */
const SPECIAL: Record<string, Record<number, CommandOutcome>> = {
  ETRN: { 251: 'no-mail', 459: 'permanent-failure' },
  QSND: { 251: 'no-mail', 459: 'permanent-failure' },
  // RFC 2645 section 4: 450 is "ATRN request refused" (a policy answer, not a busy server).
  ATRN: { 450: 'permanent-failure', 453: 'no-mail' },
};

/** The outcome of one release command from its reply code. */
export function outcomeOfReply(verb: string, code: number): CommandOutcome {
  const special = SPECIAL[verb]?.[code];
  if (special) return special;
  if (code >= 200 && code < 400) return 'signalled';
  if (code >= 400 && code < 500) return 'temporary-failure';
  return 'permanent-failure';
}

export function outcomeOfError(error: DequeueError): Outcome {
  switch (error.kind) {
    case 'config':
      return 'config-error';
    case 'permanent':
      return 'permanent-failure';
    default:
      return 'temporary-failure';
  }
}
