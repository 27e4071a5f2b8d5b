/**
 * The runner the deployed-bundle test relies on, against small handler modules: what it hands the
 * handler (event, context, environment, working directory) and how it reports an outcome, the way
 * the Lambda Node.js runtime does. Runs on the system's node: the runner is plain JavaScript.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeployedFunction } from './cloud-assembly';
import { invokeBundle, lambdaEnvironment } from '../../peers/lambda-invocation';

const node = { path: process.execPath, version: process.version, origin: 'the system node' };
let taskRoot: string;

beforeAll(() => {
  taskRoot = mkdtempSync(join(tmpdir(), 'dequeue-runner-'));
  writeFileSync(
    join(taskRoot, 'index.mjs'),
    `console.log('a log line on stdout');
     export const handler = async (event, context) => ({
       event,
       cwd: process.cwd(),
       remaining: context.getRemainingTimeInMillis(),
       functionName: context.functionName,
       invokedFunctionArn: context.invokedFunctionArn,
       memoryLimitInMB: context.memoryLimitInMB,
       awsRequestId: context.awsRequestId,
       env: { table: process.env.TABLE, region: process.env.AWS_REGION, handler: process.env._HANDLER, endpoint: process.env.AWS_ENDPOINT_URL },
     });
     export const failing = async () => { throw Object.assign(new Error('the counter table is gone'), { name: 'ResourceNotFoundException' }); };
     export const nested = { inner: async () => 'nested' };
     export const heavy = async () => {
       const held = Buffer.alloc(64 * 1024 * 1024, 1);
       return { held: held.length, gc: typeof globalThis.gc, heapLimit: (await import('node:v8')).getHeapStatistics().heap_size_limit };
     };`,
  );
});
afterAll(() => rmSync(taskRoot, { recursive: true, force: true }));

function fn(handler: string): DeployedFunction {
  return {
    assetDir: taskRoot,
    handler,
    runtime: 'nodejs24.x',
    timeoutSeconds: 30,
    memoryMiB: 256,
    environment: {},
    logging: {},
    roleId: 'Role',
    logicalId: 'Fn',
  } as unknown as DeployedFunction;
}
const identity = {
  functionName: 'Dequeue-Function-ABC',
  functionArn: 'arn:aws:lambda:us-east-1:123456789012:function:Dequeue-Function-ABC',
  logGroupName: '/aws/lambda/Dequeue-Function-ABC',
  region: 'us-east-1',
  credentials: { accessKeyId: 'ASIA', secretAccessKey: 's', sessionToken: 't' },
};
const invoke = (handler: string, event: unknown = { source: 'test' }) =>
  invokeBundle(
    node,
    fn(handler),
    lambdaEnvironment(
      fn(handler),
      { TABLE: 'counter', AWS_REGION: 'overridden?' },
      identity,
      'http://127.0.0.1:9',
    ),
    identity.functionArn,
    event,
  );

describe('the Lambda runner', () => {
  it("imports <module>.mjs from the task root and hands the handler the event, a context and Lambda's environment", async () => {
    const run = await invoke('index.handler', { source: 'schedule', n: 1 });
    expect(run.exitCode).toBe(0);
    const result = run.outcome.result as any;
    expect(result).toMatchObject({
      event: { source: 'schedule', n: 1 },
      cwd: taskRoot,
      functionName: identity.functionName,
      invokedFunctionArn: identity.functionArn,
      memoryLimitInMB: '256',
      // The runtime's reserved variables win over the function's own.
      env: {
        table: 'counter',
        region: 'us-east-1',
        handler: 'index.handler',
        endpoint: 'http://127.0.0.1:9',
      },
    });
    expect(result.remaining).toBeGreaterThan(0);
    expect(result.remaining).toBeLessThanOrEqual(30_000);
    expect(result.awsRequestId).toMatch(/^[0-9a-f-]{36}$/);
    // The function's own output stays apart from the outcome.
    expect(run.stdout).toContain('a log line on stdout');
    expect(run.stdout).not.toContain('"result"');
  });

  it('reports a thrown error as Lambda does, with its type and message, and exits 1', async () => {
    const run = await invoke('index.failing');
    expect(run.exitCode).toBe(1);
    expect(run.outcome).toEqual({
      error: { errorType: 'ResourceNotFoundException', errorMessage: 'the counter table is gone' },
    });
  });

  it("reports the process's peak memory, and starts node with the runtime's memory flags", async () => {
    const light = await invoke('index.handler');
    const heavy = await invoke('index.heavy');
    const result = heavy.outcome.result as { heapLimit: number };
    expect(result).toMatchObject({ held: 64 * 1024 * 1024, gc: 'function' });
    // A 256 MiB function: old space 231 MiB, semi-spaces of 12 (V8 adds the young generation on top).
    expect(result.heapLimit / 2 ** 20).toBeGreaterThanOrEqual(231);
    expect(result.heapLimit / 2 ** 20).toBeLessThan(300);
    expect(light.maxMemoryUsedMiB).toBeGreaterThan(10);
    expect(heavy.maxMemoryUsedMiB! - light.maxMemoryUsedMiB!).toBeGreaterThan(60);
  });

  it('finds a nested export, and names a missing handler or module', async () => {
    expect((await invoke('index.nested.inner')).outcome).toEqual({ result: 'nested' });
    expect((await invoke('index.absent')).outcome.error?.errorType).toBe('Runtime.HandlerNotFound');
    expect((await invoke('other.handler')).outcome.error).toMatchObject({
      errorType: 'Runtime.ImportModuleError',
      errorMessage: expect.stringContaining("'other'"),
    });
  });
});
