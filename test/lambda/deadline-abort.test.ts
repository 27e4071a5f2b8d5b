/**
 * An AWS endpoint that accepts the connection and never answers (a hung service, a black-holed
 * VPC endpoint) must not make the function outlive its deadline: every SDK call of a run (the SSM
 * listing, the per-target claims, the secrets) stops at the run's deadline, retries included, and
 * the results are logged. Without the abort signal each call waits the SDK's own bounds, 10 s x 4
 * attempts, and Lambda kills the invocation first with nothing logged: these tests then run into
 * their 20 s limit.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SSMClient } from '@aws-sdk/client-ssm';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it, describe } from 'vitest';
import { DynamoDbCycleCounter } from '../../lambda/adapters/dynamodb-counter';
import { SecretsManagerCredentials } from '../../lambda/adapters/secrets-manager-credentials';
import { SsmConfigSource } from '../../lambda/adapters/ssm-config';
import { parseSettings, parseTarget } from '../../lambda/core/config';
import type { ConfigSource, CycleCounter } from '../../lambda/core/ports';
import { AWS_CLIENT_OPTIONS } from '../../lambda/deployed-adapters';
import { createHandler, type HandlerDeps } from '../../lambda/handler';
import { createObservability } from '../../lambda/observability';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { CapturedOutput, contextWith } from './aws-world';

/** Accepts every connection, reads what is sent, never answers. Counts the requests begun. */
class BlackHole {
  private server!: Server;
  private readonly sockets = new Set<Socket>();
  requests = 0;
  endpoint = '';

  async start(): Promise<this> {
    this.server = createServer((socket) => {
      this.sockets.add(socket);
      socket.on('data', (chunk) => {
        this.requests += (chunk.toString('latin1').match(/^POST /gm) ?? []).length;
      });
      socket.on('error', () => undefined);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const address = this.server.address() as { port: number };
    this.endpoint = `http://127.0.0.1:${address.port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const aws = () => ({
  ...AWS_CLIENT_OPTIONS,
  endpoint: hole.endpoint,
  region: 'us-east-1',
  credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
});

let hole: BlackHole;
let provider: ScriptedProvider;
let output: CapturedOutput;

beforeAll(async () => {
  provider = await new ScriptedProvider({
    extensions: ['ETRN', 'AUTH PLAIN'],
    account: { username: 'u', password: 'p' },
  }).start();
});
afterAll(() => provider.stop());
beforeEach(async () => {
  hole = await new BlackHole().start();
  output = new CapturedOutput();
});
afterEach(async () => {
  output.restore();
  await hole.stop();
});

const memoryCounter = (): CycleCounter => {
  let cycle = 0;
  return { peek: async () => cycle, count: async () => ({ cycle: ++cycle, counted: true }) };
};
const configOf = (target: Record<string, unknown>): ConfigSource => ({
  load: async () => ({
    settings: parseSettings({}, 'test'),
    targets: [parseTarget(target, 'test')],
    invalid: [],
  }),
});
const deps = (over: Partial<HandlerDeps>): HandlerDeps => ({
  config: configOf({
    name: 'plain',
    host: '127.0.0.1',
    port: provider.port,
    tls: 'none',
    timeoutSeconds: 1,
    command: 'ETRN plain.example',
  }),
  credentials: { get: async () => ({ username: 'u', password: 'p' }) },
  counter: memoryCounter(),
  observability: createObservability({}),
  // 3 s left in the invocation, 1 s kept back: the run's deadline is 2 s away (targets wait 1 s
  // per reply, so they fit and are started).
  safetyMarginMs: 1_000,
  ...over,
});

describe("SDK calls end at the run's deadline, and the results are logged", () => {
  it('a hung SSM listing: every target known reports the deadline, and the request was not retried', {
    timeout: 20_000,
  }, async () => {
    const handler = createHandler(deps({ config: new SsmConfigSource(new SSMClient(aws())) }));
    const result = await handler({}, contextWith(3_000));
    expect(result.results).toHaveLength(1);
    expect(result.results[0]).toMatchObject({
      outcome: 'temporary-failure',
      error: expect.stringContaining("abandoned at the run's deadline"),
    });
    expect(output.targetLines).toHaveLength(1);
    // The settings read and the first listing page, each sent once.
    expect(hole.requests).toBeLessThanOrEqual(2);
  });

  it('a hung claim: the target reports the deadline and nothing is sent to its provider', {
    timeout: 20_000,
  }, async () => {
    const before = provider.connections.length;
    const claims = new DynamoDbCycleCounter(new DynamoDBClient(aws()), {
      tableName: 'dequeue-counter',
    });
    const counter = memoryCounter();
    const handler = createHandler(
      deps({
        counter: {
          ...counter,
          claim: (cycle, target, signal) => claims.claim(cycle, target, signal),
        },
      }),
    );
    const result = await handler({}, contextWith(3_000));
    expect(result.results[0]).toMatchObject({
      target: 'plain',
      outcome: 'temporary-failure',
      error: expect.stringContaining("abandoned at the run's deadline"),
    });
    expect(output.targetLines.map((l) => l.target)).toEqual(['plain']);
    expect(provider.connections.length).toBe(before);
    expect(hole.requests).toBe(1);
  });

  it('a hung secret read: the target reports the deadline', { timeout: 20_000 }, async () => {
    const handler = createHandler(
      deps({
        config: configOf({
          name: 'authed',
          host: '127.0.0.1',
          port: provider.port,
          tls: 'none',
          allowPlaintextAuth: true,
          auth: { secretId: 'dequeue/authed' },
          timeoutSeconds: 1,
          command: 'ETRN authed.example',
        }),
        credentials: new SecretsManagerCredentials(new SecretsManagerClient(aws())),
      }),
    );
    const result = await handler({}, contextWith(3_000));
    expect(result.results[0]).toMatchObject({
      target: 'authed',
      outcome: 'temporary-failure',
      error: expect.stringContaining("abandoned at the run's deadline"),
    });
    expect(output.targetLines.map((l) => l.target)).toEqual(['authed']);
    expect(hole.requests).toBe(1);
  });
});
