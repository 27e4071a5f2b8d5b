/**
 * The CLI's state between runs (`--state`): a small JSON file holding the cycle counter and each
 * target's status (lambda/core/target-status.ts):
 *
 *   {"cycle": 7, "updatedAt": "...", "targets": {"isp": {"lastOutcome": "signalled", ...}}}
 *
 * Files written before statuses existed (`{"cycle": N, "updatedAt": "..."}`) read as they are, and
 * older versions of the CLI read only `cycle` from a new one. Every change is written to a
 * temporary name, flushed and renamed, so a crash never leaves a torn file; within one run the
 * writes go one after the other (targets finish concurrently). Two runs on the same file never
 * work at once: a run holds the file's lock (state-lock.ts) from before its count to its last
 * status.
 *
 * Without `--state` the counter lives in memory, every run is cycle 1 and no status is kept.
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ConfigError } from '../../lambda/core/errors';
import type { CycleCounter, StatusRecorder } from '../../lambda/core/ports';
import type { Outcome, TargetResult } from '../../lambda/core/result';
import {
  neverRun,
  nextStatus,
  type LastPrecheck,
  type RecordedStatus,
} from '../../lambda/core/target-status';
import { unreadableBecause } from '../file-errors';

interface StateDocument {
  cycle: number;
  updatedAt?: string;
  targets: Record<string, Omit<RecordedStatus, 'target'>>;
}

const OUTCOMES = new Set<Outcome>([
  'signalled',
  'no-mail',
  'skipped',
  'temporary-failure',
  'permanent-failure',
  'config-error',
]);

export class StateFile implements CycleCounter, StatusRecorder {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly file: string) {}

  async peek(): Promise<number> {
    return (await this.read()).cycle;
  }

  /**
   * Checked at start, before anything is sent: the counter is written as a new file beside the
   * state file and renamed over it, so what must be writable is the directory.
   */
  async checkWritable(): Promise<void> {
    const probe = `${this.file}.${process.pid}.check`;
    try {
      await (await open(probe, 'wx', 0o600)).close();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const dir = dirname(this.file);
      const what =
        code === 'ENOENT' || code === 'ENOTDIR'
          ? `the directory ${dir} does not exist: create it (mkdir -p ${dir}) or give --state a file in a directory that exists`
          : code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
            ? `the directory ${dir} is not writable by this user (${code}): give --state a file in a directory this user owns, e.g. ~/.local/state/dequeue/state.json`
            : `cannot write beside it (${code ?? (e as Error).message}): give --state a file in a writable directory`;
      throw new ConfigError(this.file, '', `the cycle counter cannot be kept here: ${what}`, {
        cause: e,
      });
    }
    await unlink(probe).catch(() => undefined);
  }

  count(): Promise<{ cycle: number; counted: boolean }> {
    return this.serially(async () => {
      const state = await this.read();
      state.cycle += 1;
      await this.write(state);
      return { cycle: state.cycle, counted: true };
    });
  }

  record(result: TargetResult, at: number): Promise<RecordedStatus> {
    return this.serially(async () => {
      const state = await this.read();
      const before = state.targets[result.target];
      const after = nextStatus(before && { ...before, target: result.target }, result, at);
      const { target, ...kept } = after;
      state.targets[target] = kept;
      await this.write(state);
      return after;
    });
  }

  /** Of `targets`, those whose last precheck found the server down. */
  async serverDown(targets: readonly string[]): Promise<ReadonlySet<string>> {
    const state = await this.read();
    return new Set(targets.filter((t) => (state.targets[t]?.serverDownSince ?? null) !== null));
  }

  /** Every target's status, by name. */
  async statuses(): Promise<RecordedStatus[]> {
    const state = await this.read();
    return Object.entries(state.targets)
      .map(([target, status]) => ({ ...status, target }))
      .sort((a, b) => (a.target < b.target ? -1 : 1));
  }

  /** Changes one after the other: each reads what the previous one wrote. */
  private serially<T>(change: () => Promise<T>): Promise<T> {
    const next = this.queue.then(change, change);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async read(): Promise<StateDocument> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { cycle: 0, targets: {} };
      throw new ConfigError(this.file, '', `cannot read the state file: ${unreadableBecause(e)}`, {
        cause: e,
      });
    }
    let doc: { cycle?: unknown; updatedAt?: unknown; targets?: unknown };
    try {
      doc = JSON.parse(text) as typeof doc;
    } catch (e) {
      throw new ConfigError(
        this.file,
        '',
        'is not valid JSON (delete it to start counting again from 0)',
        { cause: e },
      );
    }
    // A configuration given as --state by mistake would be overwritten by the next run.
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc) || !('cycle' in doc)) {
      throw new ConfigError(
        this.file,
        '',
        'is not a dequeue state file (it has no "cycle"): give --state the file the runs keep, or a new name',
      );
    }
    const cycle = doc.cycle;
    if (!Number.isSafeInteger(cycle) || (cycle as number) < 0) {
      throw new ConfigError(
        this.file,
        'cycle',
        'must be a whole number ≥ 0 (delete the file to start again from 0)',
      );
    }
    return {
      cycle: cycle as number,
      updatedAt: typeof doc.updatedAt === 'string' ? doc.updatedAt : undefined,
      targets: this.targetsOf(doc.targets),
    };
  }

  private targetsOf(input: unknown): StateDocument['targets'] {
    if (input === undefined) return {};
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
      throw new ConfigError(
        this.file,
        'targets',
        'must be an object of target statuses (delete the file to start again)',
      );
    }
    const out: StateDocument['targets'] = {};
    for (const [name, value] of Object.entries(input)) out[name] = this.statusOf(name, value);
    return out;
  }

  /** A stored status, each field checked: a hand-edited file fails here with the field named. */
  private statusOf(name: string, value: unknown): Omit<RecordedStatus, 'target'> {
    const at = (field: string) => `targets.${name}.${field}`;
    if (typeof value !== 'object' || value === null)
      throw new ConfigError(this.file, `targets.${name}`, 'must be an object');
    const v = value as Record<string, unknown>;
    const text = (field: string): string | null => {
      const x = v[field] ?? null;
      if (x !== null && typeof x !== 'string')
        throw new ConfigError(this.file, at(field), 'must be a string or null');
      return x;
    };
    const time = (field: string): string | null => {
      const x = text(field);
      if (x !== null && Number.isNaN(Date.parse(x)))
        throw new ConfigError(this.file, at(field), 'must be an ISO 8601 time or null');
      return x;
    };
    const whole = (field: string, nullable: boolean): number | null => {
      const x = v[field] ?? (nullable ? null : 0);
      if (x === null && nullable) return null;
      if (!Number.isSafeInteger(x) || (x as number) < 0)
        throw new ConfigError(this.file, at(field), 'must be a whole number ≥ 0');
      return x as number;
    };
    const outcome = text('lastOutcome');
    if (outcome !== null && !OUTCOMES.has(outcome as Outcome))
      throw new ConfigError(this.file, at('lastOutcome'), 'is not an outcome');
    const base = neverRun(name);
    return {
      lastOutcome: outcome as Outcome | null,
      lastAttemptAt: time('lastAttemptAt'),
      lastCycle: whole('lastCycle', true),
      lastSuccessAt: time('lastSuccessAt'),
      lastSuccessCycle: whole('lastSuccessCycle', true),
      consecutiveFailures: whole('consecutiveFailures', false) ?? base.consecutiveFailures,
      failingSince: time('failingSince'),
      lastError: text('lastError'),
      messagesTotal: whole('messagesTotal', false) ?? base.messagesTotal,
      serverDownSince: time('serverDownSince'),
      lastPrecheck: this.precheckOf(name, v.lastPrecheck),
      lastReason: text('lastReason'),
      serverDownChecks: whole('serverDownChecks', false) ?? base.serverDownChecks,
    };
  }

  /** `lastPrecheck`: null, or {at, passed, text} (files written before it have none). */
  private precheckOf(name: string, value: unknown): LastPrecheck | null {
    if (value === undefined || value === null) return null;
    const field = `targets.${name}.lastPrecheck`;
    const p = value as Record<string, unknown>;
    if (
      typeof value !== 'object' ||
      typeof p.at !== 'string' ||
      Number.isNaN(Date.parse(p.at)) ||
      typeof p.passed !== 'boolean' ||
      typeof p.text !== 'string'
    )
      throw new ConfigError(
        this.file,
        field,
        'must be null or {"at": an ISO 8601 time, "passed": true or false, "text": a string}',
      );
    return { at: p.at, passed: p.passed, text: p.text };
  }

  private async write(state: StateDocument): Promise<void> {
    const doc = { cycle: state.cycle, updatedAt: new Date().toISOString(), targets: state.targets };
    const temp = `${this.file}.${process.pid}.tmp`;
    const handle = await open(temp, 'w', 0o600);
    try {
      await handle.writeFile(`${JSON.stringify(doc, null, 2)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, this.file);
  }
}

export class MemoryCounter implements CycleCounter {
  private cycle = 0;
  async peek(): Promise<number> {
    return this.cycle;
  }
  async count(): Promise<{ cycle: number; counted: boolean }> {
    return { cycle: ++this.cycle, counted: true };
  }
}
