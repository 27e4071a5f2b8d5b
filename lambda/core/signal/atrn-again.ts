/**
 * ATRN again, within the same cycle, after a session that moved mail and then broke.
 *
 * Exim 4.99.1 over STARTTLS delivers one message per ATRN session: after the first message it
 * hands the TLS connection to a proxy process and the next delivery process reads through
 * OpenSSL on the proxy's cleartext socket, fails, writes a TLS alert into the message data and
 * closes (docs/real-servers.md has the reproduction). Its log says "Remote host closed
 * connection in response to pipelined MAIL FROM" and the rest of the mail stays queued. Each
 * further session delivers one more message, so a customer with N messages held would get one
 * per cycle. Nothing is wrong on our side; the workaround is to ask again at once.
 *
 * The rule: after a session inside TLS in which ATRN was accepted, at least one message was
 * stored, and the provider then cut the connection in the middle of a message or transaction,
 * connect and ATRN again. A session that stores nothing, ends otherwise (cleanly, a sink or
 * relay failure, a refusal), or leaves too little time before the run's deadline ends the loop,
 * and so does MAX_ATRN_SESSIONS_PER_CYCLE: every extra session has to make progress, so a
 * provider cannot keep us here with sessions that bring nothing. In cleartext a cut has no such
 * known cause, and the rest waits for the next cycle as before.
 */
import { ProviderCutError } from '../errors';
import type { SignalReport } from './types';

/** Sessions of one ATRN target in one cycle, the first included. */
export const MAX_ATRN_SESSIONS_PER_CYCLE = 100;

/** One session's report, and whether its turn happened inside TLS. */
export interface AtrnSession {
  readonly report: SignalReport;
  readonly turnedInTls?: boolean;
}

export interface AtrnAgainOptions {
  /** Another whole session: connect, authenticate, ATRN, receive. */
  readonly again: () => Promise<AtrnSession>;
  /** Whether there is time for another session (the run's deadline). */
  readonly timeLeft: () => boolean;
  readonly note: (text: string) => void;
}

/** The ATRN session was cut inside TLS after it stored mail: worth asking again (see the top). */
function cutAfterProgress({ report, turnedInTls }: AtrnSession): boolean {
  const atrn = report.replies.at(-1);
  return (
    turnedInTls === true &&
    atrn !== undefined &&
    /^ATRN\b/i.test(atrn.command) &&
    atrn.code === 250 &&
    report.messages > 0 &&
    report.error instanceof ProviderCutError
  );
}

/** Run further ATRN sessions while each one moved mail and then was cut; the combined report. */
export async function atrnUntilSettled(
  first: AtrnSession,
  options: AtrnAgainOptions,
): Promise<SignalReport> {
  let last = first;
  let messages = first.report.messages;
  let refused = first.report.refusedRecipients ?? 0;
  const replies = [...first.report.replies];
  for (
    let sessions = 1;
    cutAfterProgress(last) && sessions < MAX_ATRN_SESSIONS_PER_CYCLE && options.timeLeft();
    sessions++
  ) {
    options.note(
      `the provider cut the session after ${last.report.messages} message(s) were stored (${last.report.error?.message}); ATRN again in this cycle for the rest (session ${sessions + 1})`,
    );
    last = await options.again();
    messages += last.report.messages;
    refused += last.report.refusedRecipients ?? 0;
    replies.push(...last.report.replies);
  }
  if (last === first) return first.report;
  const { report } = last;
  // Mail came in this cycle: a last session that found nothing left is the end of it, not "no mail".
  const outcome = report.outcome === 'no-mail' && messages > 0 ? 'signalled' : report.outcome;
  return {
    outcome,
    replies,
    messages,
    error: report.error,
    ...(refused ? { refusedRecipients: refused } : {}),
  };
}
