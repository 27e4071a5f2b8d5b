/**
 * The reversed session against a random provider, as properties. Each case is one provider,
 * drawn at random: pipelined or not, EHLO, HELO or neither, RSET, duplicated commands, stray
 * bytes and garbage, more recipients than allowed (452), messages over the size limit (declared
 * or not), bare LF and dots anywhere in the text, a cut or a reset at any byte it sends, silence;
 * and a sink that fails at any message (begin, write or commit; temporary or for good), under a
 * run's memory budget that is small and partly spent by others.
 *
 * Whatever it does, the invariants a mail administrator relies on hold:
 * - every message the provider saw acknowledged with 250 is stored, byte-exact, with its envelope;
 * - nothing is visible in the store that we did not send a 250 for;
 * - no 250 goes out before the store confirmed the message;
 * - at most one reply per command (exactly one when the provider plays by the rules);
 * - the session ends within its bound, and leaves no timer or socket behind, nor memory drawn
 *   from the run's budget;
 * - a provider that plays by the rules with a healthy sink gets every message stored.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { ReversedOutcome } from '../../../lambda/core/ports';
import { MemoryBudget } from '../../../lambda/core/memory-budget';
import { createMailReceiver } from '../../../lambda/core/odmr/reversed-session';
import { checkProperty } from '../../support/fuzz';
import { activeResources, leftoversAfter } from '../../support/no-leftovers';
import { atrnTarget, destroySocketPairs, socketPair } from './odmr-fixtures';
import {
  MAX_RECIPIENTS,
  MAX_MESSAGE_BYTES,
  COMMAND_TIMEOUT_MS,
  SESSION_MS,
  type ProviderPlan,
  type SinkPlan,
  providerPlan,
  sinkPlan,
  clean,
  type ProviderView,
  playProvider,
  recordingSink,
} from './hostile-provider-model';

afterEach(destroySocketPairs);

async function runCase(
  plan: ProviderPlan,
  sinkPlanValue: SinkPlan,
): Promise<{
  view: ProviderView;
  sink: ReturnType<typeof recordingSink>;
  outcome: ReversedOutcome;
  sentLines: string[];
  early250: string[];
  endedAt: number;
  deadline: number;
  leftovers: string[];
  memoryKept: number;
}> {
  const before = activeResources();
  const { ours, theirs } = await socketPair();
  theirs.setNoDelay(true);
  const sink = recordingSink(sinkPlanValue);
  const plannedMemory = sinkPlanValue.memory;
  const memory = plannedMemory ? new MemoryBudget(plannedMemory.limit) : undefined;
  // Another session holds some of it for the whole case: this one must still end (its floor).
  const held =
    plannedMemory && memory!.tryTake(Math.min(plannedMemory.spent, plannedMemory.limit))
      ? Math.min(plannedMemory.spent, plannedMemory.limit)
      : 0;
  const sentLines: string[] = [];
  const early250: string[] = [];
  const deadline = Date.now() + SESSION_MS;
  const receiver = createMailReceiver(sink, {
    maxRecipients: MAX_RECIPIENTS,
    maxMessageBytes: MAX_MESSAGE_BYTES,
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    dataEndTimeoutMs: COMMAND_TIMEOUT_MS,
    closeReserveMs: 100,
    memory,
  });
  const view: ProviderView = { replies: [], commands: 0, sent: [] };
  const served = receiver({
    socket: ours,
    pending: Buffer.alloc(0),
    target: atrnTarget(25),
    provider: 'provider.test:366',
    deadline,
    helloName: 'mx.customer.test',
    transcript: {
      line: (_t, direction, line) => {
        if (direction !== 'S') return;
        sentLines.push(line);
        // No 250 before the store confirmed: at the moment the reply is produced, it is committed.
        const id = /^250 2\.0\.0 Ok: stored as (\S+)/.exec(line)?.[1];
        if (id && sink.kept.find((k) => k.envelope.id === id)?.state !== 'committed')
          early250.push(id);
      },
    },
  });
  const played = playProvider(theirs, plan, view);
  const outcome = await served;
  const endedAt = Date.now();
  await played;
  theirs.destroy();
  ours.destroy();
  const leftovers = await leftoversAfter(before);
  // Everything the session drew from the run's budget is given back.
  const memoryKept = memory ? memory.usedBytes - held : 0;
  return { view, sink, outcome, sentLines, early250, endedAt, deadline, leftovers, memoryKept };
}

/** Over the limit as we count it: the provider's bytes, with the CRLF the final dot needs. */
const oversize = (text: Buffer) =>
  withFinalLineEnd(text.toString('latin1')).length > MAX_MESSAGE_BYTES;
const withFinalLineEnd = (t: string) => (t === '' || t.endsWith('\r\n') ? t : `${t}\r\n`);

/** fast-check's report names the case; this keeps the assertion that failed in it, for the log. */
async function explained(check: () => Promise<void>): Promise<void> {
  try {
    await check();
  } catch (e) {
    process.stderr.write(`invariant broken: ${(e as Error).message.split('\n')[0]}\n`);
    throw e;
  }
}

/** The customer's own recipients (a foreign one is refused and takes no recipient slot). */
const ours = (address: string) => /@customer\.test\.?$/i.test(address);

function checkInvariants(result: Awaited<ReturnType<typeof runCase>>, strict: boolean): void {
  const { view, sink, outcome, sentLines, early250 } = result;
  const visible = sink.kept.filter((k) => k.state === 'committed');
  const acknowledgedIds = sentLines
    .map((l) => /^250 2\.0\.0 Ok: stored as (\S+)/.exec(l)?.[1])
    .filter((id): id is string => !!id);

  expect(early250, 'no 250 before the store confirmed').toEqual([]);
  // Nothing visible that we did not acknowledge; the count reported is what is visible.
  expect(visible.map((k) => k.envelope.id).sort(), 'visible = acknowledged by us').toEqual(
    [...acknowledgedIds].sort(),
  );
  expect(outcome.stored).toBe(visible.length);
  // What the provider saw acknowledged is stored, byte-exact, with its envelope.
  for (const sent of view.sent) {
    const id = sent.reply && /^250 2\.0\.0 Ok: stored as (\S+)/.exec(sent.reply)?.[1];
    if (!id) continue;
    const k = visible.find((v) => v.envelope.id === id);
    expect(k, `message ${id} acknowledged to the provider is stored`).toBeDefined();
    const stored = Buffer.concat(k!.chunks).subarray(k!.envelope.traceBytes).toString('latin1');
    const expected = withFinalLineEnd(sent.text.toString('latin1'));
    expect(stored, `message ${id} is byte-exact`).toBe(expected);
    expect(k!.envelope.mailFrom).toBe(sent.from);
    expect(
      k!.envelope.rcptTo.filter((r) => !ours(r)),
      'no foreign recipient is stored',
    ).toEqual([]);
    expect(
      sent.to
        .filter(ours)
        .slice(0, MAX_RECIPIENTS)
        .filter((t) => k!.envelope.rcptTo.includes(t)).length,
    ).toBe(k!.envelope.rcptTo.length);
  }
  // At most one reply per command, plus the greeting and one 421 of our own.
  expect(view.replies.length, 'one reply per command').toBeLessThanOrEqual(view.commands + 2);
  if (strict) {
    expect(view.replies.length, 'exactly one reply per command').toBe(view.commands + 1);
    // Every message with at least one acceptable recipient and within the size limit is stored.
    const wanted = view.sent.filter((s) => !oversize(s.text));
    expect(
      wanted.every((s) => s.reply?.startsWith('250')),
      `every message stored (${view.replies.join(' | ')})`,
    ).toBe(true);
    // Foreign recipients are refused and counted; they and a message over the limit (552) are
    // the only refusals for good, which make the result a failure.
    const foreign = view.replies.filter((r) => r.startsWith('550 5.7.1')).length;
    expect(outcome.refusedRecipients ?? 0, 'foreign recipients counted').toBe(foreign);
    if (view.replies.some((r) => r.startsWith('552')) || foreign)
      expect(outcome.error?.kind).toBe('permanent');
    else expect(outcome.error).toBeNull();
  }
  // The session ends within its bound (its deadline; the margin is for a loaded machine's event
  // loop, not for the session), leaving nothing behind.
  expect(result.endedAt).toBeLessThanOrEqual(result.deadline + 3_000);
  expect(result.leftovers, 'no timer or socket left').toEqual([]);
  expect(result.memoryKept, 'the memory budget is given back').toBe(0);
}

describe('reversed session properties', () => {
  it('any provider, any sink failure: what was acknowledged is stored byte-exact, nothing else is visible, one reply per command, ends in time', async () => {
    await checkProperty(
      'reversed session invariants (hostile provider)',
      fc.asyncProperty(providerPlan, sinkPlan, (plan, sinkFailure) =>
        explained(async () => checkInvariants(await runCase(plan, sinkFailure), false)),
      ),
      { ci: 60, fuzzShare: 0.1 },
    );
  });

  it('a provider that plays by the rules (pipelined or not, 452s, oversize, RSET) with a healthy store: everything within limits is stored', async () => {
    await checkProperty(
      'reversed session invariants (conformant provider)',
      fc.asyncProperty(providerPlan.map(clean), (plan) =>
        explained(async () => checkInvariants(await runCase(plan, {}), true)),
      ),
      { ci: 40, fuzzShare: 0.1 },
    );
  });
});
