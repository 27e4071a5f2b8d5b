/**
 * One processing cycle over all targets: count the cycle, decide who is due, work the due targets
 * with bounded concurrency under one deadline, and report every target, including the ones that
 * were skipped, invalid or left unstarted.
 */
import { lookup } from 'node:dns/promises';
import { verbOf, type Target } from './config';
import { dueDecision, rotateForCycle } from './due-targets';
import { asDequeueError, ConfigError, DequeueError } from './errors';
import { outcomeOfError } from './outcome';
import { needsFanOut, workOrderFor } from './fan-out';
import type { CycleCounter, LoadedConfig, Settings, StatusRecorder, WorkQueue } from './ports';
import { NO_TARGETS, type CycleResult, type TargetResult } from './result';
import { DEFAULT_REPLY_TIMEOUT_MS, releaseSignal, type SignalDeps } from './signal/session';

export interface CycleRequest {
  /** Signal every selected target whatever the count says, without advancing the count. */
  readonly force?: boolean;
  /** Validate and resolve (secrets, DNS) without sending or counting anything. */
  readonly dryRun?: boolean;
  /** Work only these targets (by name); an unknown name is reported as `config-error`. */
  readonly targets?: readonly string[];
  /** The scheduled slot this run stands for; counted at most once. */
  readonly slot?: string;
  /** Epoch ms by which every target must have finished. */
  readonly deadline?: number;
  /**
   * Aborts the calls to outside systems (counting, claims, secrets) and their retries; the Lambda
   * handler fires it at the run's deadline so that the results are always reported in time.
   */
  readonly signal?: AbortSignal;
}

export interface CycleDeps extends SignalDeps {
  readonly counter: CycleCounter;
  /** Called as each target finishes (completion order), e.g. to print NDJSON as results come. */
  readonly onResult?: (result: TargetResult) => void;
  /**
   * Keeps each target's status (target-status.ts) after its result; dry runs record nothing, nor
   * do targets another delivery of the same slot already handled, nor unknown names.
   */
  readonly status?: StatusRecorder;
  /** A status that could not be recorded: the target's result stands; the caller logs this. */
  readonly onStatusError?: (target: string, error: DequeueError) => void;
  /** Resolves a host for --dry-run; the default uses the system resolver. */
  readonly resolveHost?: (host: string) => Promise<void>;
  /**
   * Where the due targets go when there are more than one run should take on (docs/fan-out.md);
   * without it every cycle works all its targets itself.
   */
  readonly workQueue?: WorkQueue;
}

const defaultResolve = async (host: string): Promise<void> => {
  await lookup(host);
};

export async function runCycle(
  config: LoadedConfig,
  request: CycleRequest,
  deps: CycleDeps,
): Promise<CycleResult> {
  const wanted = request.targets ? new Set(request.targets) : null;
  const selected = config.targets.filter((t) => !wanted || wanted.has(t.name));
  const invalid = config.invalid.filter((t) => !wanted || wanted.has(t.name));
  const known = new Set([
    ...config.targets.map((t) => t.name),
    ...config.invalid.map((t) => t.name),
  ]);
  const unknown = [...(wanted ?? [])].filter((name) => !known.has(name));

  if (known.size === 0 && unknown.length === 0) {
    // No targets at all (none valid, none invalid, none asked for): a cycle in which nothing can
    // be due is not counted, as the CLI does, so `everyNthCycle` starts with the first target.
    return { cycle: await deps.counter.peek(request.signal), results: [], notCounted: NO_TARGETS };
  }

  let cycle: number;
  let counted = true;
  if (request.dryRun) {
    cycle = (await deps.counter.peek(request.signal)) + 1;
  } else if (request.force) {
    cycle = await deps.counter.peek(request.signal);
  } else {
    ({ cycle, counted } = await deps.counter.count(request.slot, request.signal));
  }

  const results = new Map<string, TargetResult>();
  const finish = (result: TargetResult): void => {
    results.set(result.target, result);
    deps.onResult?.(result);
  };
  const now = deps.now ?? Date.now;
  const record = async (result: TargetResult): Promise<void> => {
    if (!deps.status || request.dryRun) return;
    try {
      await deps.status.record(result, now(), request.signal);
    } catch (e) {
      deps.onStatusError?.(result.target, asDequeueError(e));
    }
  };
  /** Invalid and not-due targets: their statuses are written beside the work. */
  const recordable: TargetResult[] = [];
  const fixed = (
    target: string,
    outcome: TargetResult['outcome'],
    error: string | null,
    reason?: string,
  ): TargetResult => ({
    target,
    outcome,
    cycle,
    durationMs: 0,
    replies: [],
    messages: 0,
    error,
    ...(reason ? { reason } : {}),
  });

  for (const bad of invalid) {
    const result = fixed(bad.name, 'config-error', bad.error.message);
    finish(result);
    recordable.push(result);
  }
  for (const name of unknown)
    finish(fixed(name, 'config-error', `no target named "${name}" in the configuration`));

  const work: Target[] = [];
  for (const target of selected) {
    const decision = dueDecision(target, config.settings, cycle, request.force ?? false);
    if (!decision.due) {
      const result = fixed(target.name, 'skipped', null, decision.reason);
      finish(result);
      recordable.push(result);
    } else if (!counted && !deps.counter.claim)
      finish(fixed(target.name, 'skipped', null, `cycle ${cycle} was already run for this slot`));
    else work.push(target);
  }

  const order = [...invalid.map((t) => t.name), ...selected.map((t) => t.name), ...unknown];
  const inOrder = (): TargetResult[] => order.map((name) => results.get(name)!).filter(Boolean);

  if (deps.workQueue && !request.dryRun && needsFanOut(work, config.settings)) {
    // Handed to the workers: their results and statuses come from them (docs/fan-out.md). An
    // order that could not be queued is reported here; nothing was sent for it and the next
    // cycle is the retry.
    const orderRun = {
      slot: request.slot,
      cycle,
      claim: deps.counter.claim !== undefined,
      settings: config.settings,
      now: now(),
    };
    const [refused] = await Promise.all([
      deps.workQueue.send(
        rotateForCycle(work, cycle).map((target) => workOrderFor(target, orderRun)),
        request.signal,
      ),
      pool(recordable, config.settings.concurrency, record),
    ]);
    const notQueued = new Set<string>();
    const notQueuedResults: TargetResult[] = [];
    for (const { target, error } of refused) {
      notQueued.add(target);
      const result = {
        ...fixed(target, outcomeOfError(error), `not handed to a worker: ${error.message}`),
        reason: 'could not be queued for a worker; tried again next cycle',
      };
      finish(result);
      notQueuedResults.push(result);
    }
    await pool(notQueuedResults, config.settings.concurrency, record);
    return {
      cycle,
      results: inOrder(),
      queued: work.map((t) => t.name).filter((name) => !notQueued.has(name)),
    };
  }

  const run = {
    cycle,
    settings: config.settings,
    dryRun: request.dryRun,
    deadline: request.deadline,
    signal: request.signal,
  };
  // A worked target ends `skipped` only when another delivery of the slot claimed it first: that
  // delivery records it. The statuses of the others go out as each finishes.
  const recording: Promise<void>[] = [];
  await Promise.all([
    workTargets(rotateForCycle(work, cycle), run, deps, (result) => {
      finish(result);
      if (result.outcome !== 'skipped') recording.push(record(result));
    }),
    pool(recordable, config.settings.concurrency, record),
  ]);
  await Promise.all(recording);
  return { cycle, results: inOrder() };
}

/** What workTargets needs to know about the run the targets belong to. */
export interface TargetRun {
  readonly cycle: number;
  readonly settings: Settings;
  readonly dryRun?: boolean;
  readonly deadline?: number;
  readonly signal?: AbortSignal;
}

/**
 * Work `targets` in the order given, at most `settings.concurrency` at once, and hand each result
 * to `finish` as it comes. `untried` is true when nothing was sent and no claim taken for the
 * target and a later try may succeed (not reached before the deadline; the claim could not be
 * written for a temporary reason): a worker hands such a target back to its queue.
 */
export async function workTargets(
  targets: readonly Target[],
  run: TargetRun,
  deps: CycleDeps,
  finish: (result: TargetResult, untried: boolean) => void,
): Promise<void> {
  const now = deps.now ?? Date.now;
  const { cycle, deadline, signal } = run;
  // Every SDK call the targets make (claims, secrets) ends at the run's deadline with the signal.
  const credentials = signal
    ? { get: (secretId: string) => deps.credentials.get(secretId, signal) }
    : deps.credentials;
  const claim = deps.counter.claim?.bind(deps.counter);
  const signalDeps = { ...deps, credentials, helloName: deps.helloName ?? run.settings.helloName };

  const one = async (target: Target): Promise<{ result: TargetResult; untried: boolean }> => {
    const started = now();
    const timed = (r: Omit<TargetResult, 'durationMs' | 'cycle' | 'target'>): TargetResult => ({
      target: target.name,
      cycle,
      durationMs: now() - started,
      ...r,
    });
    let claimed = false;
    try {
      if (
        target.commands.some((c) => verbOf(c) === 'ATRN') &&
        target.protocol === 'smtp' &&
        !deps.receiver
      ) {
        throw new ConfigError(
          target.name,
          'command',
          'ATRN needs somewhere to store the mail it pulls (the CLI: --mail-dir)',
        );
      }
      if (run.dryRun)
        return {
          result: timed({
            ...(await rehearse(target, signalDeps)),
            replies: [],
            messages: 0,
            error: null,
          }),
          untried: false,
        };
      const budget = target.timeoutSeconds
        ? target.timeoutSeconds * 1000
        : DEFAULT_REPLY_TIMEOUT_MS;
      if (deadline !== undefined && now() + Math.min(budget, DEFAULT_REPLY_TIMEOUT_MS) > deadline) {
        return {
          result: timed({
            outcome: 'temporary-failure',
            replies: [],
            messages: 0,
            error:
              "not started: too little time left before the run's deadline; it is tried again next cycle",
            reason: NOT_REACHED,
          }),
          untried: true,
        };
      }
      if (claim && !(await claim(cycle, target.name, signal))) {
        return {
          result: timed({
            outcome: 'skipped',
            replies: [],
            messages: 0,
            error: null,
            reason: `already signalled in cycle ${cycle}`,
          }),
          untried: false,
        };
      }
      claimed = true;
      // An MSP signals for many customers: a target's own helloName comes first.
      const report = await releaseSignal(
        target,
        { deadline },
        target.helloName ? { ...signalDeps, helloName: target.helloName } : signalDeps,
      );
      return {
        result: timed({
          outcome: report.outcome,
          replies: report.replies,
          messages: report.messages,
          error: report.error?.message ?? null,
        }),
        untried: false,
      };
    } catch (e) {
      const error = asDequeueError(e);
      return {
        result: timed({
          outcome: outcomeOfError(error),
          replies: [],
          messages: 0,
          error: error.message,
        }),
        untried: !claimed && error.kind === 'temporary',
      };
    }
  };

  await pool(targets, run.settings.concurrency, async (target) => {
    const { result, untried } = await one(target);
    finish(result, untried);
  });
}

/** The reason given to a target the run had no time left for (issue: starvation, docs/lambda.md). */
export const NOT_REACHED =
  "not reached before the run's deadline: the targets are worked in an order that turns every cycle, so it comes earlier in a later one";

/** --dry-run: everything short of connecting: credentials present and well-formed, host resolvable. */
async function rehearse(
  target: Target,
  deps: Pick<CycleDeps, 'credentials' | 'resolveHost'>,
): Promise<Pick<TargetResult, 'outcome' | 'reason'>> {
  if (target.auth) await deps.credentials.get(target.auth.secretId);
  try {
    await (deps.resolveHost ?? defaultResolve)(target.host);
  } catch (e) {
    throw new DequeueError(
      'temporary',
      `cannot resolve host ${target.host}: ${(e as Error).message}`,
      { cause: e },
    );
  }
  const what = target.commands.length ? target.commands.join(' | ') : 'a bare connection';
  // The store was checked when the receiver was made (the CLI: --mail-dir writable).
  const store = target.commands.some((c) => verbOf(c) === 'ATRN')
    ? ', and store the mail it pulls'
    : '';
  return {
    outcome: 'skipped',
    reason: `dry run: would send ${what} to ${target.host}:${target.port}${store}`,
  };
}

/** Run `task` over `items`, at most `limit` at once. */
async function pool<T>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
