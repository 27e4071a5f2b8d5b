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
 * - a result that carries a precheck (the customer's own server checked before the signal) sets
 *   `lastPrecheck`; a failed one starts or continues `serverDownSince` and counts
 *   `serverDownChecks`, a passed one ends both (the recovery). A worked result without a check
 *   (the check was taken out of the configuration) ends them too; a not-due one leaves them.
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
  /** The first failed check of the customer's server in the current run of them; null when up. */
  readonly serverDownSince: string | null;
  /** The last check of the customer's server (`precheck`); null when none was ever made. */
  readonly lastPrecheck: LastPrecheck | null;
}

export interface LastPrecheck {
  readonly at: string;
  readonly passed: boolean;
  /** What each server did, one line, at most MAX_STATUS_ERROR_LENGTH characters. */
  readonly text: string;
}

/** What the stores keep beside the printed fields. */
export interface RecordedStatus extends TargetStatus {
  /** Why the last result was `skipped`. */
  readonly lastReason: string | null;
  /** Checks in a row that found the customer's server down (the ServerDownTargets threshold). */
  readonly serverDownChecks: number;
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
  'serverDownSince',
  'lastPrecheck',
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
    serverDownSince: null,
    lastPrecheck: null,
    lastReason: null,
    serverDownChecks: 0,
  };
}

/**
 * One line, control characters replaced, at most `max` characters. A longer one loses its middle,
 * between words, never its end: an error says what failed first and what to do last, and what
 * runs long is the text a server sent in between (up to 1024 characters, MAX_REPLY_TEXT).
 */
export function boundedText(text: string, max = MAX_STATUS_ERROR_LENGTH): string {
  const line = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  if (line.length <= max) return line;
  const room = max - 3; // ' … '
  const tailRoom = Math.floor(room * 0.4);
  return `${wordsFrom(line.slice(0, room - tailRoom), 'end')} … ${wordsFrom(line.slice(line.length - tailRoom), 'start')}`;
}

/** `part` without the word cut at its `side`, when a space is near enough to keep most of it. */
function wordsFrom(part: string, side: 'start' | 'end'): string {
  const space = side === 'end' ? part.lastIndexOf(' ') : part.indexOf(' ');
  const kept = side === 'end' ? space : part.length - space - 1;
  if (space < 0 || kept < part.length * 0.75) return part.trim();
  return (side === 'end' ? part.slice(0, space) : part.slice(space + 1)).trim();
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
    ...serverFields(before, result, when),
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

/** The precheck fields after `result` (target-status rules above). */
function serverFields(
  before: RecordedStatus,
  result: TargetResult,
  when: string,
): Pick<RecordedStatus, 'serverDownSince' | 'lastPrecheck' | 'serverDownChecks'> {
  const check = result.precheck;
  if (!check) {
    const { serverDownSince, lastPrecheck, serverDownChecks } = before;
    if (result.outcome === 'skipped') return { serverDownSince, lastPrecheck, serverDownChecks };
    return { serverDownSince: null, lastPrecheck, serverDownChecks: 0 };
  }
  const lastPrecheck = { at: when, passed: check.passed, text: boundedText(check.text) };
  if (check.passed) return { serverDownSince: null, lastPrecheck, serverDownChecks: 0 };
  return {
    serverDownSince: before.serverDownSince ?? when,
    lastPrecheck,
    serverDownChecks: before.serverDownChecks + 1,
  };
}

/** Its server has failed `afterChecks` checks in a row or more (the ServerDownTargets count). */
export function isServerDownFor(status: RecordedStatus, afterChecks: number): boolean {
  return status.serverDownSince !== null && status.serverDownChecks >= afterChecks;
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
