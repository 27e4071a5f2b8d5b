/**
 * The run's in-flight mail memory: what is taken is bounded by the budget, waits are served in
 * turn, a need larger than the budget is still served (alone), and a provider stream stops reading
 * its socket when the budget is spent and goes on when memory is given back.
 */
import { describe, expect, it, afterEach } from 'vitest';
import { DeadlineTimer } from '../../lambda/core/deadline-timer';
import { lambdaMailMemory, MemoryBudget, MiB } from '../../lambda/core/memory-budget';
import { INBOX_FLOOR, ProviderStream } from '../../lambda/core/odmr/provider-stream';
import { destroySocketPairs, socketPair } from './odmr/odmr-fixtures';

afterEach(destroySocketPairs);

describe('MemoryBudget', () => {
  it('never hands out more than its limit; waiters are served in turn as memory comes back', async () => {
    const budget = new MemoryBudget(10);
    expect(budget.tryTake(6)).toBe(true);
    const order: string[] = [];
    const a = budget.take(5).then((n) => order.push(`a${n}`));
    const b = budget.take(2).then((n) => order.push(`b${n}`));
    // Nobody jumps the queue: 4 are free, but a waits first.
    expect(budget.tryTake(1)).toBe(false);
    budget.give(6);
    await Promise.all([a, b]);
    expect(order).toEqual(['a5', 'b2']);
    expect(budget.usedBytes).toBe(7);
  });

  it('a need larger than the whole budget is cut to the budget, so it is served (alone) rather than never', async () => {
    const budget = new MemoryBudget(8);
    expect(budget.tryTake(3)).toBe(true);
    const big = budget.take(100);
    budget.give(3);
    expect(await big).toBe(8);
    expect(budget.usedBytes).toBe(8);
  });

  it("a function's mail budget leaves the runtime its share: 43.5 MiB at 256 MB, at least 16 MiB", () => {
    expect(lambdaMailMemory(256)).toBe(43.5 * MiB);
    expect(lambdaMailMemory(512)).toBe(139.5 * MiB);
    expect(lambdaMailMemory(1024)).toBe(331.5 * MiB);
    expect(lambdaMailMemory(128)).toBe(16 * MiB);
  });
});

describe('a provider stream under a spent budget', () => {
  it('pauses its socket once its floor is full and the budget is spent, and reads on when memory is given back', async () => {
    const { ours, theirs } = await socketPair();
    const budget = new MemoryBudget(4 * MiB);
    expect(budget.tryTake(4 * MiB)).toBe(true);
    const stream = new ProviderStream(
      ours,
      Buffer.alloc(0),
      2048,
      new DeadlineTimer(),
      Date.now,
      budget,
    );
    theirs.write(Buffer.alloc(8 * MiB, 'x'));
    await new Promise((r) => setTimeout(r, 200));
    expect(ours.isPaused()).toBe(true);
    // Held: the floor and at most one chunk past it.
    expect(stream.bufferedBytes).toBeLessThan(INBOX_FLOOR + 256 * 1024);
    budget.give(4 * MiB);
    let taken = 0;
    while (taken < 8 * MiB) taken += (await stream.readChunk(Date.now() + 5000))!.length;
    expect(taken).toBe(8 * MiB);
    await stream.close(Date.now() + 100);
    expect(budget.usedBytes).toBe(0);
  });
});
