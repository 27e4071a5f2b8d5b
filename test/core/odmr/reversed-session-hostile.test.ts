/**
 * The reversed session against a hostile or broken provider (silence, endless lines and data,
 * oversize, too many recipients, bad commands): each ends the session with a clear result, and
 * what was acknowledged is stored. The ordinary dialogue: reversed-session.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { heldMessage, providerBytes, readMailDir } from './odmr-fixtures';
import { cleanUp, expectStoredExactlyAcknowledged, pull, queueOf } from './pull-run';

afterEach(cleanUp);

describe('ODMR: a hostile or broken provider ends the session with a clear result', () => {
  it('silence after our greeting: 421 after the command timeout', async () => {
    const run = await pull(
      { queue: queueOf(1), faults: { silentAfterGreeting: true } },
      { receiver: { commandTimeoutMs: 300 } },
    );
    expect(run.report.outcome).toBe('temporary-failure');
    expect(run.report.error?.message).toMatch(/sent no command within 300 ms/);
    expect(run.provider.waiting).toEqual([0]);
  });

  it('silence in the middle of DATA: 421 after the timeout, the partial message is dropped', async () => {
    const queue = queueOf(2, 4096);
    const run = await pull(
      { queue, faults: { silenceInData: { message: 0, afterBytes: 1000 } } },
      { receiver: { commandTimeoutMs: 300 } },
    );
    expect(run.report.outcome).toBe('temporary-failure');
    expect(run.report.error?.name).toBe('TimeoutError');
    expect(run.report.messages).toBe(0);
    await expectStoredExactlyAcknowledged(run, queue);
  });

  it('a line that never ends: refused as soon as it passes the limit, not when (if ever) it ends', async () => {
    const run = await pull({ queue: queueOf(1), faults: { endlessLineBytes: 8 * 1024 * 1024 } });
    expect(run.report.outcome).toBe('temporary-failure');
    expect(run.report.error?.message).toMatch(/line longer than 2048 bytes/);
    expect(run.provider.customerReplies).toContain(
      '500 5.5.2 Line too long (more than 2048 bytes)',
    );
  });

  it('a message declared over SIZE is refused at MAIL (552); the others are stored', async () => {
    const queue = [heldMessage(0), heldMessage(1, 64 * 1024), heldMessage(2)];
    const run = await pull(
      { queue, declareSize: true },
      { receiver: { maxMessageBytes: 32 * 1024 } },
    );
    expect(run.report.outcome).toBe('permanent-failure');
    expect(run.report.error?.message).toMatch(/exceeds maxMessageBytes 32768/);
    expect(run.report.messages).toBe(2);
    expect(run.provider.bouncedNumbers).toEqual([1]);
    expect(run.provider.attempts.find((a) => a.number === 1)?.reply).toMatch(/^552 5\.3\.4/);
    await expectStoredExactlyAcknowledged(run, queue);
  });

  it('a message over the limit without SIZE: read to its end, 552, nothing of it kept', async () => {
    const queue = [heldMessage(0), heldMessage(1, 256 * 1024), heldMessage(2)];
    const run = await pull({ queue }, { receiver: { maxMessageBytes: 200 * 1024 } });
    expect(run.report.messages).toBe(2);
    expect(run.provider.attempts.find((a) => a.number === 1)?.reply).toMatch(/^552 5\.3\.4/);
    await expectStoredExactlyAcknowledged(run, queue);
  });

  it('data that never ends is cut off at twice the size limit', async () => {
    const run = await pull(
      { queue: queueOf(1), faults: { endlessDataBytes: 64 * 1024 * 1024 } },
      { receiver: { maxMessageBytes: 1024 * 1024 } },
    );
    expect(run.report.outcome).toBe('temporary-failure');
    expect(run.report.error?.message).toMatch(/past twice the size limit/);
    await expectStoredExactlyAcknowledged(run);
  });

  it('too many recipients: 452 (RFC 5321 4.5.3.1.10), the provider sends the rest in another transaction', async () => {
    const message = {
      ...heldMessage(0),
      to: Array.from({ length: 7 }, (_, i) => `r${i}@customer.test`),
    };
    const run = await pull({ queue: [message] }, { receiver: { maxRecipients: 3 } });
    expect(run.report.messages).toBe(3);
    expect(run.report.error).toBeNull();
    const { stored } = await readMailDir(run.dir);
    expect(stored.flatMap((f) => f.envelope.rcptTo)).toEqual(message.to);
    expect(stored.every((f) => providerBytes(f).equals(message.text))).toBe(true);
  });

  it('a provider that sends every RCPT despite 452 is not cut off: each extra recipient gets 452, the accepted ones get the message', async () => {
    const message = {
      ...heldMessage(0),
      to: Array.from({ length: 100 }, (_, i) => `r${i}@customer.test`),
    };
    const run = await pull(
      { queue: [message], faults: { ignore452: true } },
      { receiver: { maxRecipients: 5 } },
    );
    expect(run.report.outcome).toBe('signalled');
    expect(run.report.error).toBeNull();
    expect(run.provider.customerReplies.filter((r) => r.startsWith('452'))).toHaveLength(95);
    const { stored } = await readMailDir(run.dir);
    expect(stored.map((f) => f.envelope.rcptTo)).toEqual([message.to.slice(0, 5)]);
    await expectStoredExactlyAcknowledged(run, [message]);
  });

  it('a pipelining provider with 125 recipients against maxRecipients 100: all 125 stored over two transactions, no 421', async () => {
    const message = {
      ...heldMessage(0),
      to: Array.from({ length: 125 }, (_, i) => `r${i}@customer.test`),
    };
    const run = await pull(
      { queue: [message], pipelining: true },
      { receiver: { maxRecipients: 100 } },
    );
    expect(run.report.outcome).toBe('signalled');
    expect(run.report.messages).toBe(2);
    expect(run.provider.customerReplies.some((r) => r.startsWith('421'))).toBe(false);
    expect(run.provider.waiting).toEqual([]);
    const { stored } = await readMailDir(run.dir);
    expect(stored.map((f) => f.envelope.rcptTo.length)).toEqual([100, 25]);
    expect(stored.flatMap((f) => f.envelope.rcptTo)).toEqual(message.to);
    expect(stored.every((f) => providerBytes(f).equals(message.text))).toBe(true);
  });

  it('a pipelined message refused at MAIL (552 SIZE) with 30 recipients: its 503s are not errors, the next message is stored', async () => {
    const big = {
      ...heldMessage(0, 300 * 1024),
      to: Array.from({ length: 30 }, (_, i) => `r${i}@customer.test`),
    };
    const small = heldMessage(1);
    const run = await pull(
      { queue: [big, small], pipelining: true, declareSize: true },
      { receiver: { maxMessageBytes: 100 * 1024 } },
    );
    expect(run.provider.customerReplies.filter((r) => r.startsWith('503'))).toHaveLength(31);
    expect(run.provider.customerReplies.some((r) => r.startsWith('421'))).toBe(false);
    expect(run.provider.bouncedNumbers).toEqual([0]);
    expect(run.report.messages).toBe(1);
    await expectStoredExactlyAcknowledged(run, [big, small]);
  });

  it('a provider sending nothing but bad commands is still cut off after 20 of them', async () => {
    const run = await pull({ queue: [heldMessage(0)], faults: { garbageCommands: 50 } });
    expect(run.report.outcome).toBe('temporary-failure');
    expect(run.report.error?.message).toMatch(/more than 20 commands we had to reject/);
    expect(run.provider.customerReplies.at(-1)).toMatch(/^421 4\.7\.0/);
    expect(run.provider.waiting).toEqual([0]);
  });
});
