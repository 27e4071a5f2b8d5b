/**
 * The AWS side of the Lambda's world, on moto_server: the counter table, the SSM parameters and
 * the secrets the stack and its operator would create, plus the handler wired to them exactly as
 * in Lambda (depsFromEnvironment), with moto's endpoint in place of AWS.
 */
import { counterTableDefinition } from '../../lambda/counter-table';
import { CreateTableCommand, DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { vi, type MockInstance } from 'vitest';
import { depsFromEnvironment } from '../../lambda/deployed-adapters';
import {
  createHandler,
  type DequeueHandler,
  type HandlerDeps,
  type InvocationContext,
} from '../../lambda/handler';
import type { MotoServer } from '../servers/moto-server';

export const TABLE = 'dequeue-counter';
export const SCHEDULE_ARN =
  'arn:aws:scheduler:us-east-1:123456789012:schedule/default/dequeue-every-5-minutes';

/** The environment the stack sets. */
export const ENV = {
  DEQUEUE_SSM_PREFIX: '/dequeue',
  DEQUEUE_SECRET_PREFIX: 'dequeue/',
  DEQUEUE_COUNTER_TABLE: TABLE,
  DEQUEUE_MAIL_PREFIX: 'mail/',
  POWERTOOLS_SERVICE_NAME: 'dequeue',
  POWERTOOLS_METRICS_NAMESPACE: 'Dequeue',
};

export class AwsWorld {
  readonly ssm: SSMClient;
  readonly secrets: SecretsManagerClient;
  readonly dynamodb: DynamoDBClient;

  constructor(readonly moto: MotoServer) {
    this.ssm = new SSMClient(moto.clientConfig);
    this.secrets = new SecretsManagerClient(moto.clientConfig);
    this.dynamodb = new DynamoDBClient(moto.clientConfig);
  }

  /** A clean account: no parameters, no secrets, an empty counter table as the stack makes it. */
  async reset(): Promise<void> {
    await this.moto.reset();
    await this.dynamodb.send(new CreateTableCommand(counterTableDefinition(TABLE)));
  }

  async putSettings(settings: unknown): Promise<void> {
    await this.putParameter('/dequeue/settings', JSON.stringify(settings));
  }

  /** One target parameter; `document` as an object (serialised) or raw text (for broken JSON). */
  async putTarget(
    name: string,
    document: unknown,
    type: 'String' | 'SecureString' = 'String',
  ): Promise<void> {
    await this.putParameter(
      `/dequeue/targets/${name}`,
      typeof document === 'string' ? document : JSON.stringify(document),
      type,
    );
  }

  async putParameter(
    name: string,
    value: string,
    type: 'String' | 'SecureString' = 'String',
  ): Promise<void> {
    await this.ssm.send(
      new PutParameterCommand({ Name: name, Value: value, Type: type, Overwrite: true }),
    );
  }

  async putSecret(id: string, value: unknown): Promise<void> {
    await this.secrets.send(
      new CreateSecretCommand({
        Name: id,
        SecretString: typeof value === 'string' ? value : JSON.stringify(value),
      }),
    );
  }

  /** The counter as stored: the last counted cycle, 0 before the first. */
  async counter(): Promise<number> {
    const out = await this.dynamodb.send(
      new GetItemCommand({ TableName: TABLE, Key: { pk: { S: 'counter' } }, ConsistentRead: true }),
    );
    return Number(out.Item?.cycle?.N ?? 0);
  }

  /** The adapters the Lambda builds from its environment, pointed at moto. */
  deps(overrides: Partial<HandlerDeps> = {}): HandlerDeps {
    return { ...depsFromEnvironment(ENV, this.moto.clientConfig), ...overrides };
  }

  handler(overrides: Partial<HandlerDeps> = {}): DequeueHandler {
    return createHandler(this.deps(overrides));
  }
}

let executions = 0;

/** A scheduled event as EventBridge Scheduler sends it; each delivery has its own execution id. */
export function scheduledEvent(scheduledTime: string, attemptNumber = 1): Record<string, unknown> {
  executions += 1;
  return {
    source: 'schedule',
    scheduleArn: SCHEDULE_ARN,
    scheduledTime,
    executionId: `c0ffee00-0000-4000-8000-${String(executions).padStart(12, '0')}`,
    attemptNumber: String(attemptNumber),
  };
}

/** A Lambda context with `ms` left. */
export function contextWith(ms = 60_000): InvocationContext {
  const end = Date.now() + ms;
  return {
    getRemainingTimeInMillis: () => end - Date.now(),
    awsRequestId: 'req-test',
    functionName: 'dequeue',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:dequeue',
  };
}

/**
 * Everything the function writes (Powertools logs: info to stdout, warn and error to stderr; EMF
 * to stdout; Lambda sends both to CloudWatch Logs), one parsed JSON per line.
 */
export class CapturedOutput {
  private readonly spies: MockInstance<typeof process.stdout.write>[];
  readonly raw: string[] = [];

  constructor() {
    this.spies = [process.stdout, process.stderr].map((stream) =>
      vi.spyOn(stream, 'write').mockImplementation((chunk: unknown) => {
        this.raw.push(String(chunk));
        return true;
      }),
    );
  }

  get records(): Record<string, unknown>[] {
    return this.raw
      .join('')
      .split('\n')
      .filter((l) => l.trim().startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  get targetLines(): Record<string, unknown>[] {
    return this.records.filter((r) => r.message === 'target result');
  }

  get emf(): Record<string, unknown>[] {
    return this.records.filter((r) => r._aws !== undefined);
  }

  restore(): void {
    for (const spy of this.spies) spy.mockRestore();
  }
}
