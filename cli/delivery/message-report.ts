/**
 * What `deliver` says of each message (a `--json` line, docs/odmr.md "Delivering stored mail"),
 * and the reports of messages nothing was sent for: a claim that failed, an envelope that cannot
 * be sent (deliver-run.ts).
 */
import { asDequeueError, type DequeueError } from '../../lambda/core/errors';
import type { TlsState } from '../../lambda/core/smtp/tls-policy';
import type { DsnReport } from './bounce-send';
import type { ClaimedMail, StoredRef } from './mail-store';
import type { DeliveryOutcome } from './message-outcome';

/** One line of `--json` (docs/odmr.md "Delivering stored mail"). `pending` only in a dry run. */
export interface MessageReport {
  readonly message: string;
  readonly target: string;
  readonly outcome: DeliveryOutcome | 'pending';
  readonly recipients: readonly {
    readonly address: string;
    readonly code: number | null;
    readonly text: string | null;
  }[];
  readonly error: string | null;
  /**
   * What protected the connection that carried the message: `verified` (TLS, the certificate
   * verified), `unverified` (TLS, not verified: RFC 7435's opportunistic security), `none`
   * (cleartext); null when no connection carried it (a dry run, the server unreachable).
   */
  readonly tls: TlsState | null;
  /**
   * The delivery status notification this run sent (or tried, or did not owe: the null
   * reverse-path) for the message (docs/bounces.md); null when it owed none this run.
   */
  readonly dsn: DsnReport | null;
}

/** A message nothing was sent for (its claim failed, or something unexpected): it stays. */
export function deferredReport(ref: StoredRef, error: DequeueError | string): MessageReport {
  return unsent(ref, 'deferred', typeof error === 'string' ? error : error.message);
}

function unsent(ref: StoredRef, outcome: MessageReport['outcome'], error: string): MessageReport {
  return {
    message: ref.id,
    target: ref.target,
    outcome,
    recipients: [],
    error,
    tls: null,
    dsn: null,
  };
}

/**
 * A message whose stored envelope is unusable (`problem`): nothing is sent, it goes to failed/
 * with the reason (a dry run only says so). A mark that fails leaves it where it is.
 */
export async function unsendable(
  claim: ClaimedMail,
  problem: string,
  dryRun: boolean,
): Promise<MessageReport> {
  if (dryRun) {
    await claim.release();
    return unsent(claim.ref, 'pending', `would go to failed/: ${problem}`);
  }
  return claim.failed([], [], problem).then(
    () => unsent(claim.ref, 'failed', `not sent: ${problem}; kept in failed/`),
    (e: unknown) =>
      unsent(
        claim.ref,
        'deferred',
        `not sent: ${problem}; not moved: ${asDequeueError(e).message}`,
      ),
  );
}
