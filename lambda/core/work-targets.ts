/**
 * Working the due targets of a cycle (the function's own run, or a fan-out worker's batch): at
 * most `settings.concurrency` at once, each started only when one reply's bound still fits before
 * the run's deadline, each claimed before its signal when the counter takes claims, and each
 * ending in a result whatever happens.
 */
import { lookup } from 'node:dns/promises';
import { type Settings, type Target, verbOf } from './config';
import { asDequeueError, ConfigError, DequeueError } from './errors';
import { outcomeOfError } from './outcome';
import { pool } from './pool';
import type { CycleCounter, HeldLease, TargetLeases } from './ports';
import type { PrecheckDeps } from './precheck/precheck';
import type { PrecheckOutcome } from './precheck/precheck-report';
import { releaseGate } from './precheck/release-gate';
import type { TargetResult } from './result';
import { stopReason } from './run-stop';
import { releaseSignal, type SignalDeps } from './signal/session';
import { neverResolves } from './smtp/connection';
import { DEFAULT_REPLY_TIMEOUT_MS, replyTimeoutMs } from './smtp/timeouts';

/** What workTargets needs to know about the run the targets belong to. */
export interface TargetRun {
  readonly cycle: number;
  readonly settings: Settings;
  /** Signal whatever the count says; a failed precheck is reported but holds nothing back. */
  readonly force?: boolean;
  readonly dryRun?: boolean;
  readonly deadline?: number;
  readonly signal?: AbortSignal;
  /** The run was told to stop (core/run-stop.ts): nothing more is started, sessions end properly. */
  readonly stop?: AbortSignal;
}

export interface WorkDeps
  extends SignalDeps,
    Pick<PrecheckDeps, 'resolveMx' | 'port25Hint' | 'checkServer'> {
  /** Its claims, when it takes them: a target is signalled once per counted cycle. */
  readonly counter: Pick<CycleCounter, 'claim'>;
  /**
   * One session per target at a time, across runs (ports.ts): held from before the claim until
   * the signal ends, for runs with a deadline. Without it nothing stops two runs' sessions to one
   * target from overlapping.
   */
  readonly leases?: TargetLeases;
  /** Resolves a host for --dry-run; the default uses the system resolver. */
  readonly resolveHost?: (host: string) => Promise<void>;
}

/** The reason given to a target another run is still talking to (TargetLeases). */
export const TARGET_BUSY =
  'another session to this target is still running (a slower cycle, a manual run or an earlier work order): not signalled twice at once; the next cycle tries again';

/** The reason given to a target the run had no time left for (issue: starvation, docs/lambda.md). */
export const NOT_REACHED =
  "not reached before the run's deadline: the order of the targets rotates every cycle, so it is worked earlier in a later one";

/**
 * Work `targets` in the order given, at most `settings.concurrency` at once, and hand each result
 * to `finish` as it comes. `untried` is true when nothing was sent and no claim taken for the
 * target and a later try may succeed (not reached before the deadline; the claim could not be
 * written for a temporary reason): a worker hands such a target back to its queue.
 */
export async function workTargets(
  targets: readonly Target[],
  run: TargetRun,
  deps: WorkDeps,
  finish: (result: TargetResult, untried: boolean) => void,
): Promise<void> {
  const { signal } = run;
  // Every SDK call the targets make (claims, secrets) ends at the run's deadline with the signal.
  const credentials = signal
    ? { get: (secretId: string) => deps.credentials.get(secretId, signal) }
    : deps.credentials;
  const worker: Worker = {
    ...deps,
    credentials,
    helloName: deps.helloName ?? run.settings.helloName,
    claim: deps.counter.claim?.bind(deps.counter),
  };
  await pool(targets, run.settings.concurrency, async (target) => {
    const { result, untried } = await workTarget(target, run, worker);
    finish(result, untried);
  });
}

/** The deps of one target's work, with the run's bounds applied. */
interface Worker extends WorkDeps {
  readonly claim?: CycleCounter['claim'];
}

type Worked = { readonly result: TargetResult; readonly untried: boolean };
type Untimed = Omit<TargetResult, 'durationMs' | 'cycle' | 'target'>;

/** Nothing was sent: skipped, for `reason` (with the precheck's outcome when there was one). */
function skipped(reason: string | undefined, precheck?: PrecheckOutcome): Untimed {
  return {
    outcome: 'skipped',
    replies: [],
    messages: 0,
    error: null,
    reason,
    ...(precheck ? { precheck } : {}),
  };
}

/**
 * The customer's server checked before the signal (precheck/), with this target's EHLO name.
 * It comes before the claim: a target whose server is down spends nothing of its cycle, and
 * another delivery of the slot may still find the server up.
 */
function gate(target: Target, run: TargetRun, worker: Worker) {
  return releaseGate(
    target,
    run.settings,
    { force: run.force, deadline: run.deadline, signal: run.signal },
    { ...worker, helloName: target.helloName ?? worker.helloName },
  );
}

/** One target: checked, rehearsed (--dry-run), or started in time, prechecked, claimed and signalled. */
async function workTarget(target: Target, run: TargetRun, worker: Worker): Promise<Worked> {
  const now = worker.now ?? Date.now;
  const started = now();
  const timed = (r: Untimed): TargetResult => ({
    target: target.name,
    cycle: run.cycle,
    durationMs: now() - started,
    ...r,
  });
  let claimed = false;
  try {
    if (pullsMail(target) && !worker.receiver) {
      throw new ConfigError(
        target.name,
        'command',
        'ATRN needs somewhere to store the mail it pulls (the CLI: --mail-dir)',
      );
    }
    if (run.dryRun) {
      const rehearsed = await rehearse(target, worker);
      // The dry run checks the customer's server too: it sends nothing to the provider.
      const checked = await gate(target, run, worker);
      const held =
        checked.open && checked.withheld.length
          ? ` (${checked.withheld.map((w) => w.command).join(', ')} held back)`
          : '';
      const reason = !checked.open
        ? `dry run: would send nothing: ${checked.reason}`
        : checked.precheck
          ? `${rehearsed.reason}; precheck: ${checked.precheck.text}${held}`
          : rehearsed.reason;
      return {
        result: timed(skipped(reason, checked.precheck)),
        untried: false,
      };
    }
    if (!startsInTime(target, now(), run.deadline)) {
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
    if (run.stop?.aborted) {
      // Nothing was sent and nothing is recorded: as if not due this cycle.
      return {
        result: timed(skipped(`not started: the run was stopped (${stopReason(run.stop)})`)),
        untried: true,
      };
    }
    const checked = await gate(target, run, worker);
    if (!checked.open) {
      return {
        result: timed(skipped(checked.reason, checked.precheck)),
        untried: false,
      };
    }
    // The lease comes before the claim: a target another run is talking to keeps this cycle's
    // claim free, and the claim's refusal gives the lease back at once (finally, below).
    let lease: HeldLease | undefined;
    if (worker.leases && run.deadline !== undefined) {
      lease = await worker.leases.hold(target.name, run.deadline, run.signal);
      if (!lease) {
        // No precheck in it: a skip without one is not recorded (run-cycle.ts, worker.ts), so the
        // other run's session, of an older cycle, still records its own result for the target.
        return {
          result: timed(skipped(TARGET_BUSY)),
          untried: false,
        };
      }
    }
    try {
      return await claimAndSignal(target, run, worker, checked, timed, () => {
        claimed = true;
      });
    } finally {
      await lease?.release();
    }
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
}

/** The target's claim for the cycle (when the counter takes claims), then its signal. */
async function claimAndSignal(
  target: Target,
  run: TargetRun,
  worker: Worker,
  checked: Open<Awaited<ReturnType<typeof gate>>>,
  timed: (r: Untimed) => TargetResult,
  onClaimed: () => void,
): Promise<Worked> {
  if (worker.claim && !(await worker.claim(run.cycle, target.name, run.signal))) {
    return {
      result: timed(skipped(`already signalled in cycle ${run.cycle}`)),
      untried: false,
    };
  }
  onClaimed();
  // An MSP signals for many customers: a target's own helloName comes first.
  const report = await releaseSignal(
    checked.target,
    {
      deadline: run.deadline,
      maxEtrnPerSession: run.settings.maxEtrnPerSession,
      stop: run.stop,
    },
    target.helloName ? { ...worker, helloName: target.helloName } : worker,
  );
  return {
    result: timed({
      outcome: report.outcome,
      replies: [...report.replies, ...checked.withheld],
      messages: report.messages,
      ...(report.refusedRecipients ? { refusedRecipients: report.refusedRecipients } : {}),
      error: report.error?.message ?? null,
      ...(checked.precheck ? { precheck: checked.precheck } : {}),
    }),
    untried: false,
  };
}

type Open<T> = T extends { open: true } ? T : never;

/** An ATRN target over SMTP: the provider turns the connection and delivers to us. */
function pullsMail(target: Target): boolean {
  return target.commands.some((c) => verbOf(c) === 'ATRN') && target.protocol === 'smtp';
}

/**
 * A target is started only when one reply's bound (its timeoutSeconds, at most the default) still
 * fits before the run's deadline: one started later could only be cut off, and the targets left
 * out are worked first in a later cycle (due-targets.ts, rotateForCycle).
 */
export function startsInTime(target: Target, now: number, deadline: number | undefined): boolean {
  if (deadline === undefined) return true;
  return (
    now + Math.min(replyTimeoutMs(target.timeoutSeconds), DEFAULT_REPLY_TIMEOUT_MS) <= deadline
  );
}

const defaultResolve = async (host: string): Promise<void> => {
  await lookup(host);
};

/** --dry-run: everything short of connecting: credentials present and well-formed, host resolvable. */
async function rehearse(
  target: Target,
  deps: Pick<WorkDeps, 'credentials' | 'resolveHost'>,
): Promise<Pick<TargetResult, 'outcome' | 'reason'>> {
  if (target.auth) await deps.credentials.get(target.auth.secretId);
  try {
    await (deps.resolveHost ?? defaultResolve)(target.host);
  } catch (e) {
    // NXDOMAIN is a mistake in the configuration (connection.ts); a resolver failure is not.
    throw new DequeueError(
      neverResolves(e) ? 'config' : 'temporary',
      `cannot resolve host ${target.host}: ${(e as Error).message}${neverResolves(e) ? ': the DNS says it does not exist; check the host name' : ''}`,
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
