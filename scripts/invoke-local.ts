/**
 * Invoke the Lambda handler on this machine against moto_server (or any endpoint that speaks the
 * AWS APIs), with a sample event, exactly as Lambda would: the exported `handler`, configured by
 * the environment contract alone.
 *
 *   moto_server -H 127.0.0.1 -p 5000 &
 *   export AWS_ENDPOINT_URL=http://127.0.0.1:5000
 *   npx tsx scripts/invoke-local.ts --seed-config events/local/config.json \
 *       --seed-secrets events/local/secrets.json events/scheduled.json
 *   npx tsx scripts/invoke-local.ts events/scheduled-retry.json    # same slot: not counted again
 *
 * --seed-config FILE    put a configuration document (the CLI's shape) into SSM as
 *                       <prefix>/settings and <prefix>/targets/<name> (SecureString with --secure)
 * --seed-secrets FILE   put {"<secretId>": {"username", "password"}} into Secrets Manager
 * --timeout SECONDS     the invocation's time limit as the context reports it (default 60)
 *
 * The counter table (DEQUEUE_COUNTER_TABLE, default dequeue-counter) is created when missing.
 * Refuses to run without AWS_ENDPOINT_URL, so that it never touches a real account by accident.
 *
 * stdout carries the handler's result alone (pipe it to jq); the function's log lines and metrics,
 * which Lambda would send to CloudWatch, go to stderr with this script's own notes. Errors are one
 * line: exit 2 for a usage error, 1 when the endpoint cannot be reached or the invocation failed.
 */
import { counterTableDefinition } from '../lambda/counter-table';
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  CreateSecretCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseJsonText } from '../lambda/core/config';
import {
  DEFAULT_MAIL_PREFIX,
  DEFAULT_SECRET_PREFIX,
  DEFAULT_SSM_PREFIX,
} from '../lambda/default-prefixes';

const USAGE =
  'usage: AWS_ENDPOINT_URL=http://127.0.0.1:5000 npx tsx scripts/invoke-local.ts [--seed-config FILE [--secure]] [--seed-secrets FILE] [--timeout SECONDS] EVENT_FILE';

function fail(message: string): never {
  process.stderr.write(`invoke-local: ${message}\n${USAGE}\n`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      'seed-config': { type: 'string' },
      'seed-secrets': { type: 'string' },
      secure: { type: 'boolean', default: false },
      timeout: { type: 'string', default: '60' },
      help: { type: 'boolean', default: false },
    },
  });
} catch (e) {
  fail((e as Error).message.split('. To specify')[0]!);
}
const { values, positionals } = parsed;
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
if (positionals.length !== 1) fail('give exactly one event file (see events/)');
if (!process.env.AWS_ENDPOINT_URL)
  fail(
    'AWS_ENDPOINT_URL is not set: point it at moto_server (this script never talks to real AWS)',
  );

// The stack's environment, with local defaults; dummy credentials are all moto needs.
const defaults = {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'testing',
  AWS_SECRET_ACCESS_KEY: 'testing',
  DEQUEUE_SSM_PREFIX: DEFAULT_SSM_PREFIX,
  DEQUEUE_SECRET_PREFIX: DEFAULT_SECRET_PREFIX,
  DEQUEUE_COUNTER_TABLE: 'dequeue-counter',
  DEQUEUE_MAIL_PREFIX: DEFAULT_MAIL_PREFIX,
  POWERTOOLS_SERVICE_NAME: 'dequeue',
  POWERTOOLS_METRICS_NAMESPACE: 'Dequeue',
  // As Lambda sets it for an ordinary instance: Powertools reports cold_start only then.
  AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
} satisfies Record<string, string>;
for (const [key, value] of Object.entries(defaults)) process.env[key] ??= value;
// Every key of the defaults is set from here on.
const env = process.env as NodeJS.ProcessEnv & typeof defaults;

const readJson = (file: string): unknown => {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return fail(
      `${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  try {
    return parseJsonText(text, file); // line:column, never the text (it may be a secrets file)
  } catch (e) {
    return fail((e as Error).message);
  }
};

/** One line for an AWS call that failed: what, where, and what to do. */
function unreachable(e: unknown): string {
  const error = e as {
    name?: string;
    code?: string;
    message?: string;
    errors?: { code?: string }[];
  };
  const code = error.code ?? error.errors?.[0]?.code ?? error.name;
  if (
    code === 'ECONNREFUSED' ||
    code === 'ECONNRESET' ||
    code === 'ENOTFOUND' ||
    code === 'TimeoutError' ||
    code === 'AggregateError'
  ) {
    return `cannot reach ${process.env.AWS_ENDPOINT_URL} (${code}): is moto_server running? Start it with: moto_server -H 127.0.0.1 -p 5000`;
  }
  return `${process.env.AWS_ENDPOINT_URL}: ${error.name ?? 'error'}: ${error.message ?? String(e)}`;
}

async function ensureTable(): Promise<void> {
  const dynamodb = new DynamoDBClient({});
  try {
    await dynamodb.send(new DescribeTableCommand({ TableName: env.DEQUEUE_COUNTER_TABLE }));
  } catch {
    // As the stack creates it (TTL on expiresAt is not needed locally).
    await dynamodb.send(new CreateTableCommand(counterTableDefinition(env.DEQUEUE_COUNTER_TABLE!)));
    process.stderr.write(`invoke-local: created table ${env.DEQUEUE_COUNTER_TABLE}\n`);
  }
}

async function seedConfig(file: string): Promise<void> {
  const doc = readJson(file) as { settings?: unknown; targets?: { name?: string }[] };
  const ssm = new SSMClient({});
  const prefix = env.DEQUEUE_SSM_PREFIX.replace(/\/+$/, '');
  const type = values.secure ? 'SecureString' : 'String';
  if (doc.settings !== undefined) {
    await ssm.send(
      new PutParameterCommand({
        Name: `${prefix}/settings`,
        Value: JSON.stringify(doc.settings),
        Type: type,
        Overwrite: true,
      }),
    );
  }
  for (const target of doc.targets ?? []) {
    await ssm.send(
      new PutParameterCommand({
        Name: `${prefix}/targets/${target.name}`,
        Value: JSON.stringify(target),
        Type: type,
        Overwrite: true,
      }),
    );
  }
  process.stderr.write(
    `invoke-local: ${doc.targets?.length ?? 0} targets under ${prefix}/targets (${type})\n`,
  );
}

async function seedSecrets(file: string): Promise<void> {
  const secrets = readJson(file) as Record<string, unknown>;
  const client = new SecretsManagerClient({});
  for (const [id, value] of Object.entries(secrets)) {
    const text = JSON.stringify(value);
    try {
      await client.send(new CreateSecretCommand({ Name: id, SecretString: text }));
    } catch (e) {
      if ((e as { name?: string }).name !== 'ResourceExistsException') throw e;
      await client.send(new PutSecretValueCommand({ SecretId: id, SecretString: text }));
    }
  }
  process.stderr.write(
    `invoke-local: ${Object.keys(secrets).length} secrets stored (values not shown)\n`,
  );
}

const event = readJson(positionals[0]!);
const timeoutMs = Number(values.timeout) * 1000;
if (!(timeoutMs > 0)) fail(`--timeout ${values.timeout}: must be a number of seconds`);
try {
  await ensureTable();
  if (values['seed-config']) await seedConfig(values['seed-config']);
  if (values['seed-secrets']) await seedSecrets(values['seed-secrets']);
} catch (e) {
  process.stderr.write(`invoke-local: ${unreachable(e)}\n`);
  process.exit(1);
}
const end = Date.now() + timeoutMs;
const context = {
  functionName: 'dequeue-local',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:dequeue-local',
  memoryLimitInMB: '256',
  awsRequestId: `local-${Date.now()}`,
  logGroupName: '/aws/lambda/dequeue-local',
  logStreamName: 'local',
  callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => Math.max(0, end - Date.now()),
  done: () => undefined,
  fail: () => undefined,
  succeed: () => undefined,
};

// The function's own output (Powertools log lines, EMF metrics: CloudWatch's in Lambda) goes to
// stderr, so that stdout carries the result alone.
const writeResult = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr) as typeof process.stdout.write;

// Imported only now: the handler reads its environment on the first call, never at import.
const { handler } = await import('../lambda/handler');
try {
  const result = await handler(event, context);
  writeResult(`${JSON.stringify(result, null, 2)}\n`);
} catch (e) {
  process.stderr.write(
    `invoke-local: the invocation failed: ${(e as Error).message.split('\n')[0]}\n`,
  );
  process.exitCode = 1;
}
