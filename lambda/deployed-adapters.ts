/**
 * The function's real adapters, built from its environment contract (lambda/environment.ts) the
 * first time the entry point runs: SSM for the configuration, Secrets Manager, DynamoDB for the
 * counter and statuses, and the two modules loaded only when needed (the S3 mail store with the
 * first message after ATRN, the SQS work queue with the first cycle that fans out). Tests and
 * scripts/invoke-local.ts give an endpoint here (moto_server) instead of AWS.
 */
import { dnsMxResolver } from './adapters/dns-mx-resolver';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDbCycleCounter } from './adapters/dynamodb-counter';
import { DynamoDbTargetLeases } from './adapters/dynamodb-target-leases';
import { DynamoDbStatusStore } from './adapters/dynamodb-status';
import { SecretsManagerCredentials } from './adapters/secrets-manager-credentials';
import { SsmConfigSource } from './adapters/ssm-config';
import { LAMBDA_MIN_MAIL_MB, lambdaMailMemory, MemoryBudget } from './core/memory-budget';
import { DequeueError } from './core/errors';
import type { MailSink, WorkQueue } from './core/ports';
import { readEnvironment } from './environment';
import type { HandlerDeps } from './handler-deps';
import { createObservability } from './observability';

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
  const functionMb = Number(env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE) || DEFAULT_FUNCTION_MEMORY_MB;
  const mailMemory = new MemoryBudget(lambdaMailMemory(functionMb));
  const dynamodb = new DynamoDBClient(options);
  return {
    config: new SsmConfigSource(new SSMClient(options), {
      prefix: settings.ssmPrefix,
      secretPrefix: settings.secretPrefix,
      reachablePorts: settings.egressPorts,
    }),
    credentials: new SecretsManagerCredentials(new SecretsManagerClient(options), {
      allowedPrefix: settings.secretPrefix,
    }),
    counter: new DynamoDbCycleCounter(dynamodb, { tableName: settings.counterTable }),
    leases: new DynamoDbTargetLeases(dynamodb, { tableName: settings.counterTable }),
    status: new DynamoDbStatusStore(dynamodb, { tableName: settings.counterTable }),
    health: {
      failingAfterCycles: settings.failingAfterCycles,
      staleAfterHours: settings.staleAfterHours,
      serverDownAfterCycles: settings.serverDownAfterCycles,
    },
    mailStore: settings.mailBucket
      ? refusedBelowMailMemory(
          lazyS3MailSink(options, settings.mailBucket, settings.mailPrefix, mailMemory),
          functionMb,
        )
      : undefined,
    mailMemory,
    workQueue: settings.workQueueUrl ? lazyWorkQueue(options, settings.workQueueUrl) : undefined,
    port25Hint: port25Hint(settings.inVpc),
    resolveMx: dnsMxResolver(),
    observability: createObservability(env),
  };
}

/**
 * Where the SQS work queue module is: like the mail store, a second file beside the bundle
 * (lib/bundling.ts, WORK_QUEUE_FILE), loaded only by a cycle that fans out or a worker that hands
 * orders back (the event source mapping receives and deletes the rest of their messages).
 */
export const WORK_QUEUE_MODULE = import.meta.url.endsWith('.mjs')
  ? './sqs-work-queue.mjs'
  : './adapters/sqs-work-queue.ts';

/** The SQS work queue, loaded with the first cycle that fans out or the first hand-back. */
function lazyWorkQueue(options: object, queueUrl: string): WorkQueue {
  let queue: Promise<Required<WorkQueue>> | undefined;
  const load = async (): Promise<Required<WorkQueue>> => {
    const { openSqsWorkQueue } = (await import(
      /* @vite-ignore */ WORK_QUEUE_MODULE
    )) as typeof import('./adapters/sqs-work-queue');
    return openSqsWorkQueue(options, queueUrl);
  };
  const loaded = () =>
    (queue ??= load().catch((e: unknown) => {
      queue = undefined;
      throw e;
    }));
  return {
    async send(orders, signal) {
      return (await loaded()).send(orders, signal);
    },
    async handBack(orders, seconds, signal) {
      return (await loaded()).handBack(orders, seconds, signal);
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

/**
 * The store of a function too small to hold ATRN mail (LAMBDA_MIN_MAIL_MB): every message is
 * refused at MAIL with 452 4.3.1, as a store short of space refuses it (RFC 3463), so the provider
 * keeps it and the target's result says how to fix it. Taking it would risk the invocation, every
 * other target of the batch with it, and every later cycle, since the same mail is held for them.
 */
export function refusedBelowMailMemory(sink: MailSink, functionMb: number): MailSink {
  if (functionMb >= LAMBDA_MIN_MAIL_MB) return sink;
  const error = new DequeueError(
    'temporary',
    `the function has ${functionMb} MB of memory, less than the ${LAMBDA_MIN_MAIL_MB} MB that ATRN mail needs (a large message could reach the function's memory, where Lambda ends the invocation): new mail is refused with 452 4.3.1 and stays with the provider; give the function more memory (memoryMiB)`,
  );
  return {
    begin: (envelope) => sink.begin(envelope),
    admit: async () => ({
      code: 452,
      text: '4.3.1 Insufficient system storage',
      closing: true,
      error,
    }),
  };
}
