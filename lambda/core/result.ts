/** The result of one target (docs/outcomes.md). */
import type { PrecheckOutcome } from './precheck/precheck-report';

export type Outcome =
  | 'signalled'
  | 'no-mail'
  | 'skipped'
  | 'temporary-failure'
  | 'permanent-failure'
  | 'config-error';

export interface ReplyRecord {
  /** The command as sent, credentials never included (AUTH shows only its mechanism). */
  readonly command: string;
  /** The reply code; null for a `raw` target, whose host answers with free text. */
  readonly code: number | null;
  /** The reply text, lines joined with "\n", capped. */
  readonly text: string;
}

export interface TargetResult {
  readonly target: string;
  readonly outcome: Outcome;
  readonly cycle: number;
  readonly durationMs: number;
  readonly replies: readonly ReplyRecord[];
  readonly messages: number;
  readonly error: string | null;
  /**
   * Extension: after ATRN, recipients refused (550 5.7.1) as outside the customer's domains
   * (docs/odmr.md "Whose mail"); absent when none.
   */
  readonly refusedRecipients?: number;
  /** Extension: why a target was skipped (not due, disabled, dry run, already signalled). */
  readonly reason?: string;
  /**
   * Extension: the check of the customer's own server before the signal (`precheck`), when the
   * target has one and got as far as it (docs/configuration.md "Precheck").
   */
  readonly precheck?: PrecheckOutcome;
}

export interface CycleResult {
  readonly cycle: number;
  readonly results: readonly TargetResult[];
  /**
   * Extension: the targets handed to queue-fed workers when the cycle fanned out
   * (docs/fan-out.md); each one's result is logged by the worker that signals it.
   */
  readonly queued?: readonly string[];
  /**
   * Extension: set when the run counted no cycle although it would have, saying why (the
   * configuration has no targets: NO_TARGETS). `cycle` is then the last counted one.
   */
  readonly notCounted?: string;
}

/** Why a run with a configuration of no targets signals nothing and counts no cycle (CLI and Lambda alike). */
export const NO_TARGETS = 'the configuration has no targets: nothing to signal, no cycle counted';

/** The order in which outcomes are "worse" when one target has several commands. */
const SEVERITY: Record<Outcome, number> = {
  skipped: 0,
  'no-mail': 1,
  signalled: 2,
  'temporary-failure': 3,
  'permanent-failure': 4,
  'config-error': 5,
};

/** docs/outcomes.md: a failure if any failed, else `signalled` if any was accepted, else `no-mail`. */
export function worstOutcome(outcomes: readonly Outcome[]): Outcome {
  return outcomes.reduce<Outcome>(
    (worst, o) => (SEVERITY[o] > SEVERITY[worst] ? o : worst),
    'no-mail',
  );
}

/** Exit status of the CLI (README): 0 when every target ended well, 1 otherwise. */
export function isFailure(outcome: Outcome): boolean {
  return (
    outcome === 'temporary-failure' || outcome === 'permanent-failure' || outcome === 'config-error'
  );
}
