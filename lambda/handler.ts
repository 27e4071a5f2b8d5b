/**
 * The Lambda entry point: thin. It validates the event, loads the configuration, calls the core
 * (runCycle) under a deadline taken from the invocation's remaining time, and tells operators
 * what happened (one log line per target, metrics flushed once).
 *
 * Wiring: `createHandler(deps)` takes every adapter in (tests give their own clients or fakes);
 * `handler`, the exported entry, builds the real adapters from the environment on its first call
 * (lambda/deployed-adapters.ts) and reuses them while the instance stays warm (SDK clients keep
 * their connections; the secret cache lives on). Nothing reads process.env at import time.
 *
 * When the configuration cannot be loaded at all (SSM throttled or denied, invalid settings) or
 * the cycle cannot be counted, nothing is signalled and no cycle is counted: every target known
 * reports the error (see docs/lambda.md), and the next scheduled cycle is the retry.
 */
import { setMaxListeners } from 'node:events';
import type { Context, SQSBatchResponse } from 'aws-lambda';
import { mailReceiverFor } from './mail-receiver';
import { ConfigUnavailableError } from './adapters/ssm-config';
import { depsFromEnvironment } from './deployed-adapters';
import { asDequeueError, type DequeueError } from './core/errors';
import { outcomeOfError } from './core/outcome';
import type { CycleCounter, LoadedConfig } from './core/ports';
import type { CycleResult, TargetResult } from './core/result';
import { runCycle } from './core/run-cycle';
import { parseInvocationEvent, type ParsedEvent } from './invocation-event';
import { InvocationReport } from './observability';
import { CycleStatuses } from './target-health';
import type { HandlerDeps } from './handler-deps';
import { createWorker } from './worker';
import { isWorkQueueEvent, type WorkQueueEvent } from './work-queue-event';

export type { HandlerDeps } from './handler-deps';

/** The bundle's exports that tests of the deployed bundle read (test/lib/bundling.test.ts). */
export { MAIL_STORE_MODULE, WORK_QUEUE_MODULE } from './deployed-adapters';

/** Time kept back from the invocation's remaining time: results logged, metrics flushed. */
export const DEFAULT_SAFETY_MARGIN_MS = 5_000;

/** The part of the Lambda context the handler uses. */
export type InvocationContext = Pick<Context, 'getRemainingTimeInMillis'> & Partial<Context>;

export type DequeueHandler = (event: unknown, context?: InvocationContext) => Promise<CycleResult>;

/** Listeners the run's abort signal may have at once before Node warns (calls in flight). */
const SIGNAL_LISTENERS = 1_000;

/** How long reporting waits for the last counted cycle when nothing could run (within the margin). */
const REPORT_PEEK_MS = 1_500;

/** A counter that never claims: `force` signals whatever earlier deliveries did. */
function withoutClaims(counter: CycleCounter): CycleCounter {
  return {
    count: (slot, signal) => counter.count(slot, signal),
    peek: (signal) => counter.peek(signal),
  };
}

export function createHandler(deps: HandlerDeps): DequeueHandler {
  const now = deps.now ?? Date.now;
  const { logger } = deps.observability;

  return async function handle(event, context) {
    const started = now();
    if (context?.awsRequestId) logger.addContext(context as Context);

    let parsed: ParsedEvent;
    try {
      parsed = parseInvocationEvent(event);
    } catch (e) {
      // A malformed event is the caller's mistake: fail the invocation, loudly and clearly.
      logger.error('invalid invocation event', { error: (e as Error).message });
      throw e;
    }
    const deadline = context
      ? started +
        context.getRemainingTimeInMillis() -
        (deps.safetyMarginMs ?? DEFAULT_SAFETY_MARGIN_MS)
      : undefined;
    // Every SDK call of the run (the SSM listing, counting, claims, secrets) stops at the deadline,
    // retries included: the SDK's own bounds (10 s x 4 attempts per call) would outlast it.
    const signal =
      deadline === undefined ? undefined : AbortSignal.timeout(Math.max(0, deadline - started));
    // Each call in flight listens on it (claims, secrets, status writes: a few times `concurrency`
    // at once); each removes its listener when done, so Node's leak warning at 10 is noise here.
    if (signal) setMaxListeners(SIGNAL_LISTENERS, signal);
    logger.info('cycle starting', {
      ...parsed.delivery,
      deadline: deadline === undefined ? null : new Date(deadline).toISOString(),
    });

    const report = new InvocationReport(deps.observability);
    const statuses =
      deps.status && !parsed.request.dryRun ? new CycleStatuses(deps.status) : undefined;
    const onStatusError = (target: string, error: DequeueError) =>
      logger.warn('target status not recorded', { target, error: error.message });
    /** After a cycle that saw every target: FailingTargets and StaleTargets over `watched`. */
    const countHealth = async (watched: readonly string[]): Promise<void> => {
      if (!statuses || !deps.health || parsed.request.targets) return;
      try {
        // Within the time kept back for reporting: normally nothing is read at all.
        report.targetHealth(
          await statuses.health(watched, deps.health, now(), AbortSignal.timeout(REPORT_PEEK_MS)),
        );
      } catch (e) {
        logger.warn('failing and stale targets not counted this cycle', {
          error: asDequeueError(e).message,
        });
      }
    };
    let result: CycleResult | undefined;
    try {
      let config: LoadedConfig;
      try {
        config = await deps.config.load(signal);
      } catch (e) {
        const known =
          e instanceof ConfigUnavailableError
            ? e.targets.length
              ? e.targets
              : [e.source]
            : ['configuration'];
        // Only names from a listing are targets; a path or "configuration" has no status.
        const real = e instanceof ConfigUnavailableError ? e.targets : [];
        const names = parsed.request.targets ?? known;
        result = await everyTargetFails(names, asDequeueError(e), deps.counter, report);
        await recordEach(
          result.results.filter((r) => real.includes(r.target)),
          statuses,
          onStatusError,
          now,
        );
        await countHealth(real);
        return result;
      }
      const counter = parsed.request.force ? withoutClaims(deps.counter) : deps.counter;
      try {
        result = await runCycle(
          config,
          { ...parsed.request, deadline, signal },
          {
            credentials: deps.credentials,
            counter,
            leases: deps.leases,
            receiver:
              deps.receiver ??
              mailReceiverFor(
                deps.mailStore,
                config.settings,
                deps.tlsCa,
                deps.mailMemory,
                config.targets,
                deps.port25Hint,
              ),
            helloName: config.settings.helloName,
            tlsCa: deps.tlsCa,
            now: deps.now,
            resolveHost: deps.resolveHost,
            resolveMx: deps.resolveMx,
            port25Hint: deps.port25Hint,
            workQueue: deps.workQueue,
            onResult: (r) => report.target(r),
            status: statuses,
            onStatusError,
          },
        );
      } catch (e) {
        // Only the counter can fail the whole cycle (count/peek, before any target starts).
        const names = parsed.request.targets ?? [
          ...config.invalid.map((t) => t.name),
          ...config.targets.map((t) => t.name),
        ];
        result = await everyTargetFails(names, asDequeueError(e), deps.counter, report);
        await recordEach(result.results, statuses, onStatusError, now);
      }
      // Disabled targets (or all, paused by settings.enabled false) are nobody's worry; invalid
      // ones are failing targets.
      const watched =
        config.settings.enabled === false
          ? []
          : config.targets.filter((t) => t.enabled).map((t) => t.name);
      // Every watched target, those handed to the workers included (as the workers last
      // recorded them): if the workers never run, their targets still grow stale here.
      await countHealth([...config.invalid.map((t) => t.name), ...watched]);
      return result;
    } finally {
      report.finish(result, {
        kind: parsed.kind,
        durationMs: now() - started,
        ...(result?.queued ? { queued: result.queued.length } : {}),
      });
    }
  };
}

/**
 * Nothing could run: each target reports `error` under the last counted cycle, which stays as it
 * was. A slot in which nothing could be decided is left uncounted, so `everyNthCycle` keeps its
 * rhythm over the cycles that did run; the next scheduled slot is the retry.
 */
async function everyTargetFails(
  names: readonly string[],
  error: DequeueError,
  counter: CycleCounter,
  report: InvocationReport,
): Promise<CycleResult> {
  let cycle = 0;
  try {
    // Only for the record, inside the time kept back for reporting: never wait long for it.
    cycle = await counter.peek(AbortSignal.timeout(REPORT_PEEK_MS));
  } catch {
    // The counter may be what failed; 0 then says "unknown".
  }
  const outcome = outcomeOfError(error);
  const results = names.map(
    (target): TargetResult => ({
      target,
      outcome,
      cycle,
      durationMs: 0,
      replies: [],
      messages: 0,
      error: error.message,
    }),
  );
  for (const r of results) report.target(r);
  return { cycle, results };
}

/** The statuses of results made outside runCycle (nothing could run), a few at once. */
async function recordEach(
  results: readonly TargetResult[],
  statuses: CycleStatuses | undefined,
  onError: (target: string, error: DequeueError) => void,
  now: () => number,
): Promise<void> {
  if (!statuses) return;
  const queue = [...results];
  const worker = async (): Promise<void> => {
    for (let r = queue.shift(); r; r = queue.shift()) {
      await statuses
        .record(r, now(), AbortSignal.timeout(REPORT_PEEK_MS))
        .catch((e: unknown) => onError(r!.target, asDequeueError(e)));
    }
  };
  await Promise.all(Array.from({ length: Math.min(10, queue.length) }, worker));
}

export type EntryHandler = (
  event: unknown,
  context?: InvocationContext,
) => Promise<CycleResult | SQSBatchResponse>;

/**
 * What the function does with any event: a batch shaped like the work queue's goes to the worker
 * (docs/fan-out.md), anything else is a cycle. The shape proves nothing about the sender (anyone
 * allowed to invoke the function can send one): the worker trusts no order beyond a target's
 * name (lambda/worker.ts, docs/security.md).
 */
export function createEntry(deps: HandlerDeps): EntryHandler {
  const cycle = createHandler(deps);
  const worker = createWorker(deps);
  return (event, context) =>
    isWorkQueueEvent(event) ? worker(event, context) : cycle(event, context);
}

let wired: EntryHandler | undefined;

/** The function's entry point (NodejsFunction `handler: 'handler'`), wired on its first call. */
export async function handler(event: WorkQueueEvent, context: Context): Promise<SQSBatchResponse>;
export async function handler(event: unknown, context: Context): Promise<CycleResult>;
export async function handler(
  event: unknown,
  context: Context,
): Promise<CycleResult | SQSBatchResponse> {
  wired ??= createEntry(depsFromEnvironment(process.env));
  return wired(event, context);
}
