/**
 * Where the check meets a cycle: for one due target, the check that applies (its own `precheck`
 * or the settings'), run before the claim is taken, and what the cycle then does with the target.
 *
 *   no check          -> the target as configured
 *   passed (or force) -> the target as configured, the check reported beside its result
 *   some domains down -> the target with only the lines whose servers answered
 *   nothing may go    -> `skipped`, the reason naming the server and what happened; no claim
 *                        taken, no signal sent, so the cycle has spent nothing on it
 */
import type { Settings, Target } from '../config';
import type { ReplyRecord } from '../result';
import { precheckFor } from './precheck-config';
import { precheckRelease, precheckText, type PrecheckDeps } from './precheck';
import type { PrecheckOutcome } from './precheck-report';

export type Gate =
  | {
      readonly open: true;
      /** The target to signal: as configured, or without the lines whose servers are down. */
      readonly target: Target;
      /** Lines held back, for the result's replies. */
      readonly withheld: readonly ReplyRecord[];
      readonly precheck?: PrecheckOutcome;
    }
  | { readonly open: false; readonly reason: string; readonly precheck: PrecheckOutcome };

/** Whether a check applies to `target` (a settings-wide "mx" that does not fit it: not here). */
export function hasPrecheck(target: Target, settings: Settings): boolean {
  try {
    return precheckFor(target, settings, target.name, 'precheck') !== undefined;
  } catch {
    return false;
  }
}

export async function releaseGate(
  target: Target,
  settings: Settings,
  options: { readonly force?: boolean; readonly deadline?: number; readonly signal?: AbortSignal },
  deps: PrecheckDeps,
): Promise<Gate> {
  // A settings-wide "mx" that does not fit this target is its config error (thrown as such).
  const check = precheckFor(target, settings, target.name, 'precheck');
  if (!check) return { open: true, target, withheld: [] };
  const decision = await precheckRelease(target, check, options, deps);
  const precheck = { ...decision.report, text: precheckText(decision.report) };
  if (decision.reason !== undefined) return { open: false, reason: decision.reason, precheck };
  const same = decision.send.length === target.commands.length;
  return {
    open: true,
    target: same ? target : { ...target, commands: decision.send },
    withheld: decision.withheld,
    precheck,
  };
}
