/**
 * The Lambda entry point: thin. It validates the event, loads the configuration, calls the core
 * (runCycle) under a deadline taken from the invocation's remaining time, and tells operators
 * what happened (one log line per target, metrics flushed once).
 *
 * Wiring: `createHandler(deps)` takes every adapter in (tests give their own clients or fakes);
 * `handler`, the exported entry, builds the real adapters from the environment on its first call
 * and reuses them while the instance stays warm (SDK clients keep their connections; the secret
 * cache lives on). Nothing reads process.env at import time.
 *
 * When the configuration cannot be loaded at all (SSM throttled or denied, invalid settings) or
 * the cycle cannot be counted, nothing is signalled and no cycle is counted: every target known
 * reports the error (see docs/lambda.md), and the next scheduled cycle is the retry.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SSMClient } from '@aws-sdk/client-ssm';
import { setMaxListeners } from 'node:events';
import type { Context, SQSBatchResponse } from 'aws-lambda';
import { DynamoDbCycleCounter } from './adapters/dynamodb-counter';
import { lambdaMailMemory, MemoryBudget } from './core/memory-budget';
import { DynamoDbStatusStore } from './adapters/dynamodb-status';
import { mailReceiverFor } from './mail-receiver';
import { SecretsManagerCredentials } from './adapters/secrets-manager-credentials';
import { ConfigUnavailableError, SsmConfigSource } from './adapters/ssm-config';
import { asDequeueError, type DequeueError } from './core/errors';
import { outcomeOfError } from './core/outcome';
import type {
  ConfigSource,
  Credentials,
  CycleCounter,
  LoadedConfig,
  MailReceiver,
  MailSink,
  WorkQueue,
} from './core/ports';
import type { CycleResult, TargetResult } from './core/result';
import { runCycle } from './core/run-cycle';
import { readEnvironment } from './environment';
import { parseInvocationEvent, type ParsedEvent } from './invocation-event';
import { createObservability, InvocationReport, type Observability } from './observability';
import { CycleStatuses, type HealthThresholds, type StatusStore } from './target-health';
import {
  createWorker,
  isWorkQueueEvent,
  type WorkQueueEvent,
  type WorkQueueHandler,
} from './worker';

/** Time kept back from the invocation's remaining time: results logged, metrics flushed. */
export const DEFAULT_SAFETY_MARGIN_MS = 5_000;

export interface HandlerDeps {
  readonly config: ConfigSource;
  readonly credentials: Credentials;
  readonly counter: CycleCounter;
  /**
   * Serves mail pulled after ATRN (RFC 2645) as given; tests may plug one in. Without it, one is
   * made per invocation from `mailStore` and settings.mail (docs/odmr.md); without either (and
   * without a relay) ATRN targets end `config-error`.
   */
  readonly receiver?: MailReceiver;
  /** Where ATRN mail is stored: S3 (DEQUEUE_MAIL_BUCKET, DEQUEUE_MAIL_PREFIX). */
  readonly mailStore?: MailSink;
  /** The in-flight mail memory of a run, shared by the store and every session (from the function's memory). */
  readonly mailMemory?: MemoryBudget;
  /** Where a cycle too large for one run sends its targets: SQS (DEQUEUE_WORK_QUEUE_URL, docs/fan-out.md). */
  readonly workQueue?: WorkQueue;
  /**
   * Added to the error of a relay connection to port 25 that timed out: AWS blocks outbound 25
   * from functions outside a VPC (port25Hint). Undefined outside Lambda.
   */
  readonly port25Hint?: string;
  readonly observability: Observability;
  /**
   * Each target's status after each cycle (DynamoDB: `status#<target>` beside the counter), and
   * the thresholds of the FailingTargets and StaleTargets metrics counted from it. Absent: no
   * status is kept and the two metrics are not published.
   */
  readonly status?: StatusStore;
  readonly health?: HealthThresholds;
  /** Time kept back from getRemainingTimeInMillis() for reporting. Default 5 s. */
  readonly safetyMarginMs?: number;
  readonly now?: () => number;
  /** Extra trusted CA (PEM) for provider certificates (tests). */
  readonly tlsCa?: string;
  /** Host resolution for dry runs (tests); default: the system resolver. */
  readonly resolveHost?: (host: string) => Promise<void>;
}

/** The part of the Lambda context the handler uses. */
export type InvocationContext = Pick<Context, 'getRemainingTimeInMillis'> & Partial<Context>;

export type DequeueHandler = (event: unknown, context?: InvocationContext) => Promise<CycleResult>;

/** Listeners the run's abort signal may have at once before Node warns (calls in flight). */
const SIGNAL_LISTENERS = 1_000;

/** How long reporting waits for the last counted cycle when nothing could run (within the margin). */
const REPORT_PEEK_MS = 1_500;

/** The function's memory when AWS_LAMBDA_FUNCTION_MEMORY_SIZE is absent (a local run): the stack's default. */
const DEFAULT_FUNCTION_MEMORY_MB = 256;

/** SDK clients bounded in time: a hung connection must not eat the invocation's deadline. */
export const AWS_CLIENT_OPTIONS = {
  maxAttempts: 4,
  requestHandler: { connectionTimeout: 3_000, requestTimeout: 10_000 },
};

/**
 * Client settings merged into every SDK client: tests and scripts/invoke-local.ts give an endpoint
 * (moto_server), a region and dummy credentials here; in Lambda it stays empty and the SDK takes
 * them from the runtime (AWS_REGION, the execution role).
 */
export interface AwsClientSettings {
  readonly endpoint?: string;
  readonly region?: string;
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string };
}

/** The real adapters, from the environment contract (lambda/environment.ts). */
export function depsFromEnvironment(
  env: NodeJS.ProcessEnv,
  aws: AwsClientSettings = {},
): HandlerDeps {
  const settings = readEnvironment(env);
  const options = { ...AWS_CLIENT_OPTIONS, ...aws };
  const mailMemory = new MemoryBudget(
    lambdaMailMemory(Number(env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE) || DEFAULT_FUNCTION_MEMORY_MB),
  );
  const dynamodb = new DynamoDBClient(options);
  return {
    config: new SsmConfigSource(new SSMClient(options), {
      prefix: settings.ssmPrefix,
      secretPrefix: settings.secretPrefix,
    }),
    credentials: new SecretsManagerCredentials(new SecretsManagerClient(options), {
      allowedPrefix: settings.secretPrefix,
    }),
    counter: new DynamoDbCycleCounter(dynamodb, { tableName: settings.counterTable }),
    status: new DynamoDbStatusStore(dynamodb, { tableName: settings.counterTable }),
    health: {
      failingAfterCycles: settings.failingAfterCycles,
      staleAfterHours: settings.staleAfterHours,
    },
    mailStore: settings.mailBucket
      ? lazyS3MailSink(options, settings.mailBucket, settings.mailPrefix, mailMemory)
      : undefined,
    mailMemory,
    workQueue: settings.workQueueUrl ? lazyWorkQueue(options, settings.workQueueUrl) : undefined,
    port25Hint: port25Hint(settings.inVpc),
    observability: createObservability(env),
  };
}

/**
 * Where the SQS work queue module is: like the mail store, a second file beside the bundle
 * (lib/bundling.ts, WORK_QUEUE_FILE), loaded only by a cycle that fans out; workers never need it
 * (the event source mapping receives and deletes their messages).
 */
export const WORK_QUEUE_MODULE = import.meta.url.endsWith('.mjs')
  ? './sqs-work-queue.mjs'
  : './adapters/sqs-work-queue.ts';

/** The SQS work queue, loaded with the first cycle that fans out. */
function lazyWorkQueue(options: object, queueUrl: string): WorkQueue {
  let queue: Promise<WorkQueue> | undefined;
  const load = async (): Promise<WorkQueue> => {
    const { openSqsWorkQueue } = (await import(
      /* @vite-ignore */ WORK_QUEUE_MODULE
    )) as typeof import('./adapters/sqs-work-queue');
    return openSqsWorkQueue(options, queueUrl);
  };
  return {
    async send(orders, signal) {
      queue ??= load().catch((e: unknown) => {
        queue = undefined;
        throw e;
      });
      return (await queue).send(orders, signal);
    },
  };
}

/**
 * What to say when a relay connection to port 25 times out in Lambda: outside a VPC, AWS drops
 * outbound TCP 25 silently, so a timeout is all the function sees (docs/odmr.md, docs/deploy.md).
 * In a VPC (DEQUEUE_IN_VPC=true, set by the stack) nothing: the timeout is the relay's own.
 */
export function port25Hint(inVpc: boolean | undefined): string | undefined {
  if (inVpc === true) return undefined;
  const blocked =
    'AWS blocks outbound TCP port 25 from Lambda functions outside a VPC; deploy with static egress (a VPC behind a NAT gateway with an Elastic IP, and the port-25 limit lifted) or give the relay another port such as 587';
  return inVpc === false
    ? `this function is not in a VPC: ${blocked}`
    : `if this function is not in a VPC: ${blocked}`;
}

/**
 * Where the S3 mail store module is. In Lambda it is a second file beside the bundle
 * (lib/bundling.ts, MAIL_STORE_FILE): the S3 client with lib-storage is ~230 KiB that would
 * otherwise be compiled at every cold start (~17 ms, bench/cold-start.ts), while most cycles only
 * signal ETRN and never store mail. Run from source (tests, scripts), it is the TypeScript file.
 * The specifier is computed so that esbuild leaves the import alone.
 */
export const MAIL_STORE_MODULE = import.meta.url.endsWith('.mjs')
  ? './s3-mail-store.mjs'
  : './adapters/s3-mail-store.ts';

/** The S3 mail store, loaded when the first message after an ATRN arrives. */
function lazyS3MailSink(
  options: object,
  bucket: string,
  prefix: string | undefined,
  memory: MemoryBudget,
): MailSink {
  let sink: Promise<MailSink> | undefined;
  const load = async (): Promise<MailSink> => {
    const { openS3MailStore } = (await import(
      /* @vite-ignore */ MAIL_STORE_MODULE
    )) as typeof import('./adapters/s3-mail-store');
    return openS3MailStore(options, bucket, prefix, memory);
  };
  return {
    async begin(envelope) {
      sink ??= load().catch((e: unknown) => {
        sink = undefined; // a failed load is retried with the next message
        throw e;
      });
      return (await sink).begin(envelope);
    },
  };
}

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
      // Targets handed to the workers are counted by the workers, from the statuses they write.
      const queued = new Set(result.queued ?? []);
      await countHealth([
        ...config.invalid.map((t) => t.name),
        ...watched.filter((name) => !queued.has(name)),
      ]);
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

let wired: { cycle: DequeueHandler; worker: WorkQueueHandler } | undefined;

/**
 * The function's entry point (NodejsFunction `handler: 'handler'`): a batch from the work queue's
 * event source mapping goes to the worker (docs/fan-out.md), anything else is a cycle.
 */
export async function handler(event: WorkQueueEvent, context: Context): Promise<SQSBatchResponse>;
export async function handler(event: unknown, context: Context): Promise<CycleResult>;
export async function handler(
  event: unknown,
  context: Context,
): Promise<CycleResult | SQSBatchResponse> {
  if (!wired) {
    const deps = depsFromEnvironment(process.env);
    wired = { cycle: createHandler(deps), worker: createWorker(deps) };
  }
  return isWorkQueueEvent(event) ? wired.worker(event, context) : wired.cycle(event, context);
}
