/**
 * The model of a hostile provider and a failing sink for reversed-session.property.test.ts: the
 * plans fast-check draws (transactions, faults, sink failures), the provider that plays a plan on
 * its socket, and the sink that fails as its plan says and records what it kept.
 */
import fc from 'fast-check';
import type { Socket } from 'node:net';
import { DequeueError } from '../../../lambda/core/errors';
import type { MailEnvelope, MailSink, MessageDraft } from '../../../lambda/core/ports';
import { stuff } from '../../../peers/atrn-provider';

export const MAX_RECIPIENTS = 3;
export const MAX_MESSAGE_BYTES = 1024;
export const COMMAND_TIMEOUT_MS = 150;
/** The session's deadline: generous, so that a loaded machine does not turn a conformant case into a 421. */
export const SESSION_MS = 10_000;

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

export interface ProviderPlan {
  readonly hello: 'EHLO' | 'HELO' | 'none';
  readonly transactions: readonly Transaction[];
  /** Stray bytes right after the greeting (a stray empty line, spaces). */
  readonly strayAfterHello?: string;
  readonly ending: 'quit' | 'close' | 'silence';
  /** Stop at this many bytes written, by closing (`cut`) or by a reset. */
  readonly cutAt?: { readonly bytes: number; readonly reset: boolean };
}

export interface SinkPlan {
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

export const providerPlan: fc.Arbitrary<ProviderPlan> = fc.record(
  {
    hello: fc.constantFrom('EHLO', 'EHLO', 'HELO', 'none'),
    transactions: fc.array(transaction, { maxLength: 4 }),
    strayAfterHello: fc.constantFrom('\r\n', '  \r\n', '\n'),
    ending: fc.constantFrom('quit', 'quit', 'close', 'silence'),
    cutAt: fc.record({ bytes: fc.nat({ max: 3000 }), reset: fc.boolean() }),
  },
  { requiredKeys: ['hello', 'transactions', 'ending'] },
);

export const sinkPlan: fc.Arbitrary<SinkPlan> = fc.record(
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
export const clean = (plan: ProviderPlan): ProviderPlan => ({
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
export interface ProviderView {
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

export async function playProvider(
  socket: Socket,
  plan: ProviderPlan,
  view: ProviderView,
): Promise<void> {
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

export function recordingSink(plan: SinkPlan): MailSink & { kept: Kept[] } {
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
