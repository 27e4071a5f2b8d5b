/**
 * One invocation of a deployed function's bundle in a fresh process of the runtime's node, with
 * the environment Lambda gives it: the function's own variables from the template, then the
 * runtime's reserved ones (region, credentials, function name, memory, log group, handler, task
 * root), which the function's variables cannot override, and node started with the runtime's
 * flags (lambdaNodeFlags). The only addition is AWS_ENDPOINT_URL, which sends every SDK client to
 * the test's endpoint instead of AWS. Its peak memory is reported as Lambda's REPORT line does.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { LambdaNode } from './lambda-node';

const RUNNER = fileURLToPath(new URL('./lambda-runner.mjs', import.meta.url));
/** Captured output of the function, for failure messages: the tail is what matters. */
const OUTPUT_CAP = 256 * 1024;
/** A run here takes about a second; the function's own timeout (minutes) is too long to wait for in a test. */
const WALL_CLOCK_BOUND_MS = 60_000;

/** What the runner needs of a function: the template's properties, as test/deploy/cloud-assembly.ts reads them. */
export interface DeployedFunction {
  /** Directory of the bundle (the asset Lambda unzips into /var/task). */
  readonly assetDir: string;
  readonly handler: string;
  readonly runtime: string;
  readonly timeoutSeconds: number;
  readonly memoryMiB: number;
  /** LoggingConfig as in the template. */
  readonly logging: Record<string, unknown>;
}

export interface LambdaIdentity {
  readonly functionName: string;
  readonly functionArn: string;
  readonly logGroupName: string;
  readonly region: string;
  readonly credentials: {
    readonly accessKeyId: string;
    readonly secretAccessKey: string;
    readonly sessionToken: string;
  };
}

export interface Invocation {
  readonly outcome: {
    /** What the handler returned, as JSON. */
    readonly result?: unknown;
    readonly error?: { readonly errorType: string; readonly errorMessage: string };
  };
  /** The process's peak resident set (Lambda's REPORT "Max Memory Used"); null when the runner gave none. */
  readonly maxMemoryUsedMiB: number | null;
  readonly exitCode: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The environment of the function's process, as Lambda composes it. */
export function lambdaEnvironment(
  fn: DeployedFunction,
  variables: Record<string, string>,
  id: LambdaIdentity,
  endpoint: string,
): Record<string, string> {
  const logFormat: Record<string, string> =
    fn.logging.LogFormat === 'JSON'
      ? {
          AWS_LAMBDA_LOG_FORMAT: 'JSON',
          AWS_LAMBDA_LOG_LEVEL: String(fn.logging.ApplicationLogLevel ?? 'INFO'),
        }
      : {};
  return {
    ...variables,
    PATH: '/usr/local/bin:/usr/bin/:/bin:/opt/bin',
    LANG: 'en_US.UTF-8',
    TZ: ':UTC',
    _HANDLER: fn.handler,
    LAMBDA_TASK_ROOT: fn.assetDir,
    LAMBDA_RUNTIME_DIR: '/var/runtime',
    AWS_EXECUTION_ENV: `AWS_Lambda_${fn.runtime}`,
    AWS_REGION: id.region,
    AWS_DEFAULT_REGION: id.region,
    AWS_ACCESS_KEY_ID: id.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: id.credentials.secretAccessKey,
    AWS_SESSION_TOKEN: id.credentials.sessionToken,
    AWS_LAMBDA_FUNCTION_NAME: id.functionName,
    AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(fn.memoryMiB),
    AWS_LAMBDA_LOG_GROUP_NAME: id.logGroupName,
    AWS_LAMBDA_LOG_STREAM_NAME: '2026/01/01/[$LATEST]00000000000000000000000000000000',
    AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
    ...logFormat,
    AWS_ENDPOINT_URL: endpoint,
  };
}

/**
 * The flags the Node.js runtime's bootstrap script starts node with (/var/runtime/bootstrap in
 * Lambda's base images): the young generation a tenth of the function's memory (half of it per
 * semi-space), the old generation the rest, so that V8 collects before the sandbox's limit.
 */
export function lambdaNodeFlags(memoryMiB: number): string[] {
  const newSpace = Math.floor(memoryMiB / 10);
  return [
    '--expose-gc',
    '--max-http-header-size=81920',
    `--max-semi-space-size=${Math.floor(newSpace / 2)}`,
    `--max-old-space-size=${memoryMiB - newSpace}`,
  ];
}

export async function invokeBundle(
  node: LambdaNode,
  fn: DeployedFunction,
  env: Record<string, string>,
  functionArn: string,
  event: unknown,
  options: { readonly wallClockMs?: number } = {},
): Promise<Invocation> {
  const args = [
    ...lambdaNodeFlags(fn.memoryMiB),
    RUNNER,
    '--task-root',
    fn.assetDir,
    '--handler',
    fn.handler,
    '--timeout',
    String(fn.timeoutSeconds),
    '--function-arn',
    functionArn,
    '--event',
    JSON.stringify(event),
  ];
  const child = spawn(node.path, args, {
    cwd: fn.assetDir,
    env,
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
  });
  const capture = (stream: NodeJS.ReadableStream, cap: number) => {
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      text = (text + chunk).slice(-cap);
    });
    return () => text;
  };
  const stdout = capture(child.stdout!, OUTPUT_CAP);
  const stderr = capture(child.stderr!, OUTPUT_CAP);
  const outcome = capture(child.stdio[3] as NodeJS.ReadableStream, 16 * 1024 * 1024);
  const timer = setTimeout(() => child.kill('SIGKILL'), options.wallClockMs ?? WALL_CLOCK_BOUND_MS);
  const exitCode = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  }).finally(() => clearTimeout(timer));
  const line = outcome().trim();
  let parsed: Invocation['outcome'];
  let maxMemoryUsedMiB: number | null = null;
  try {
    const { report, ...rest } = JSON.parse(line) as Invocation['outcome'] & {
      report?: { maxMemoryUsedMiB?: number };
    };
    parsed = rest;
    maxMemoryUsedMiB = report?.maxMemoryUsedMiB ?? null;
  } catch {
    parsed = {
      error: {
        errorType: 'Runner',
        errorMessage: `no outcome from the runner (exit ${exitCode}); stderr ends: ${stderr().slice(-1500)}`,
      },
    };
  }
  return { outcome: parsed, maxMemoryUsedMiB, exitCode, stdout: stdout(), stderr: stderr() };
}
