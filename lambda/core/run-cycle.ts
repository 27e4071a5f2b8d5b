/**
 * One processing cycle over all targets, in its phases: select the targets and count the cycle,
 * plan who is due (cycle-plan.ts), then hand the due targets to the fan-out workers or work them
 * here under the run's deadline (work-targets.ts), and report every target as it finishes,
 * including the ones that were skipped, invalid or left unstarted.
 */
import { asDequeueError, type DequeueError } from './errors';
import {
  type CyclePlan,
  planCycle,
  recheckCandidates,
  type Selection,
  selectTargets,
  settledResult,
} from './cycle-plan';
import { rotateForCycle } from './due-targets';
import { needsFanOut, workOrderFor } from './fan-out';
import { outcomeOfError } from './outcome';
import { pool } from './pool';
import type { CycleCounter, LoadedConfig, StatusRecorder, WorkQueue } from './ports';
import { type CycleResult, NO_TARGETS, type TargetResult } from './result';
import { type WorkDeps, workTargets } from './work-targets';

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
  /**
   * The run was told to stop (the CLI on SIGINT/SIGTERM; core/run-stop.ts): targets not yet
   * started are reported `skipped` and not recorded, sessions under way end properly, and the
   * results and statuses of what finished are reported as usual.
   */
  readonly stop?: AbortSignal;
}

export interface CycleDeps extends WorkDeps {
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
  /**
   * Where the due targets go when there are more than one run should take on (docs/fan-out.md);
   * without it every cycle works all its targets itself.
   */
  readonly workQueue?: WorkQueue;
}

export async function runCycle(
  config: LoadedConfig,
  request: CycleRequest,
  deps: CycleDeps,
): Promise<CycleResult> {
  const selection = selectTargets(config, request.targets);
  if (selection.empty) {
    // No targets at all (none valid, none invalid, none asked for): a cycle in which nothing can
    // be due is not counted, as the CLI does, so `everyNthCycle` starts with the first target.
    return { cycle: await deps.counter.peek(request.signal), results: [], notCounted: NO_TARGETS };
  }
  const { cycle, counted } = await countCycle(request, deps.counter);
  const claims = deps.counter.claim !== undefined;
  const force = request.force ?? false;
  // A target whose server was down at its last check is checked again every cycle, due or not,
  // so that the mail is released as soon as the server answers, not N cycles later.
  const recheck =
    counted || claims
      ? await serversDown(
          recheckCandidates(selection, config.settings, cycle, force),
          deps,
          request.signal,
        )
      : undefined;
  const plan = planCycle(selection, config.settings, cycle, { force, counted, claims, recheck });
  const report = new CycleReport(selection, request, deps);
  for (const { result } of plan.settled) report.finish(result);
  if (deps.workQueue && !request.dryRun && needsFanOut(plan.work, config.settings))
    return handToWorkers(deps.workQueue, plan, cycle, config, request, deps, report);
  return workHere(plan, cycle, config, request, deps, report);
}

/**
 * Of `names` (targets with a precheck, not due by the count), those whose last check found the
 * server down, per the status store. A store that cannot say (none, or its read failed) means
 * none: the target waits for its next due cycle as before.
 */
async function serversDown(
  names: readonly string[],
  deps: CycleDeps,
  signal?: AbortSignal,
): Promise<ReadonlySet<string> | undefined> {
  const status = deps.status;
  if (!status?.serverDown || names.length === 0) return undefined;
  try {
    return await status.serverDown(names, signal);
  } catch (e) {
    deps.onStatusError?.(names[0]!, asDequeueError(e));
    return undefined;
  }
}

/**
 * The cycle this run stands for. A dry run looks at the next one, a forced run takes the last
 * one, neither counts; a scheduled run counts one, at most once for its slot (`counted` false
 * when another delivery of the same slot counted it first).
 */
async function countCycle(
  request: CycleRequest,
  counter: CycleCounter,
): Promise<{ cycle: number; counted: boolean }> {
  if (request.dryRun) return { cycle: (await counter.peek(request.signal)) + 1, counted: true };
  if (request.force) return { cycle: await counter.peek(request.signal), counted: true };
  const { cycle, counted } = await counter.count(request.slot, request.signal);
  return { cycle, counted };
}

/**
 * Fan-out: the due targets go to the queue-fed workers, whose results and statuses come from them
 * (docs/fan-out.md). An order that could not be queued is reported here; nothing was sent for it
 * and the next cycle is the retry.
 */
async function handToWorkers(
  workQueue: WorkQueue,
  plan: CyclePlan,
  cycle: number,
  config: LoadedConfig,
  request: CycleRequest,
  deps: CycleDeps,
  report: CycleReport,
): Promise<CycleResult> {
  const orderRun = {
    slot: request.slot,
    cycle,
    claim: deps.counter.claim !== undefined,
    settings: config.settings,
    now: (deps.now ?? Date.now)(),
  };
  const [refused] = await Promise.all([
    workQueue.send(
      rotateForCycle(plan.work, cycle).map((target) =>
        workOrderFor(target, { ...orderRun, parameter: config.locations?.[target.name] }),
      ),
      request.signal,
    ),
    report.recordSettled(plan, config.settings.concurrency),
  ]);
  const notQueued = new Set<string>();
  const notQueuedResults: TargetResult[] = [];
  for (const { target, error } of refused) {
    notQueued.add(target);
    const result = {
      ...settledResult(
        target,
        cycle,
        outcomeOfError(error),
        `not handed to a worker: ${error.message}`,
      ),
      reason: 'could not be queued for a worker; tried again next cycle',
    };
    report.finish(result);
    notQueuedResults.push(result);
  }
  await pool(notQueuedResults, config.settings.concurrency, (r) => report.record(r));
  return {
    cycle,
    results: report.inOrder(),
    queued: plan.work.map((t) => t.name).filter((name) => !notQueued.has(name)),
  };
}

/** The due targets worked by this run, in the order of the cycle, under its deadline. */
async function workHere(
  plan: CyclePlan,
  cycle: number,
  config: LoadedConfig,
  request: CycleRequest,
  deps: CycleDeps,
  report: CycleReport,
): Promise<CycleResult> {
  const run = {
    cycle,
    settings: config.settings,
    force: request.force,
    dryRun: request.dryRun,
    deadline: request.deadline,
    signal: request.signal,
    stop: request.stop,
  };
  // A worked target ends `skipped` when another delivery of the slot claimed it first (that
  // delivery records it) or when its precheck failed (recorded: the status says the server is
  // down). The statuses of the others go out as each finishes.
  const recording: Promise<void>[] = [];
  await Promise.all([
    workTargets(rotateForCycle(plan.work, cycle), run, deps, (result) => {
      report.finish(result);
      if (result.outcome !== 'skipped' || result.precheck) recording.push(report.record(result));
    }),
    report.recordSettled(plan, config.settings.concurrency),
  ]);
  await Promise.all(recording);
  return { cycle, results: report.inOrder() };
}

/**
 * The cycle's results: each handed to `onResult` as it comes, its status recorded (dry runs record
 * nothing), and all of them returned in the configured order.
 */
class CycleReport {
  private readonly results = new Map<string, TargetResult>();

  constructor(
    private readonly selection: Selection,
    private readonly request: CycleRequest,
    private readonly deps: CycleDeps,
  ) {}

  finish(result: TargetResult): void {
    this.results.set(result.target, result);
    this.deps.onResult?.(result);
  }

  /** Keep the target's status; one that cannot be kept leaves the result as it is. */
  async record(result: TargetResult): Promise<void> {
    if (!this.deps.status || this.request.dryRun) return;
    try {
      await this.deps.status.record(result, (this.deps.now ?? Date.now)(), this.request.signal);
    } catch (e) {
      this.deps.onStatusError?.(result.target, asDequeueError(e));
    }
  }

  /** The statuses of the invalid and not-due targets, written beside the work. */
  recordSettled(plan: CyclePlan, concurrency: number): Promise<void> {
    const recordable = plan.settled.filter((s) => s.recorded).map((s) => s.result);
    return pool(recordable, concurrency, (r) => this.record(r));
  }

  inOrder(): TargetResult[] {
    return this.selection.order.flatMap((name) => {
      const result = this.results.get(name);
      return result ? [result] : [];
    });
  }
}
