/**
 * What the runs remember about each target between cycles, so that `dequeue status` and the
 * alarms can tell a target that failed once from one that keeps failing.
 *
 * The rules, one place for every store (the CLI's --state file applies them here; the DynamoDB
 * adapter writes the same rules as one update expression, so that two invocations cannot lose an
 * increment):
 * - `signalled` and `no-mail` are success: the failure streak ends (`consecutiveFailures` 0,
 *   `failingSince` and `lastError` null).
 * - a failure (temporary, permanent, config) adds one to `consecutiveFailures`; `failingSince`
 *   is the time of the first failure of the streak; `lastError` is that failure's error, bounded.
 * - `skipped` (not due, disabled) changes only `lastOutcome`, `lastCycle` and `lastAttemptAt`:
 *   a failing target that is not due this cycle is still failing.
 * - `messagesTotal` adds the messages of every result (an ATRN session may store mail and fail).
 * Dry runs record nothing; forced runs record (the run-cycle decides which results reach here).
 */
import { isFailure, type Outcome, type TargetResult } from './result';

/** The status of one target as `dequeue status --json` prints it; times ISO 8601 UTC, absent null. */
export interface TargetStatus {
  readonly target: string;
  readonly lastOutcome: Outcome | null;
  /** When the run last handled the target (a skipped one included). */
  readonly lastAttemptAt: string | null;
  readonly lastCycle: number | null;
  /** When it last ended `signalled` or `no-mail`. */
  readonly lastSuccessAt: string | null;
  readonly lastSuccessCycle: number | null;
  readonly consecutiveFailures: number;
  /** The first failure of the current streak; null when the last worked cycle succeeded. */
  readonly failingSince: string | null;
  /** The current streak's latest error, at most MAX_STATUS_ERROR_LENGTH characters. */
  readonly lastError: string | null;
  readonly messagesTotal: number;
}

/** What the stores keep beside the printed fields: why the last result was `skipped`. */
export interface RecordedStatus extends TargetStatus {
  readonly lastReason: string | null;
}

/** The fields `dequeue status --json` prints, in this order. */
export const STATUS_FIELDS = [
  'target',
  'lastOutcome',
  'lastAttemptAt',
  'lastCycle',
  'lastSuccessAt',
  'lastSuccessCycle',
  'consecutiveFailures',
  'failingSince',
  'lastError',
  'messagesTotal',
] as const satisfies readonly (keyof TargetStatus)[];

/** Errors are one line of a few hundred characters at most; a status item stays small. */
export const MAX_STATUS_ERROR_LENGTH = 500;

export function isSuccess(outcome: Outcome): boolean {
  return outcome === 'signalled' || outcome === 'no-mail';
}

/** A target no run has handled yet. */
export function neverRun(target: string): RecordedStatus {
  return {
    target,
    lastOutcome: null,
    lastAttemptAt: null,
    lastCycle: null,
    lastSuccessAt: null,
    lastSuccessCycle: null,
    consecutiveFailures: 0,
    failingSince: null,
    lastError: null,
    messagesTotal: 0,
    lastReason: null,
  };
}

/** One line, control characters replaced, cut at the bound (with an ellipsis). */
export function boundedText(text: string, max = MAX_STATUS_ERROR_LENGTH): string {
  const line = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

/**
 * A failure's error, one line: the result's error, else the refusing reply (a 459 or 5xx is an
 * outcome with no error of its own), else the outcome. Replies never carry credentials.
 */
export function errorOf(result: TargetResult): string {
  const refused = [...result.replies].reverse().find((r) => r.code !== null && r.code >= 400);
  const text =
    result.error ??
    (refused ? `${refused.command}: ${refused.code} ${refused.text}` : result.outcome);
  return boundedText(text);
}

/** The status after `result`, recorded at `at` (epoch ms). */
export function nextStatus(
  previous: RecordedStatus | undefined,
  result: TargetResult,
  at: number,
): RecordedStatus {
  const before = previous ?? neverRun(result.target);
  const when = new Date(at).toISOString();
  const common = {
    ...before,
    target: result.target,
    lastOutcome: result.outcome,
    lastAttemptAt: when,
    lastCycle: result.cycle,
    messagesTotal: before.messagesTotal + result.messages,
  };
  if (isSuccess(result.outcome)) {
    return {
      ...common,
      lastSuccessAt: when,
      lastSuccessCycle: result.cycle,
      consecutiveFailures: 0,
      failingSince: null,
      lastError: null,
      lastReason: null,
    };
  }
  if (isFailure(result.outcome)) {
    return {
      ...common,
      consecutiveFailures: before.consecutiveFailures + 1,
      failingSince: before.failingSince ?? when,
      lastError: errorOf(result),
      lastReason: null,
    };
  }
  return { ...common, lastReason: result.reason ? boundedText(result.reason) : null };
}

/** Exactly the printed fields, in order. */
export function statusFields(status: TargetStatus): TargetStatus {
  return Object.fromEntries(STATUS_FIELDS.map((f) => [f, status[f]])) as unknown as TargetStatus;
}

/** Has failed `afterCycles` cycles in a row or more. */
export function isFailingFor(status: TargetStatus, afterCycles: number): boolean {
  return status.consecutiveFailures >= afterCycles;
}

/**
 * Not released for longer than `hours`: its last success (or, never released, the first failure
 * of its streak) lies further back. A target that never succeeded nor failed is not stale yet.
 */
export function isStale(status: TargetStatus, now: number, hours: number): boolean {
  const since = status.lastSuccessAt ?? status.failingSince;
  return since !== null && now - Date.parse(since) > hours * 3_600_000;
}
