#!/usr/bin/env node
/**
 * Runs a Lambda function's bundle the way the Node.js runtime does, for one invocation:
 *
 *   node lambda-runner.mjs --task-root DIR --handler index.handler --timeout 300 --event '{"...":1}' \
 *       [--function-arn ARN]
 *
 * - the handler string is `<module>.<export>`: the module is found in the task root as
 *   `<module>.js`, `.mjs` or `.cjs` (the runtime's order) and loaded with `import()`, once, before
 *   the invocation (init), from the task root as working directory;
 * - the context has what the runtime's has: getRemainingTimeInMillis (counting down from the
 *   function's timeout), functionName, functionVersion, invokedFunctionArn, memoryLimitInMB,
 *   awsRequestId, logGroupName, logStreamName, callbackWaitsForEmptyEventLoop; the names come
 *   from the AWS_LAMBDA_* variables the caller sets, as Lambda sets them;
 * - the handler's promise is awaited, then the process ends (Lambda freezes it: timers left
 *   behind do not delay the response).
 *
 * What the function writes goes to stdout and stderr as usual; the outcome is one JSON line,
 * `{"result": ...}` or `{"error": {"errorType", "errorMessage"}}` as Lambda reports it, with
 * `"report": {"maxMemoryUsedMiB": N}` beside it (what Lambda's REPORT line calls Max Memory Used:
 * this process's peak resident set, VmHWM, on Linux), written to file descriptor 3 when the
 * caller opened it (tests do), otherwise as the last line of stdout.
 * Exit code 0 when the invocation returned, 1 when it failed, 2 for a bad command line.
 *
 * The runtime starts node with flags of its own; peers/lambda-invocation.ts gives the same.
 *
 * Plain JavaScript on purpose: it must run on the runtime's node as it is, without tsx.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, fstatSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

function usage(message) {
  process.stderr.write(
    `lambda-runner: ${message}\nusage: node lambda-runner.mjs --task-root DIR --handler MODULE.EXPORT --timeout SECONDS --event JSON [--function-arn ARN]\n`,
  );
  process.exit(2);
}

let options;
try {
  ({ values: options } = parseArgs({
    options: {
      'task-root': { type: 'string' },
      handler: { type: 'string' },
      timeout: { type: 'string', default: '3' },
      event: { type: 'string' },
      'function-arn': { type: 'string' },
    },
  }));
} catch (e) {
  usage(e.message);
}
const taskRoot = options['task-root'];
if (!taskRoot || !options.handler || options.event === undefined)
  usage('--task-root, --handler and --event are required');
const timeoutMs = Number(options.timeout) * 1000;
if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
  usage(`--timeout ${options.timeout}: must be a positive number of seconds`);
let event;
try {
  event = JSON.parse(options.event);
} catch (e) {
  usage(`--event is not JSON: ${e.message}`);
}

/** This process's peak resident set in MiB (VmHWM); the runtime's own figure where /proc is missing. */
function maxMemoryUsedMiB() {
  try {
    const kb = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (kb) return Math.round((Number(kb) / 1024) * 10) / 10;
  } catch {
    // not Linux
  }
  return Math.round((process.resourceUsage().maxRSS / 1024) * 10) / 10;
}

/** fd 3 when the caller opened it, so that the outcome never mixes with the function's output. */
function report(outcome) {
  const line = `${JSON.stringify({ ...outcome, report: { maxMemoryUsedMiB: maxMemoryUsedMiB() } })}\n`;
  let fd = 1;
  try {
    fstatSync(3);
    fd = 3;
  } catch {
    // not opened: stdout
  }
  writeSync(fd, line);
}

function lambdaError(e) {
  return { error: { errorType: e?.name ?? typeof e, errorMessage: e?.message ?? String(e) } };
}

// `index.handler` -> module `index`, export `handler`; `src/app.main` -> `src/app`, `main`.
const slash = options.handler.lastIndexOf('/');
const base = options.handler.slice(slash + 1);
const dot = base.indexOf('.');
if (dot <= 0 || dot === base.length - 1)
  usage(`--handler ${options.handler}: expected MODULE.EXPORT`);
const modulePath = options.handler.slice(0, slash + 1) + base.slice(0, dot);
const exportPath = base.slice(dot + 1).split('.');

process.chdir(taskRoot);
const file = ['.js', '.mjs', '.cjs']
  .map((ext) => join(taskRoot, modulePath + ext))
  .find((f) => existsSync(f));
if (!file) {
  report({
    error: {
      errorType: 'Runtime.ImportModuleError',
      errorMessage: `Cannot find module '${modulePath}' in ${taskRoot}`,
    },
  });
  process.exit(1);
}

let fn;
try {
  const mod = await import(pathToFileURL(file).href);
  fn = exportPath.reduce((value, key) => value?.[key], mod);
} catch (e) {
  report({
    error: { errorType: 'Runtime.ImportModuleError', errorMessage: e?.message ?? String(e) },
  });
  process.exit(1);
}
if (typeof fn !== 'function') {
  report({
    error: {
      errorType: 'Runtime.HandlerNotFound',
      errorMessage: `${options.handler} is undefined or not exported`,
    },
  });
  process.exit(1);
}

const env = process.env;
const functionName = env.AWS_LAMBDA_FUNCTION_NAME ?? 'function';
const region = env.AWS_REGION ?? 'us-east-1';
const startedAt = Date.now();
const context = {
  functionName,
  functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION ?? '$LATEST',
  invokedFunctionArn:
    options['function-arn'] ?? `arn:aws:lambda:${region}:123456789012:function:${functionName}`,
  memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE ?? '128',
  awsRequestId: randomUUID(),
  logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME ?? `/aws/lambda/${functionName}`,
  logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME ?? 'runner',
  callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => Math.max(0, startedAt + timeoutMs - Date.now()),
};

let outcome;
try {
  const timeout = new Promise((_, reject) => {
    setTimeout(
      () =>
        reject(
          Object.assign(new Error(`Task timed out after ${options.timeout} seconds`), {
            name: 'Sandbox.Timedout',
          }),
        ),
      timeoutMs,
    ).unref();
  });
  outcome = { result: await Promise.race([Promise.resolve(fn(event, context)), timeout]) };
} catch (e) {
  outcome = lambdaError(e);
}
report(outcome);
process.exit(outcome.error ? 1 : 0);
