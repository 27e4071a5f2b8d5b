/**
 * What a cycle does with each target, decided before anything is sent: which targets the run
 * asked for (all, or the --target names), which are invalid or unknown (`config-error`), which are
 * not due (`skipped`, with the reason), and which are worked. Plain values in, plain values out.
 */
import type { Settings, Target } from './config';
import { dueDecision } from './due-targets';
import type { InvalidTarget, LoadedConfig } from './ports';
import { hasPrecheck } from './precheck/release-gate';
import type { TargetResult } from './result';

/** The targets a run asked for. */
export interface Selection {
  readonly selected: readonly Target[];
  readonly invalid: readonly InvalidTarget[];
  /** Names asked for that the configuration does not have. */
  readonly unknown: readonly string[];
  /** No target at all (none valid, none invalid, none asked for): nothing can be due. */
  readonly empty: boolean;
  /** The order results are reported in: the invalid, the selected, then the unknown names. */
  readonly order: readonly string[];
}

/** The configuration's targets, or only those named (`--target`, an invocation's `targets`). */
export function selectTargets(config: LoadedConfig, names?: readonly string[]): Selection {
  const wanted = names ? new Set(names) : null;
  const selected = config.targets.filter((t) => !wanted || wanted.has(t.name));
  const invalid = config.invalid.filter((t) => !wanted || wanted.has(t.name));
  const known = new Set([
    ...config.targets.map((t) => t.name),
    ...config.invalid.map((t) => t.name),
  ]);
  const unknown = [...(wanted ?? [])].filter((name) => !known.has(name));
  return {
    selected,
    invalid,
    unknown,
    empty: known.size === 0 && unknown.length === 0,
    order: [...invalid.map((t) => t.name), ...selected.map((t) => t.name), ...unknown],
  };
}

/** A result known before any work: nothing was sent for the target. */
export function settledResult(
  target: string,
  cycle: number,
  outcome: TargetResult['outcome'],
  error: string | null,
  reason?: string,
): TargetResult {
  return {
    target,
    outcome,
    cycle,
    durationMs: 0,
    replies: [],
    messages: 0,
    error,
    ...(reason ? { reason } : {}),
  };
}

export interface CyclePlan {
  /**
   * Results known before any work, in the order they are reported as they come: invalid, unknown,
   * then the selected targets not worked. `recorded`: its status is kept (target-status.ts); an
   * unknown name has none, and a slot already run was recorded by the run that counted it.
   */
  readonly settled: readonly { readonly result: TargetResult; readonly recorded: boolean }[];
  /** The targets to work, in the configured order. */
  readonly work: readonly Target[];
}

export interface CycleTerms {
  /** Signal whatever the count says (never a disabled or paused target). */
  readonly force: boolean;
  /** This run counted the cycle; false when another delivery of the same slot did. */
  readonly counted: boolean;
  /** The counter takes per-target claims (a slot run twice signals each target once). */
  readonly claims: boolean;
  /**
   * Targets not due by the count that are worked all the same: their precheck found the server
   * down last time, and it is checked every cycle until it answers (recheckCandidates).
   */
  readonly recheck?: ReadonlySet<string>;
}

/**
 * The selected targets that are not due by the count alone (not disabled, not paused) and have a
 * precheck: the ones whose server may have been down at their last check.
 */
export function recheckCandidates(
  selection: Selection,
  settings: Settings,
  cycle: number,
  force: boolean,
): string[] {
  return selection.selected
    .filter((target) => {
      const decision = dueDecision(target, settings, cycle, force);
      return !decision.due && decision.byCount === true && hasPrecheck(target, settings);
    })
    .map((target) => target.name);
}

export function planCycle(
  selection: Selection,
  settings: Settings,
  cycle: number,
  terms: CycleTerms,
): CyclePlan {
  const settled: { result: TargetResult; recorded: boolean }[] = [];
  for (const bad of selection.invalid)
    settled.push({
      result: settledResult(bad.name, cycle, 'config-error', bad.error.message),
      recorded: true,
    });
  for (const name of selection.unknown)
    settled.push({
      result: settledResult(
        name,
        cycle,
        'config-error',
        `no target named "${name}" in the configuration`,
      ),
      recorded: false,
    });
  const work: Target[] = [];
  for (const target of selection.selected) {
    const decision = dueDecision(target, settings, cycle, terms.force);
    const recheck = !decision.due && decision.byCount && terms.recheck?.has(target.name);
    if (!decision.due && !recheck) {
      settled.push({
        result: settledResult(target.name, cycle, 'skipped', null, decision.reason),
        recorded: true,
      });
    } else if (!terms.counted && !terms.claims) {
      settled.push({
        result: settledResult(
          target.name,
          cycle,
          'skipped',
          null,
          `cycle ${cycle} was already run for this slot`,
        ),
        recorded: false,
      });
    } else work.push(target);
  }
  return { settled, work };
}
