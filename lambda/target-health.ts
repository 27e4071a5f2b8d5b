/**
 * One invocation's view of the target statuses: it records each result through the store and
 * keeps what the store hands back (DynamoDB: the item after the update, ReturnValues ALL_NEW), so
 * that FailingTargets, StaleTargets and ServerDownTargets are counted from the items just written. A cycle that
 * works its targets itself writes every one's item, so normally nothing is read. What was not
 * written this time is read: the targets a coordinator handed to the fan-out workers (their
 * status as the workers last recorded it: a target whose workers never run grows stale there,
 * and is counted), a status write that failed, a target another delivery of the slot handled.
 * A store that can list every status (DynamoDB: one Query of the status index) is listed once;
 * otherwise each is read with GetItem, a few at once.
 */
import type { StatusRecorder } from './core/ports';
import type { TargetResult } from './core/result';
import { isFailingFor, isServerDownFor, isStale, type RecordedStatus } from './core/target-status';
import type { TargetHealth } from './observability';

/** A status store the function can also read one item of, and perhaps list whole. */
export interface StatusStore extends StatusRecorder {
  read(target: string, signal?: AbortSignal): Promise<RecordedStatus | undefined>;
  /** Every target's status, in one listing (cheaper than one read per target). */
  list?(signal?: AbortSignal): Promise<RecordedStatus[]>;
}

export interface HealthThresholds {
  readonly failingAfterCycles: number;
  readonly staleAfterHours: number;
  /** Failed prechecks in a row after which a target counts in ServerDownTargets; default 4. */
  readonly serverDownAfterCycles?: number;
}

const READ_CONCURRENCY = 10;
const DEFAULT_SERVER_DOWN_AFTER = 4;

export class CycleStatuses implements StatusRecorder {
  private readonly seen = new Map<string, RecordedStatus>();

  constructor(private readonly store: StatusStore) {}

  async record(result: TargetResult, at: number, signal?: AbortSignal): Promise<RecordedStatus> {
    const status = await this.store.record(result, at, signal);
    this.seen.set(result.target, status);
    return status;
  }

  /**
   * Of `targets`, those whose last precheck found the server down: one GetItem each (ten at a
   * time), asked only for targets with a precheck that are not due this cycle.
   */
  async serverDown(targets: readonly string[], signal?: AbortSignal): Promise<ReadonlySet<string>> {
    const down = new Set<string>();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < targets.length) {
        const name = targets[next++]!;
        const status = await this.store.read(name, signal);
        if (status?.serverDownSince) down.add(name);
      }
    };
    await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, targets.length) }, worker));
    return down;
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
    if (missing.length && this.store.list) {
      for (const status of await this.store.list(signal))
        if (!found.has(status.target)) found.set(status.target, status);
      missing.length = 0;
    }
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
    let serverDown = 0;
    for (const name of names) {
      const status = found.get(name);
      if (!status) continue;
      if (isFailingFor(status, thresholds.failingAfterCycles)) failing++;
      if (isStale(status, now, thresholds.staleAfterHours)) stale++;
      if (isServerDownFor(status, thresholds.serverDownAfterCycles ?? DEFAULT_SERVER_DOWN_AFTER))
        serverDown++;
    }
    return { failing, stale, serverDown, read: names.filter((n) => !this.seen.has(n)).length };
  }
}
