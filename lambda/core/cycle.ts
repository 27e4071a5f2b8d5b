/**
 * Which targets are due in a cycle.
 *
 * Cycles are numbered from 1 (the first counted run). A target with `everyNthCycle` N (its own,
 * else the setting) is due in cycles 1, N+1, 2N+1, ...: the first run after a deployment always
 * signals, so an operator sees the setup work at once. N = 0 and N = 1 both mean every cycle.
 * Example, N = 3: cycles 1, 4, 7, 10 signal; 2, 3, 5, 6, 8, 9 are skipped.
 */
import type { Settings, Target } from './config';

export function intervalOf(target: Target, settings: Settings): number {
  return target.everyNthCycle ?? settings.everyNthCycle;
}

export function isDueInCycle(cycle: number, interval: number): boolean {
  if (interval <= 1) return true;
  return cycle >= 1 && (cycle - 1) % interval === 0;
}

export type DueDecision = { due: true } | { due: false; reason: string };

/** Decide for one target. `force` signals whatever the count says (but never a disabled target). */
export function dueDecision(target: Target, settings: Settings, cycle: number, force: boolean): DueDecision {
  if (!target.enabled) return { due: false, reason: 'disabled' };
  if (force) return { due: true };
  const interval = intervalOf(target, settings);
  if (isDueInCycle(cycle, interval)) return { due: true };
  const next = cycle < 1 ? 1 : cycle + interval - ((cycle - 1) % interval);
  return { due: false, reason: `not due: signals every ${interval} cycles, next in cycle ${next}` };
}
