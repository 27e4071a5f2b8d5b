/**
 * A function too small to hold ATRN mail (LAMBDA_MIN_MAIL_MB) refuses it at MAIL instead of
 * taking it and reaching its memory, where Lambda would end the invocation (and every later cycle,
 * the same mail being held for them): the provider keeps every message and the result says how
 * to fix it. At the floor and above, mail is stored as always.
 */
import { describe, expect, it } from 'vitest';
import { createMailDirSink } from '../../cli/adapters/mail-dir-sink';
import { LAMBDA_MIN_MAIL_MB, lambdaMailMemory } from '../../lambda/core/memory-budget';
import { createMailReceiver } from '../../lambda/core/odmr/reversed-session';
import { releaseSignal } from '../../lambda/core/signal/session';
import { refusedBelowMailMemory } from '../../lambda/deployed-adapters';
import { AtrnProvider } from '../../peers/atrn-provider';
import {
  atrnTarget,
  credentials,
  heldMessage,
  readMailDir,
  tempDir,
} from '../core/odmr/odmr-fixtures';

async function pull(functionMb: number) {
  const provider = await new AtrnProvider({ queue: [heldMessage(0), heldMessage(1)] }).start();
  const dir = await tempDir('dequeue-mail-floor-');
  try {
    const sink = refusedBelowMailMemory(createMailDirSink(dir.path), functionMb);
    const report = await releaseSignal(
      atrnTarget(provider.port),
      {},
      { credentials, helloName: 'mx.customer.test', receiver: createMailReceiver(sink) },
    );
    await provider.idle();
    return { provider, report, stored: await readMailDir(dir.path) };
  } finally {
    await provider.stop();
    await dir.remove();
  }
}

describe("ATRN mail and the function's memory", () => {
  it('the floor is what the runtime and the smallest budget need within three quarters of it', () => {
    expect(LAMBDA_MIN_MAIL_MB).toBe(183);
    // The budget is only clamped to its minimum below the floor.
    expect(lambdaMailMemory(LAMBDA_MIN_MAIL_MB)).toBeGreaterThanOrEqual(16 * 1024 * 1024);
    expect(lambdaMailMemory(LAMBDA_MIN_MAIL_MB - 1)).toBe(16 * 1024 * 1024);
  });

  it('a 128 MB function: 452 4.3.1 at MAIL, the provider keeps everything, the result names memoryMiB', async () => {
    const run = await pull(128);
    expect(run.provider.customerReplies).toContain('452 4.3.1 Insufficient system storage');
    expect(run.provider.waiting).toEqual([0, 1]);
    expect(run.stored.stored).toEqual([]);
    expect(run.report.outcome).toBe('temporary-failure');
    expect(run.report.error?.message).toMatch(
      /the function has 128 MB of memory, less than the 183 MB that ATRN mail needs .*give the function more memory \(memoryMiB\)/,
    );
  });

  it('at the floor the mail is stored as always', async () => {
    const run = await pull(LAMBDA_MIN_MAIL_MB);
    expect(run.provider.waiting).toEqual([]);
    expect(run.stored.stored).toHaveLength(2);
    expect(run.report.outcome).toBe('signalled');
  });
});
