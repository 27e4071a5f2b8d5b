/**
 * What `cdk deploy` would ship, set up as CloudFormation would in moto_server, for
 * deployed-bundle.test.ts: `cdk synth` with the repo's cdk.json, the function the schedule invokes
 * (bundle directory, handler, runtime, timeout, memory, environment, role, all from the template
 * and the asset manifest), the resources its environment and event source mappings name, the
 * runtime's node, and a recording proxy in front of moto_server through which every AWS call of
 * the bundle goes. `invoke` runs one invocation of the bundle as Lambda runs it.
 */
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { LAMBDA_NODE_MAJOR } from '../../lib/bundling';
import { type Invocation, invokeBundle, lambdaEnvironment } from '../../peers/lambda-invocation';
import { type LambdaNode, lambdaNode, nodeMajorOfRuntime } from '../../peers/lambda-node';
import { MOTO_REGION, type MotoServer, startMotoServer } from '../servers/moto-server';
import { cachedSynthesis } from './assembly-cache';
import { type AwsCall, decodeCall } from './aws-calls';
import { bucketKeys } from './bucket-keys';
import { CfnResolver } from './cfn-resolve';
import {
  type CloudAssembly,
  type QueueEventSource,
  queueEventSources,
  type ScheduledInvocation,
  scheduledInvocations,
} from './cloud-assembly';
import type { Policy } from './iam-policy';
import { createReferencedResources, referencedResources } from './moto-resources';
import { deleteMessages, pollerCall, receiveBatch, sqsEvent } from './queue-poller';
import { type RecordingProxy, startRecordingProxy } from './recording-proxy';
import { rolePolicies } from './role-policies';

/** moto's default account. */
export const ACCOUNT_ID = '123456789012';
const CREDENTIALS = {
  accessKeyId: 'ASIATESTING',
  secretAccessKey: 'testing',
  sessionToken: 'testing-session',
};

export interface Deployment {
  readonly assembly: CloudAssembly;
  readonly moto: MotoServer;
  readonly proxy: RecordingProxy;
  readonly scheduled: ScheduledInvocation;
  readonly node: LambdaNode;
  readonly resolver: CfnResolver;
  /** The function's environment variables, resolved. */
  readonly environment: Record<string, string>;
  readonly policies: readonly Policy[];
  readonly notEvaluated: readonly string[];
  readonly roleArn: string;
  readonly functionArn: string;
  /** The function's log group, which Lambda writes with the function's role. */
  readonly logGroupArn: string;
  /** The on-failure destination of the function's asynchronous invocations (resolved), if any. */
  readonly failureDestination?: string;
  /** What was created in moto from the template, for the log. */
  readonly created: readonly string[];
  /** The SQS queues that feed the function through an event source mapping. */
  readonly sources: readonly QueueEventSource[];
  /** Client settings that go through the recording proxy. */
  readonly aws: {
    readonly endpoint: string;
    readonly region: string;
    readonly credentials: typeof CREDENTIALS;
  };
  /**
   * One invocation of the bundle in a fresh process, every AWS call through the proxy (or, with
   * `direct`, straight to moto_server: not recorded, for invocations too large to keep copies of).
   */
  invoke(
    event: unknown,
    options?: { readonly direct?: boolean; readonly environment?: Record<string, string> },
  ): Promise<Invocation>;
  /**
   * One batch from a work queue handed to the function as the event source mapping does: up to
   * its batch size received, the SQS event built from them, the function invoked, and the
   * messages it did not report as failed deleted. Null when the queue is empty.
   */
  deliverBatch(
    source: QueueEventSource,
    options?: { readonly direct?: boolean },
  ): Promise<WorkerBatch | null>;
  /** The calls the proxy saw since the last call of this, decoded. */
  recorded(): AwsCall[];
  /** The operator's part: `<prefix>/settings` in SSM. */
  putSettings(settings: object): Promise<void>;
  /** `<prefix>/targets/<name>` in SSM. */
  putTarget(
    target: { readonly name: string; readonly [field: string]: unknown },
    type?: 'String' | 'SecureString',
  ): Promise<void>;
  /** A secret in Secrets Manager under the function's secret prefix; returns its id. */
  putSecret(name: string, value: object): Promise<string>;
  stop(): Promise<void>;
}

export interface WorkerBatch {
  readonly event: unknown;
  readonly invocation: Invocation;
  /** The message ids the function reported as failed (all of them when the invocation failed). */
  readonly failed: readonly string[];
  /** The calls the mapping itself makes with the function's role. */
  readonly poller: AwsCall;
}

/**
 * Synthesise and set up; `timed` notes where the time went (printed by the test, never asserted).
 * Whatever was started is stopped again when a step fails.
 */
export async function deploy(
  timed: <T>(what: string, work: Promise<T>) => Promise<T>,
): Promise<Deployment> {
  let assembly: CloudAssembly | undefined;
  let moto: MotoServer | undefined;
  let proxy: RecordingProxy | undefined;
  const stop = async () => {
    await proxy?.stop();
    await moto?.stop();
    assembly?.dispose();
  };
  try {
    // The node download (first run only) overlaps the synth; the template's runtime decides below.
    const guessed = timed(`node ${LAMBDA_NODE_MAJOR}`, lambdaNode(LAMBDA_NODE_MAJOR)).then(
      (n) => ({ n }),
      (error: unknown) => ({ error }),
    );
    // Both settle before anything fails, so that whichever started is stopped.
    const started = await Promise.allSettled([
      // Read back when an earlier run synthesised the very same sources (assembly-cache.ts).
      timed('cdk synth (or the assembly kept for these sources)', cachedSynthesis()).then(
        (a) => (assembly = a),
      ),
      timed('moto_server start', startMotoServer()).then((m) => (moto = m)),
    ]);
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    if (!assembly || !moto) throw new Error('unreachable: synth and moto_server both settled');
    const found = scheduledInvocations(assembly.stacks);
    if (found.length !== 1)
      throw new Error(
        `expected one Lambda function invoked by a schedule in the assembly, found ${found.length}`,
      );
    const scheduled = found[0]!;
    const fn = scheduled.function;
    const major = nodeMajorOfRuntime(fn.runtime);
    const guess = await guessed;
    const node = major === LAMBDA_NODE_MAJOR && 'n' in guess ? guess.n : await lambdaNode(major);

    proxy = await startRecordingProxy({ host: '127.0.0.1', port: moto.port });
    const aws = { endpoint: proxy.endpoint, region: MOTO_REGION, credentials: CREDENTIALS };
    const resolver = new CfnResolver(fn.stack.template, {
      partition: 'aws',
      region: MOTO_REGION,
      accountId: ACCOUNT_ID,
      stackName: fn.stack.name,
      urlSuffix: 'amazonaws.com',
    });

    // What CloudFormation would have created for the function's environment (and the queues that
    // feed it through an event source mapping), then the variables.
    const sources = queueEventSources(fn);
    const needed = new Set([
      ...referencedResources(fn.environment, fn.stack.template),
      ...sources.map((q) => q.queueId),
    ]);
    const created = await createReferencedResources(fn.stack.template, [...needed], resolver, aws);
    const environment = Object.fromEntries(
      Object.entries(fn.environment).map(([k, v]) => [k, resolver.string(v)]),
    );
    const { policies, notEvaluated } = rolePolicies(fn.stack.template, fn.roleId, resolver);
    const roleArn = resolver.physicalOf(fn.roleId).attributes.Arn!;
    const functionName = resolver.physicalOf(fn.logicalId).ref;
    const functionArn = resolver.physicalOf(fn.logicalId).attributes.Arn!;
    const logGroup =
      fn.logging.LogGroup === undefined
        ? `/aws/lambda/${functionName}`
        : resolver.string(fn.logging.LogGroup);
    const invokeConfig = Object.values(fn.stack.template.Resources).find(
      (r) =>
        r.Type === 'AWS::Lambda::EventInvokeConfig' &&
        JSON.stringify(r.Properties?.FunctionName) === JSON.stringify({ Ref: fn.logicalId }),
    );
    const onFailure = (invokeConfig?.Properties?.DestinationConfig as any)?.OnFailure?.Destination;
    const identity = {
      functionName,
      functionArn,
      logGroupName: logGroup,
      region: MOTO_REGION,
      credentials: CREDENTIALS,
    };

    const bucketKeyOf = bucketKeys(fn.stack.template, resolver);
    /** The partition key of a table the template created, for dynamodb:LeadingKeys. */
    const hashKey = (table: string): string | undefined => {
      for (const [id, r] of Object.entries(fn.stack.template.Resources)) {
        if (r.Type !== 'AWS::DynamoDB::Table' || resolver.physicalOf(id).ref !== table) continue;
        return (
          (r.Properties?.KeySchema ?? []) as { AttributeName: string; KeyType: string }[]
        ).find((k) => k.KeyType === 'HASH')?.AttributeName;
      }
      return undefined;
    };
    const through = proxy;
    const direct = moto;
    const invoke: Deployment['invoke'] = (event, options = {}) =>
      invokeBundle(
        node,
        fn,
        lambdaEnvironment(
          fn,
          { ...environment, ...options.environment },
          identity,
          options.direct ? direct.endpoint : through.endpoint,
        ),
        functionArn,
        event,
      );
    const prefix = environment.DEQUEUE_SSM_PREFIX!;
    const putParameter = async (Name: string, value: object, Type: 'String' | 'SecureString') => {
      const ssm = new SSMClient(aws);
      try {
        await ssm.send(
          new PutParameterCommand({ Name, Type, Overwrite: true, Value: JSON.stringify(value) }),
        );
      } finally {
        ssm.destroy();
      }
    };
    return {
      assembly,
      moto,
      proxy,
      scheduled,
      node,
      resolver,
      environment,
      policies,
      notEvaluated,
      roleArn,
      functionArn,
      logGroupArn: `arn:aws:logs:${MOTO_REGION}:${ACCOUNT_ID}:log-group:${logGroup}:*`,
      failureDestination: onFailure === undefined ? undefined : resolver.string(onFailure),
      created,
      sources,
      aws,
      invoke,
      deliverBatch: async (source, options = {}) => {
        const queueUrl = resolver.physicalOf(source.queueId).ref;
        const queueArn = resolver.physicalOf(source.queueId).attributes.Arn!;
        const messages = await receiveBatch(direct.clientConfig, queueUrl, source.batchSize);
        if (!messages.length) return null;
        const event = sqsEvent(messages, queueArn, MOTO_REGION);
        const invocation = await invoke(event, options);
        const answer = invocation.outcome.result as
          | { batchItemFailures?: { itemIdentifier: string }[] }
          | undefined;
        const failed = invocation.outcome.error
          ? messages.map((m) => m.MessageId)
          : source.reportsBatchItemFailures
            ? (answer?.batchItemFailures ?? []).map((f) => f.itemIdentifier)
            : [];
        await deleteMessages(
          direct.clientConfig,
          queueUrl,
          messages.filter((m) => !failed.includes(m.MessageId)),
        );
        return { event, invocation, failed, poller: pollerCall(queueArn, MOTO_REGION) };
      },
      recorded: () => {
        const calls = through.exchanges.map((x) =>
          decodeCall(x, {
            partition: 'aws',
            accountId: ACCOUNT_ID,
            hashKeyOf: hashKey,
            bucketKeyOf,
          }),
        );
        through.clear();
        return calls;
      },
      putSettings: (settings) => putParameter(`${prefix}/settings`, settings, 'String'),
      putTarget: (target, type = 'String') =>
        putParameter(`${prefix}/targets/${target.name}`, target, type),
      putSecret: async (name, value) => {
        const secrets = new SecretsManagerClient(aws);
        const id = `${environment.DEQUEUE_SECRET_PREFIX}${name}`;
        try {
          await secrets.send(
            new CreateSecretCommand({ Name: id, SecretString: JSON.stringify(value) }),
          );
        } finally {
          secrets.destroy();
        }
        return id;
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
