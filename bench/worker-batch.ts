/**
 * One fan-out worker invocation of the Lambda bundle, for the memory benchmark
 * (bench/odmr-memory.ts): the handler built exactly as the stack builds it (lib/bundling.ts: the
 * handler and its side modules, same esbuild options), run on the runtime's Node major with the
 * runtime's flags and environment (peers/lambda-invocation.ts), against moto_server, with an SQS
 * event carrying one work order per ATRN target, as the event source mapping delivers a batch.
 * As in the stack, an order only names its target: the targets and the settings are put in SSM
 * first, and the cycle counter is advanced to the order's cycle (a worker refuses an order for a
 * cycle the counter has not reached, or for a target the configuration does not hold).
 * The deployed bundle itself (`cdk synth`) is run the same way by test/deploy/deployed-bundle.test.ts.
 */
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { LAMBDA_NODE_MAJOR, lambdaEsbuildOptions, SIDE_MODULES } from '../lib/bundling';
import { parseSettings, parseTarget } from '../lambda/core/config';
import { encodeWorkOrder, workOrderFor } from '../lambda/core/fan-out';
import { DynamoDbCycleCounter } from '../lambda/adapters/dynamodb-counter';
import { counterTableDefinition } from '../lambda/counter-table';
import { ACCOUNT } from '../peers/atrn-provider';
import { invokeBundle, lambdaEnvironment, type Invocation } from '../peers/lambda-invocation';
import { lambdaNode, type LambdaNode } from '../peers/lambda-node';
import type { MotoServer } from '../peers/servers/moto-server';

const ROOT = join(import.meta.dirname, '..');
const SECRET_ID = 'dequeue/atrn';
/** Where the bench's configuration lives in SSM (DEQUEUE_SSM_PREFIX). */
const SSM_PREFIX = '/dequeue-bench';

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
    await dynamodb.send(new CreateTableCommand(counterTableDefinition(names.table)));
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
 * port, the mail stored into `bucket`. Each call counts a new cycle in `table` (claims are per
 * cycle) and puts the targets (`worker-<i>`) and the settings in SSM first.
 */
export async function runWorkerBatch(spec: {
  readonly bundleDir: string;
  readonly moto: MotoServer;
  readonly table: string;
  readonly bucket: string;
  readonly ports: readonly number[];
  readonly memoryMiB: number;
  readonly settings?: object;
  /** Fields every target gets on top of the plain ATRN one (e.g. `tls`). */
  readonly target?: object;
  readonly timeoutSeconds?: number;
}): Promise<WorkerBatchResult> {
  const node = await lambdaNode(LAMBDA_NODE_MAJOR);
  const settingsJson = spec.settings ?? { helloName: 'mx.bench.test' };
  const settings = parseSettings(settingsJson, 'bench');
  const targets = spec.ports.map((port, i) => ({
    name: `worker-${i}`,
    host: '127.0.0.1',
    port,
    tls: 'none',
    auth: { secretId: SECRET_ID },
    command: 'ATRN',
    mail: { domains: ['customer.test'] },
    ...spec.target,
  }));
  const parameter = (name: string) => `${SSM_PREFIX}/targets/${name}`;
  const ssm = new SSMClient(spec.moto.clientConfig);
  const dynamodb = new DynamoDBClient(spec.moto.clientConfig);
  let cycle: number;
  try {
    const parameters: [string, object][] = [[`${SSM_PREFIX}/settings`, settingsJson]];
    for (const t of targets) {
      parseTarget(t, 'bench'); // a bad target is said here, not as a refused order
      parameters.push([parameter(t.name), t]);
    }
    for (const [Name, value] of parameters)
      await ssm.send(
        new PutParameterCommand({
          Name,
          Type: 'String',
          Overwrite: true,
          Value: JSON.stringify(value),
        }),
      );
    ({ cycle } = await new DynamoDbCycleCounter(dynamodb, { tableName: spec.table }).count());
  } finally {
    ssm.destroy();
    dynamodb.destroy();
  }
  const now = Date.now();
  const event = {
    Records: targets.map((target) => {
      const order = workOrderFor(target, {
        cycle,
        claim: true,
        settings,
        now,
        parameter: parameter(target.name),
      });
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
      DEQUEUE_SSM_PREFIX: SSM_PREFIX,
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
