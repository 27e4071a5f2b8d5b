/**
 * The exported entry point as Lambda calls it: adapters built from process.env on the first call
 * (the environment contract the stack sets), reused while warm. The SDK finds moto_server through
 * AWS_ENDPOINT_URL, exactly as scripts/invoke-local.ts does.
 */
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { describeWithMotoServer, startMotoServer, type MotoServer } from '../servers/moto-server';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { AwsWorld, CapturedOutput, contextWith, ENV, scheduledEvent } from './aws-world';

describeWithMotoServer('the exported handler, configured by the environment alone', () => {
  let moto: MotoServer;
  let provider: ScriptedProvider;

  beforeAll(async () => {
    moto = await startMotoServer();
    provider = await new ScriptedProvider().start();
  });
  afterAll(async () => {
    vi.unstubAllEnvs();
    await provider?.stop();
    await moto?.stop();
  });

  it('reads nothing at import time, wires itself on the first call and reuses the wiring', async () => {
    vi.resetModules();
    const { handler } = await import('../../lambda/handler');
    // Imported with no configuration at all: nothing happened yet. Now the stack's environment:
    for (const [key, value] of Object.entries({
      ...ENV,
      AWS_ENDPOINT_URL: moto.endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
    })) {
      vi.stubEnv(key, value);
    }
    const world = new AwsWorld(moto);
    await world.reset();
    await world.putTarget('a', {
      name: 'a',
      host: '127.0.0.1',
      port: provider.port,
      tls: 'none',
      command: 'ETRN a.example',
    });

    const output = new CapturedOutput();
    try {
      const first = await handler(scheduledEvent('2026-03-01T10:00:00Z'), contextWith() as never);
      // The environment changing under a warm instance changes nothing: the wiring is built once.
      vi.stubEnv('DEQUEUE_COUNTER_TABLE', 'no-such-table');
      const second = await handler(scheduledEvent('2026-03-01T10:05:00Z'), contextWith() as never);
      expect([first.cycle, second.cycle]).toEqual([1, 2]);
      expect(second.results).toMatchObject([{ target: 'a', outcome: 'signalled', cycle: 2 }]);
    } finally {
      output.restore();
    }
    expect(await world.counter()).toBe(2);
    expect(output.targetLines.map((l) => l.service)).toEqual(['dequeue', 'dequeue']);
  });

  it('without DEQUEUE_COUNTER_TABLE the first call fails with a plain message', async () => {
    vi.resetModules();
    vi.stubEnv('DEQUEUE_COUNTER_TABLE', '');
    const { handler } = await import('../../lambda/handler');
    await expect(handler({}, contextWith() as never)).rejects.toThrow(
      'environment: DEQUEUE_COUNTER_TABLE: must name the DynamoDB table of the cycle counter',
    );
  });
});
