/**
 * One invocation's view of the target statuses: it records each result through the store and
 * keeps what the store hands back (DynamoDB: the item after the update, ReturnValues ALL_NEW), so
 * that FailingTargets and StaleTargets are counted from the items just written. A full cycle
 * writes every configured target's item, so normally nothing is read; only a target whose item
 * was not written this time (its status write failed, or another delivery of the slot handled
 * it) is read back, with GetItem, a few at once.
 */
import type { StatusRecorder } from './core/ports';
import type { TargetResult } from './core/result';
import { isFailingFor, isStale, type RecordedStatus } from './core/target-status';
import type { TargetHealth } from './observability';

/** A status store the function can also read one item of. */
export interface StatusStore extends StatusRecorder {
  read(target: string, signal?: AbortSignal): Promise<RecordedStatus | undefined>;
}

export interface HealthThresholds {
  readonly failingAfterCycles: number;
  readonly staleAfterHours: number;
}

const READ_CONCURRENCY = 10;

export class CycleStatuses implements StatusRecorder {
  private readonly seen = new Map<string, RecordedStatus>();

  constructor(private readonly store: StatusStore) {}

  async record(result: TargetResult, at: number, signal?: AbortSignal): Promise<RecordedStatus> {
    const status = await this.store.record(result, at, signal);
    this.seen.set(result.target, status);
    return status;
  }

  /** Counts over `names` (the targets that should be watched); rejects when a read fails. */
  async health(
    names: readonly string[],
    thresholds: HealthThresholds,
    now: number,
    signal?: AbortSignal,
  ): Promise<TargetHealth & { readonly read: number }> {
    const missing = names.filter((n) => !this.seen.has(n));
    const found = new Map(this.seen);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < missing.length) {
        const name = missing[next++]!;
        const status = await this.store.read(name, signal);
        if (status) found.set(name, status);
      }
    };
    await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, missing.length) }, worker));
    let failing = 0;
    let stale = 0;
    for (const name of names) {
      const status = found.get(name);
      if (!status) continue;
      if (isFailingFor(status, thresholds.failingAfterCycles)) failing++;
      if (isStale(status, now, thresholds.staleAfterHours)) stale++;
    }
    return { failing, stale, read: missing.length };
  }
}
