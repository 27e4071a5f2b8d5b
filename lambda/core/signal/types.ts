/**
 * What a release signal needs and what it reports, shared by the SMTP session and the FINGER
 * (`raw` protocol) session (finger-session.ts), so that neither imports the other for its types.
 */
import type { DequeueError } from '../errors';
import type { CommandOutcome } from '../outcome';
import type { Credentials, MailReceiver, Transcript } from '../ports';
import type { ReplyRecord } from '../result';

export interface SignalDeps {
  readonly credentials: Credentials;
  readonly transcript?: Transcript;
  /** Serves the reversed session after ATRN; without it ATRN targets cannot run. */
  readonly receiver?: MailReceiver;
  /** EHLO/HELO name; default: an address literal of our end of the connection (RFC 5321 4.1.3). */
  readonly helloName?: string;
  readonly now?: () => number;
  /** Extra trusted CA (PEM) for provider certificates, e.g. a private CA or a test's. */
  readonly tlsCa?: string;
}

export interface SignalReport {
  readonly outcome: CommandOutcome;
  readonly replies: readonly ReplyRecord[];
  readonly messages: number;
  readonly error: DequeueError | null;
  /** After ATRN: recipients refused as outside the customer's domains; absent when none. */
  readonly refusedRecipients?: number;
}

export interface SignalOptions {
  /** Epoch ms by which the session must have ended. */
  readonly deadline?: number;
  /** ETRNs in one session at most; more go on further sessions (signal/etrn-sessions.ts). Default 8. */
  readonly maxEtrnPerSession?: number;
  /**
   * The run was told to stop (SIGINT, SIGTERM; core/run-stop.ts): no further command is sent, the
   * reply awaited gets STOP_GRACE_MS at most, and the session ends with QUIT (421 after ATRN).
   */
  readonly stop?: AbortSignal;
}
