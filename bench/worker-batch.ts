/**
 * One fan-out worker invocation of the Lambda bundle, for the memory benchmark
 * (bench/odmr-memory.ts): the handler built exactly as the stack builds it (lib/bundling.ts: the
 * handler and its side modules, same esbuild options), run on the runtime's Node major with the
 * runtime's flags and environment (peers/lambda-invocation.ts), against moto_server, with an SQS
 * event carrying one work order per ATRN target, as the event source mapping delivers a batch.
 * The deployed bundle itself (`cdk synth`) is run the same way by test/deploy/deployed-bundle.test.ts.
 */
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { LAMBDA_NODE_MAJOR, lambdaEsbuildOptions, SIDE_MODULES } from '../lib/bundling';
import { parseSettings, parseTarget } from '../lambda/core/config';
import { encodeWorkOrder, workOrderFor } from '../lambda/core/fan-out';
import { ACCOUNT } from '../peers/atrn-provider';
import { invokeBundle, lambdaEnvironment, type Invocation } from '../peers/lambda-invocation';
import { lambdaNode, type LambdaNode } from '../peers/lambda-node';
import type { MotoServer } from '../peers/servers/moto-server';

const ROOT = join(import.meta.dirname, '..');
const SECRET_ID = 'dequeue/atrn';

/** Build lambda/handler.ts and its side modules into `dir` as the stack does; returns `dir`. */
export async function buildLambdaBundle(dir: string): Promise<string> {
  const { build } = await import('esbuild');
  mkdirSync(dir, { recursive: true });
  const options = { ...lambdaEsbuildOptions, logLevel: 'error' as const };
  await build({
    ...options,
    entryPoints: [join(ROOT, 'lambda', 'handler.ts')],
    outfile: join(dir, 'index.mjs'),
  });
  for (const side of SIDE_MODULES)
    await build({
      ...options,
      entryPoints: [join(ROOT, side.entry)],
      outfile: join(dir, side.file),
    });
  return dir;
}

export interface WorkerBatchResult {
  readonly invocation: Invocation;
  readonly ms: number;
  readonly node: LambdaNode;
}

/** The resources the worker's environment names, created once in a moto_server. */
export async function createWorkerResources(
  moto: MotoServer,
  names: { readonly table: string; readonly bucket: string },
): Promise<void> {
  const dynamodb = new DynamoDBClient(moto.clientConfig);
  const s3 = new S3Client({ ...moto.clientConfig, forcePathStyle: true });
  const secrets = new SecretsManagerClient(moto.clientConfig);
  try {
    await dynamodb.send(
      new CreateTableCommand({
        TableName: names.table,
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    await s3.send(new CreateBucketCommand({ Bucket: names.bucket }));
    await secrets
      .send(new CreateSecretCommand({ Name: SECRET_ID, SecretString: JSON.stringify(ACCOUNT) }))
      .catch((e: Error) => {
        if (e.name !== 'ResourceExistsException') throw e;
      });
  } finally {
    dynamodb.destroy();
    s3.destroy();
    secrets.destroy();
  }
}

/**
 * One worker invocation of the bundle in `bundleDir`: a batch of one ATRN work order per provider
 * port, the mail stored into `bucket`. `cycle` must be new for the table (claims are per cycle).
 */
export async function runWorkerBatch(spec: {
  readonly bundleDir: string;
  readonly moto: MotoServer;
  readonly table: string;
  readonly bucket: string;
  readonly ports: readonly number[];
  readonly cycle: number;
  readonly memoryMiB: number;
  readonly settings?: object;
  /** Fields every target gets on top of the plain ATRN one (e.g. `tls`). */
  readonly target?: object;
  readonly timeoutSeconds?: number;
}): Promise<WorkerBatchResult> {
  const node = await lambdaNode(LAMBDA_NODE_MAJOR);
  const settings = parseSettings(spec.settings ?? { helloName: 'mx.bench.test' }, 'bench');
  const now = Date.now();
  const event = {
    Records: spec.ports.map((port, i) => {
      const target = parseTarget(
        {
          name: `worker-${i}`,
          host: '127.0.0.1',
          port,
          tls: 'none',
          auth: { secretId: SECRET_ID },
          command: 'ATRN',
          ...spec.target,
        },
        'bench',
      );
      const order = workOrderFor(target, { cycle: spec.cycle, claim: true, settings, now });
      return {
        messageId: randomUUID(),
        receiptHandle: randomUUID(),
        body: encodeWorkOrder(order),
        attributes: {},
        messageAttributes: {},
        md5OfBody: '',
        eventSource: 'aws:sqs',
        eventSourceARN: 'arn:aws:sqs:us-east-1:123456789012:bench-work',
        awsRegion: 'us-east-1',
      };
    }),
  };
  const fn = {
    assetDir: spec.bundleDir,
    handler: 'index.handler',
    runtime: `nodejs${LAMBDA_NODE_MAJOR}.x`,
    timeoutSeconds: spec.timeoutSeconds ?? 300,
    memoryMiB: spec.memoryMiB,
    logging: {},
  };
  const functionArn = 'arn:aws:lambda:us-east-1:123456789012:function:bench';
  const env = lambdaEnvironment(
    fn,
    {
      NODE_OPTIONS: '--enable-source-maps',
      DEQUEUE_COUNTER_TABLE: spec.table,
      DEQUEUE_MAIL_BUCKET: spec.bucket,
      DEQUEUE_SECRET_PREFIX: 'dequeue/',
    },
    {
      functionName: 'bench',
      functionArn,
      logGroupName: '/aws/lambda/bench',
      region: spec.moto.clientConfig.region,
      credentials: { accessKeyId: 'bench', secretAccessKey: 'bench', sessionToken: 'bench' },
    },
    spec.moto.endpoint,
  );
  const started = performance.now();
  const invocation = await invokeBundle({ ...node }, fn, env, functionArn, event, {
    wallClockMs: (fn.timeoutSeconds + 30) * 1000,
  });
  return { invocation, ms: performance.now() - started, node };
}
