/**
 * `dequeue status` for a person: one row per target, the ones that need attention first.
 *
 *   TARGET  STATE      LAST RUN                       LAST SUCCESS                   DETAIL
 *   denied  FAILING    cycle 9, 2026-03-01T10:40:00Z  never                          3 cycles in a row since ...: 459 ...
 *   isp     healthy    cycle 9, 2026-03-01T10:40:00Z  cycle 9, 2026-03-01T10:40:00Z  signalled
 *   weekly  not due    cycle 9, 2026-03-01T10:40:00Z  cycle 7, 2026-03-01T10:30:00Z  signals every 3 cycles, next in cycle 10
 *   acme    SERVER DOWN cycle 9, ...                      cycle 5, ...                   your server is down since ...: mx1...:25 refused the connection
 *
 * Order: failing targets (the longest-failing first), then those whose own server is down (the
 * precheck held the signal back), then those never run, then the rest by name.
 */
import type { RecordedStatus } from '../../lambda/core/target-status';
import { printable } from '../terminal-text';

export type StatusState =
  | 'FAILING'
  | 'SERVER DOWN'
  | 'never run'
  | 'disabled'
  | 'paused'
  | 'not due'
  | 'healthy';

export function stateOf(s: RecordedStatus): StatusState {
  if (s.consecutiveFailures > 0) return 'FAILING';
  if (s.serverDownSince !== null) return 'SERVER DOWN';
  if (s.lastOutcome === null) return 'never run';
  if (s.lastOutcome === 'skipped')
    return s.lastReason === 'disabled'
      ? 'disabled'
      : s.lastReason?.startsWith('paused')
        ? 'paused'
        : 'not due';
  return 'healthy';
}

const RANK: Record<StatusState, number> = {
  FAILING: 0,
  'SERVER DOWN': 1,
  'never run': 2,
  'not due': 3,
  disabled: 3,
  paused: 3,
  healthy: 3,
};

function when(time: string | null, cycle: number | null): string {
  if (time === null) return 'never';
  const at = time.replace(/\.\d{3}Z$/, 'Z');
  return cycle === null ? at : `cycle ${cycle}, ${at}`;
}

function detailOf(s: RecordedStatus, state: StatusState): string {
  const messages = s.messagesTotal
    ? ` (${s.messagesTotal} message${s.messagesTotal === 1 ? '' : 's'} stored in all)`
    : '';
  switch (state) {
    case 'FAILING':
      return `${s.consecutiveFailures} cycle${s.consecutiveFailures === 1 ? '' : 's'} in a row since ${when(s.failingSince, null)}: ${s.lastError ?? s.lastOutcome}`;
    case 'SERVER DOWN':
      return `your server is down since ${when(s.serverDownSince, null)}: ${s.lastPrecheck?.text ?? 'the last check failed'}`;
    case 'never run':
      return 'no run has handled it yet';
    case 'not due':
      return `${(s.lastReason ?? 'not due').replace(/^not due: /, '')}${messages}`;
    case 'disabled':
      return `"enabled": false${messages}`;
    case 'paused':
      return `settings.enabled is false${messages}`;
    case 'healthy':
      return `${s.lastOutcome}${messages}`;
  }
}

export function statusTable(statuses: readonly RecordedStatus[]): string {
  const rows = statuses
    .map((s) => ({ s, state: stateOf(s) }))
    .sort((a, b) => {
      const rank = RANK[a.state] - RANK[b.state];
      if (rank !== 0) return rank;
      if (a.state === 'FAILING' && a.s.failingSince !== b.s.failingSince)
        return (a.s.failingSince ?? '') < (b.s.failingSince ?? '') ? -1 : 1;
      return a.s.target < b.s.target ? -1 : 1;
    })
    .map(({ s, state }) => {
      const detail = printable(detailOf(s, state));
      return [
        s.target,
        state,
        s.lastOutcome === null ? '-' : when(s.lastAttemptAt, s.lastCycle),
        s.lastOutcome === null ? '-' : when(s.lastSuccessAt, s.lastSuccessCycle),
        // Whole, never cut: the fix is often at the end of an error (the terminal wraps it).
        detail,
      ];
    });
  const all = [['TARGET', 'STATE', 'LAST RUN', 'LAST SUCCESS', 'DETAIL'], ...rows];
  const widths = all[0]!.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return `${all
    .map((r) =>
      r
        .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}
