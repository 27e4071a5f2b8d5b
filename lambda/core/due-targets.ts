/**
 * Which targets are due in a cycle, and the order a cycle works them in.
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

/** `byCount`: not due only because of `everyNthCycle` (not disabled, not paused). */
export type DueDecision = { due: true } | { due: false; reason: string; byCount?: true };

/** Decide for one target. `force` signals whatever the count says (but never a disabled or paused one). */
export function dueDecision(
  target: Target,
  settings: Settings,
  cycle: number,
  force: boolean,
): DueDecision {
  // settings.enabled false pauses every target at once (one SSM parameter or one line to flip back).
  if (settings.enabled === false)
    return { due: false, reason: 'paused: settings.enabled is false' };
  if (!target.enabled) return { due: false, reason: 'disabled' };
  if (force) return { due: true };
  const interval = intervalOf(target, settings);
  if (isDueInCycle(cycle, interval)) return { due: true };
  const next = cycle < 1 ? 1 : cycle + interval - ((cycle - 1) % interval);
  return {
    due: false,
    reason: `not due: signals every ${interval} cycles, next in cycle ${next}`,
    byCount: true,
  };
}

/**
 * The order in which a cycle works its due targets: the configured order, rotated by an offset
 * that moves on with every cycle, so that when a run's deadline cuts the work short the targets
 * left out differ from cycle to cycle instead of being the same tail every time (starvation).
 *
 * The offset of cycle c is frac(c / φ) x n (φ the golden ratio): consecutive offsets land far
 * apart and spread evenly over the list (Weyl's equidistribution, the three-distance theorem), so
 * when a run reaches only k of n targets each target is reached in about k/n of the cycles with
 * short gaps between, not k cycles in a row and then n - k cycles without (a rotation by one).
 */
export function rotateForCycle<T>(targets: readonly T[], cycle: number): T[] {
  const n = targets.length;
  if (n < 2) return [...targets];
  const offset = Math.floor(fractionOf(cycle * INVERSE_GOLDEN_RATIO) * n) % n;
  return [...targets.slice(offset), ...targets.slice(0, offset)];
}

const INVERSE_GOLDEN_RATIO = (Math.sqrt(5) - 1) / 2;
const fractionOf = (x: number): number => x - Math.floor(x);
