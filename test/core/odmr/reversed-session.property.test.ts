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
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DequeueError } from '../../../lambda/core/errors';
import type {
  MailEnvelope,
  MailSink,
  MessageDraft,
  ReversedOutcome,
} from '../../../lambda/core/ports';
import { MemoryBudget } from '../../../lambda/core/memory-budget';
import { createMailReceiver } from '../../../lambda/core/odmr/reversed-session';
import { stuff } from '../../../peers/atrn-provider';
import { checkProperty } from '../../support/fuzz';
import { activeResources, leftoversAfter } from '../../support/no-leftovers';
import { atrnTarget, destroySocketPairs, socketPair } from './odmr-fixtures';

afterEach(destroySocketPairs);

const MAX_RECIPIENTS = 3;
const MAX_MESSAGE_BYTES = 1024;
const COMMAND_TIMEOUT_MS = 150;
/** The session's deadline: generous, so that a loaded machine does not turn a conformant case into a 421. */
const SESSION_MS = 10_000;

// ---- the random provider ---------------------------------------------------------------------

interface Transaction {
  readonly from: string;
  readonly to: readonly string[];
  readonly text: Buffer;
  readonly declareSize: boolean;
  readonly body?: string;
  readonly pipelined: boolean;
  readonly rsetBefore: boolean;
  readonly duplicateMail: boolean;
  readonly garbageBefore?: string;
  /** Send RSET after MAIL and RCPT instead of DATA. */
  readonly abandon: boolean;
}

interface ProviderPlan {
  readonly hello: 'EHLO' | 'HELO' | 'none';
  readonly transactions: readonly Transaction[];
  /** Stray bytes right after the greeting (a stray empty line, spaces). */
  readonly strayAfterHello?: string;
  readonly ending: 'quit' | 'close' | 'silence';
  /** Stop at this many bytes written, by closing (`cut`) or by a reset. */
  readonly cutAt?: { readonly bytes: number; readonly reset: boolean };
}

interface SinkPlan {
  /** A run's memory budget shared with other (here: imaginary) sessions, partly spent already. */
  readonly memory?: { readonly limit: number; readonly spent: number };
  readonly failAt?: {
    readonly message: number;
    readonly when: 'begin' | 'write' | 'commit';
    readonly kind: 'temporary' | 'permanent';
  };
}

const text = fc
  .array(
    fc.oneof(
      fc.constantFrom(
        '.',
        '..',
        '\r',
        '\n',
        '\r\n',
        '\n.\r\n',
        '.\r\n',
        '\r\n.\r\n'.slice(0, 4),
        'Subject: x\r\n',
        'body line\r\n',
        '\xe9',
      ),
      fc.string({ maxLength: 12 }),
    ),
    { maxLength: 30 },
  )
  .chain((parts) =>
    fc.oneof(
      { weight: 5, arbitrary: fc.constant(parts.join('')) },
      { weight: 1, arbitrary: fc.constant(parts.join('') + 'x'.repeat(MAX_MESSAGE_BYTES + 100)) },
    ),
  )
  .map((t) => Buffer.from(t, 'latin1'));

const transaction: fc.Arbitrary<Transaction> = fc.record({
  from: fc.constantFrom('a@origin.test', '', 'bounce@origin.test'),
  to: fc.array(
    fc.constantFrom(
      'u1@customer.test',
      'u2@customer.test',
      'u3@customer.test',
      'u4@customer.test',
      // Whole domains, case-insensitive, a trailing dot ignored: the customer's (RFC 2645 4).
      'U5@Customer.TEST.',
      // Not the customer's: refused with 550 5.7.1, never stored (issue 17 item 2).
      'Postmaster',
      'stranger@elsewhere.test',
      'sub@sales.customer.test',
    ),
    { maxLength: MAX_RECIPIENTS + 3 },
  ),
  text,
  declareSize: fc.boolean(),
  body: fc.option(fc.constantFrom('8BITMIME', '8bitmime', '7BIT', 'BINARYMIME'), {
    nil: undefined,
  }),
  pipelined: fc.boolean(),
  rsetBefore: fc.boolean(),
  duplicateMail: fc.boolean(),
  garbageBefore: fc.option(
    fc.constantFrom('XYZZY', 'MAIL FROM:broken', 'RCPT TO:<x@y>', 'DATA', '\x00\x01', 'HELO'),
    { nil: undefined },
  ),
  abandon: fc.boolean(),
});

const providerPlan: fc.Arbitrary<ProviderPlan> = fc.record(
  {
    hello: fc.constantFrom('EHLO', 'EHLO', 'HELO', 'none'),
    transactions: fc.array(transaction, { maxLength: 4 }),
    strayAfterHello: fc.constantFrom('\r\n', '  \r\n', '\n'),
    ending: fc.constantFrom('quit', 'quit', 'close', 'silence'),
    cutAt: fc.record({ bytes: fc.nat({ max: 3000 }), reset: fc.boolean() }),
  },
  { requiredKeys: ['hello', 'transactions', 'ending'] },
);

const sinkPlan: fc.Arbitrary<SinkPlan> = fc.record(
  {
    failAt: fc.record({
      message: fc.nat({ max: 3 }),
      when: fc.constantFrom('begin', 'write', 'commit'),
      kind: fc.constantFrom('temporary', 'permanent'),
    }),
    memory: fc.record({
      limit: fc.integer({ min: 1, max: 4096 }),
      spent: fc.integer({ min: 0, max: 4096 }),
    }),
  },
  { requiredKeys: [] },
);

/** A provider that plays by the rules: the invariants' strongest form applies. */
const clean = (plan: ProviderPlan): ProviderPlan => ({
  hello: 'EHLO',
  ending: 'quit',
  transactions: plan.transactions.map((t) => ({
    ...t,
    body: t.body === 'BINARYMIME' ? undefined : t.body,
    garbageBefore: undefined,
    duplicateMail: false,
    to: t.to.length ? t.to : ['u1@customer.test'],
  })),
});

/** What the provider saw: our replies, and what it sent for each DATA. */
interface ProviderView {
  readonly replies: string[];
  /** Commands sent (lines outside DATA that we must answer, and each final dot). */
  commands: number;
  /** For each message whose final dot was sent: the text and the reply to it (null: none came). */
  readonly sent: { text: Buffer; to: string[]; from: string; reply: string | null }[];
}

class Wire {
  private buffer = '';
  private closed = false;
  private wake: (() => void) | null = null;
  written = 0;

  constructor(
    private readonly socket: Socket,
    private readonly view: ProviderView,
    private readonly cutAt: ProviderPlan['cutAt'],
  ) {
    socket.on('data', (c: Buffer) => {
      this.buffer += c.toString('latin1');
      this.wake?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on('error', () => undefined);
  }

  /** Write, honouring the cut; false once the connection is gone. */
  send(data: string | Buffer): boolean {
    if (this.closed || this.socket.destroyed) return false;
    const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    if (this.cutAt && this.written + bytes.length >= this.cutAt.bytes) {
      this.socket.write(bytes.subarray(0, this.cutAt.bytes - this.written));
      this.written = this.cutAt.bytes;
      if (this.cutAt.reset) this.socket.resetAndDestroy();
      else this.socket.end();
      this.closed = true;
      return false;
    }
    this.written += bytes.length;
    this.socket.write(bytes);
    return true;
  }

  /** The next final reply (multi-line replies joined), or null when none comes in time. */
  async reply(ms = 8_000): Promise<string | null> {
    const until = Date.now() + ms;
    const lines: string[] = [];
    for (;;) {
      const lf = this.buffer.indexOf('\n');
      if (lf !== -1) {
        const line = this.buffer.slice(0, lf).replace(/\r$/, '');
        this.buffer = this.buffer.slice(lf + 1);
        lines.push(line);
        if (/^\d{3}(?: |$)/.test(line)) {
          this.view.replies.push(line);
          return lines.join('\n');
        }
        continue;
      }
      if (this.closed || Date.now() >= until) return null;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, until - Date.now()));
        this.wake = () => {
          clearTimeout(timer);
          this.wake = null;
          resolve();
        };
      });
    }
  }

  /** Everything until the connection closes (replies we did not wait for are still counted). */
  async drain(): Promise<void> {
    while ((await this.reply(SESSION_MS)) !== null);
  }
}

async function playProvider(socket: Socket, plan: ProviderPlan, view: ProviderView): Promise<void> {
  const wire = new Wire(socket, view, plan.cutAt);
  const command = (line: string): boolean => {
    view.commands++;
    return wire.send(`${line}\r\n`);
  };
  if (!(await wire.reply())) return;
  if (plan.strayAfterHello) wire.send(plan.strayAfterHello);
  let esmtp = false;
  if (plan.hello !== 'none') {
    if (!command(`${plan.hello} provider.test`)) return wire.drain();
    const r = await wire.reply();
    if (!r) return wire.drain();
    esmtp = plan.hello === 'EHLO' && r.startsWith('250');
  }
  for (const t of plan.transactions) {
    const wireText = stuff(t.text);
    const params = `${t.declareSize && esmtp ? ` SIZE=${t.text.length}` : ''}${t.body ? ` BODY=${t.body}` : ''}`;
    const lines = [
      ...(t.garbageBefore ? [t.garbageBefore] : []),
      ...(t.rsetBefore ? ['RSET'] : []),
      `MAIL FROM:<${t.from}>${params}`,
      ...(t.duplicateMail ? [`MAIL FROM:<${t.from}>${params}`] : []),
      ...t.to.map((to) => `RCPT TO:<${to}>`),
      t.abandon ? 'RSET' : 'DATA',
    ];
    let go: string | null = null;
    if (t.pipelined && esmtp) {
      view.commands += lines.length;
      if (!wire.send(lines.map((l) => `${l}\r\n`).join(''))) return wire.drain();
      for (let i = 0; i < lines.length; i++) go = await wire.reply();
    } else {
      for (const line of lines) {
        if (!command(line)) return wire.drain();
        go = await wire.reply();
        if (!go) return wire.drain();
      }
    }
    if (!go) return wire.drain();
    if (go.startsWith('421')) return wire.drain();
    if (t.abandon || !go.startsWith('354')) continue;
    const sent = { text: t.text, to: [...t.to], from: t.from, reply: null as string | null };
    // The final dot asks for a reply like a command does.
    view.commands++;
    if (!wire.send(wireText)) return wire.drain();
    view.sent.push(sent);
    sent.reply = await wire.reply();
    if (!sent.reply || sent.reply.startsWith('421')) return wire.drain();
  }
  if (plan.ending === 'quit') {
    if (command('QUIT')) await wire.reply();
    socket.end();
  } else if (plan.ending === 'close') {
    socket.end();
  }
  // 'silence': say nothing more; our command timeout ends it.
  await wire.drain();
  socket.destroy();
}

// ---- the sink that remembers everything ------------------------------------------------------

interface Kept {
  readonly envelope: MailEnvelope;
  readonly chunks: Buffer[];
  state: 'open' | 'committed' | 'aborted';
}

function recordingSink(plan: SinkPlan): MailSink & { kept: Kept[] } {
  const kept: Kept[] = [];
  return {
    kept,
    async begin(envelope): Promise<MessageDraft> {
      const n = kept.length;
      const fail = plan.failAt?.message === n ? plan.failAt : undefined;
      const boom = () => new DequeueError(fail!.kind, `injected failure at message ${n}`);
      if (fail?.when === 'begin') throw boom();
      const entry: Kept = { envelope, chunks: [], state: 'open' };
      kept.push(entry);
      return {
        withdrawable: true,
        async write(chunks) {
          if (entry.state !== 'open') throw new Error('write after commit or abort');
          if (fail?.when === 'write' && entry.chunks.length > 0) throw boom();
          // Copies: the session may reuse nothing, but the test must not depend on that.
          entry.chunks.push(...chunks.map((c) => Buffer.from(c)));
        },
        async commit() {
          if (entry.state === 'aborted') throw new DequeueError('temporary', 'aborted');
          if (fail?.when === 'commit') throw boom();
          entry.state = 'committed';
          return { id: envelope.id, location: 'memory', bytes: Buffer.concat(entry.chunks).length };
        },
        async abort() {
          entry.state = 'aborted';
        },
      };
    },
  };
}

// ---- one case --------------------------------------------------------------------------------

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
