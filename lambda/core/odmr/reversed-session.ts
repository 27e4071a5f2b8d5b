/**
 * After ATRN: we are the SMTP server on the same connection (RFC 2645 section 4) and the
 * provider delivers the mail it held for us. We greet with 220 and serve EHLO/HELO, MAIL, RCPT,
 * DATA, RSET, NOOP and QUIT, advertising SIZE (RFC 1870), 8BITMIME (RFC 6152), PIPELINING
 * (RFC 2920) and ENHANCEDSTATUSCODES (RFC 2034).
 *
 * The one rule that matters: our 250 after the final dot is what makes the provider delete the
 * message, so it is sent only once the sink says the message is durable. A sink that fails gets
 * 451 (the provider keeps the message); when the run's deadline nears we send 421 and close, and
 * whatever is left stays at the provider for the next cycle. A message that was not acknowledged
 * is never left visible in the sink.
 *
 * Our own small server rather than smtp-server's `SMTPServer.connect()`: this file decides every
 * bound itself. smtp-server's only wait is one idle socket timeout (not RFC 5321's separate
 * per-command and after-the-dot bounds, nor a run deadline), a message over SIZE is only flagged
 * once it has all arrived, the bytes read past the ATRN reply would have to be pushed back into
 * the socket by hand, and it starts a reverse DNS lookup of the provider of its own.
 */
import { randomFillSync } from 'node:crypto';
import { TLSSocket } from 'node:tls';
import { DeadlineTimer } from '../deadline-timer';
import type { MemoryBudget } from '../memory-budget';
import { DataUnstuffer } from '../smtp/dot-stuffing';
import { asDequeueError, DequeueError, ProtocolError, TimeoutError } from '../errors';
import type {
  MailEnvelope,
  MailReceiver,
  MailSink,
  MessageDraft,
  ReversedOutcome,
  ReversedTurn,
  SinkTransaction,
} from '../ports';
import { LineTooLongError, ProviderStream } from './provider-stream';
import { parseMailFrom, parseRcptTo, printable, splitCommand } from '../smtp/command';
import { receivedHeader } from './trace-header';

/** Default SIZE limit: 50 MiB, above what most providers will send anyway. */
export const DEFAULT_MAX_MESSAGE_BYTES = 50 * 1024 * 1024;
/** RFC 5321 4.5.3.1.8: at least 100 recipients must be accepted; more is common. */
export const DEFAULT_MAX_RECIPIENTS = 1000;
/** RFC 5321 4.5.3.2.7: a server waits at least 5 minutes for the next command (and data). */
export const COMMAND_TIMEOUT_MS = 5 * 60_000;
/** RFC 5321 4.5.3.2.6: the provider waits 10 minutes for our reply to the final dot. */
export const DATA_END_TIMEOUT_MS = 10 * 60_000;
/** RFC 5321 4.5.3.1.4 sets 512 octets; extensions and sloppy senders go past it. */
export const MAX_COMMAND_LINE_BYTES = 2048;
/** Kept before the turn's deadline to send 421 and close. */
export const CLOSE_RESERVE_MS = 1_000;
/**
 * Rejected commands tolerated per transaction (counted from the end of the last message) before
 * we hang up on a provider that is out of step. Flow control is not counted (see `flowControl`).
 */
export const MAX_REJECTED_COMMANDS = 20;
/**
 * Flow-control replies (452, and 503 after a refused MAIL) tolerated per transaction before they
 * count as rejected: a pipelining provider may send any number of RCPTs, one that loops must end.
 */
export const MAX_FLOW_CONTROL_REPLIES = 10_000;
/** Refused messages named in the result; the rest are counted. */
const MAX_NAMED_REFUSALS = 5;
/** After our last reply (221, 421), how long the provider gets to close before we do. */
const CLOSE_GRACE_MS = 1_000;

export interface ReceiverOptions {
  /** Advertised as SIZE and enforced as the message streams in. Default 50 MiB. */
  readonly maxMessageBytes?: number;
  /** RCPTs accepted per message; more get 452 (RFC 5321 4.5.3.1.10). Default 1000. */
  readonly maxRecipients?: number;
  readonly commandTimeoutMs?: number;
  readonly dataEndTimeoutMs?: number;
  readonly maxCommandLineBytes?: number;
  readonly closeReserveMs?: number;
  readonly now?: () => number;
  /** The run's in-flight mail memory, shared by every session (core/memory-budget.ts). */
  readonly memory?: MemoryBudget;
}

type Limits = Required<Omit<ReceiverOptions, 'now' | 'memory'>>;

/** The `MailReceiver` port: serves each ATRN turn into `sink`. */
export function createMailReceiver(sink: MailSink, options: ReceiverOptions = {}): MailReceiver {
  const limits: Limits = {
    maxMessageBytes: options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    maxRecipients: options.maxRecipients ?? DEFAULT_MAX_RECIPIENTS,
    commandTimeoutMs: options.commandTimeoutMs ?? COMMAND_TIMEOUT_MS,
    dataEndTimeoutMs: options.dataEndTimeoutMs ?? DATA_END_TIMEOUT_MS,
    maxCommandLineBytes: options.maxCommandLineBytes ?? MAX_COMMAND_LINE_BYTES,
    closeReserveMs: options.closeReserveMs ?? CLOSE_RESERVE_MS,
  };
  const now = options.now ?? Date.now;
  // The session must attach to the socket before anything is awaited (provider-stream.ts).
  return (turn) => new ReversedSession(turn, sink, limits, now, options.memory).run();
}

/** Ends the session: the reply to send first (if any) and what to report. */
class SessionEnd {
  constructor(
    readonly error: DequeueError | null,
    readonly reply?: string,
  ) {}
}

interface Transaction {
  readonly mailFrom: string;
  readonly rcptTo: string[];
  readonly body?: '7BIT' | '8BITMIME';
  readonly declaredSize?: number;
  /** The sink's view of it, when the sink answers recipients one by one (the relay). */
  readonly sinkTx?: SinkTransaction;
  /** The destination failed during this transaction (unreachable, no 8BITMIME). */
  destinationFailure?: DequeueError;
}

/** A bound for one wait: the earlier of its own timeout and the session's stop time. */
interface Bound {
  readonly until: number;
  readonly byDeadline: boolean;
  readonly ms: number;
}

class ReversedSession {
  private readonly timer: DeadlineTimer;
  private readonly stream: ProviderStream;
  private readonly stopAt: number;
  private readonly tls: boolean;
  private heloName: string | null = null;
  private esmtp = false;
  private tx: Transaction | null = null;
  private stored = 0;
  /** Genuinely bad commands since the last message ended (MAX_REJECTED_COMMANDS). */
  private rejected = 0;
  /**
   * Replies that are flow control, not errors, since the last message ended: 452 for recipients
   * over maxRecipients (RFC 5321 4.5.3.1.10) and the 503/554 that the rest of a pipelined group
   * gets after its MAIL was refused or all its RCPTs were (RFC 2920 3.1). Free up to a bound
   * (MAX_FLOW_CONTROL_REPLIES), so that a provider looping on them still ends.
   */
  private flowControl = 0;
  /** The last MAIL was refused and no MAIL, RSET or EHLO came since: RCPT and DATA get 503. */
  private mailRefused = false;
  /** Recipients the destination answered 4xx (the relay): the first few are named. */
  private readonly deferrals: string[] = [];
  private deferredRecipients = 0;
  /** Messages refused for good (552, 554): the provider bounces them. The first few are named. */
  private readonly refusals: string[] = [];
  private refusedCount = 0;
  /** Set when the sink failed: the session closes at the next command (the rest stays queued). */
  private sinkFailure: DequeueError | null = null;
  /** Unacknowledged messages the sink could not take back, or could not be told apart: reported. */
  private readonly leftBehind: string[] = [];
  /** Abandoned transactions the sink is still letting go of (files it opened at MAIL). */
  private readonly lettingGo = new Set<Promise<void>>();

  constructor(
    private readonly turn: ReversedTurn,
    private readonly sink: MailSink,
    private readonly limits: Limits,
    private readonly now: () => number,
    memory?: MemoryBudget,
  ) {
    this.timer = new DeadlineTimer(now);
    this.stream = new ProviderStream(
      turn.socket,
      turn.pending,
      limits.maxCommandLineBytes,
      this.timer,
      now,
      memory,
    );
    this.stopAt = turn.deadline - limits.closeReserveMs;
    this.tls =
      turn.socket instanceof TLSSocket ||
      (turn.socket as { encrypted?: boolean }).encrypted === true;
  }

  async run(): Promise<ReversedOutcome> {
    let end: SessionEnd;
    try {
      if (this.now() >= this.stopAt) {
        // RFC 5321 3.1: a server that will not take mail now may greet with 421.
        throw new SessionEnd(
          this.deadlineError(),
          `421 4.3.2 ${this.name} no time left in this run, try again later`,
        );
      }
      await this.reply(
        `220 ${this.name} ESMTP dequeue ready to receive for ${this.turn.target.name}`,
      );
      end = await this.serve();
    } catch (e) {
      end =
        e instanceof SessionEnd
          ? e
          : new SessionEnd(asDequeueError(e), `421 4.3.0 ${this.name} internal error, closing`);
    }
    this.dropTransaction();
    if (end.reply) await this.reply(end.reply).catch(() => undefined);
    // The provider gets a moment to read our last reply and close first (it is the client).
    await this.stream.close(Math.min(this.now() + CLOSE_GRACE_MS, this.turn.deadline));
    // Nothing the sink opened for a transaction outlives the session (bounded all the same).
    if (this.lettingGo.size)
      await this.timer
        .within(Promise.all(this.lettingGo), this.turn.deadline)
        .catch(() => undefined);
    this.timer.stop();
    return { stored: this.stored, error: this.finalError(end.error) };
  }

  private get name(): string {
    return this.turn.helloName;
  }

  private note(direction: 'C' | 'S' | '*', text: string): void {
    this.turn.transcript.line(this.turn.target.name, direction, text);
  }

  private async reply(text: string, now = false): Promise<void> {
    for (const line of text.split('\r\n')) this.note('S', line);
    const bound = this.bound(this.limits.commandTimeoutMs);
    try {
      await this.stream.write(`${text}\r\n`, bound.until, now);
    } catch (e) {
      if (!(e instanceof TimeoutError)) throw e;
      if (bound.byDeadline) throw new SessionEnd(this.deadlineError());
      throw new SessionEnd(
        new TimeoutError(
          `${this.turn.provider} stopped reading our replies for ${duration(bound.ms)}`,
        ),
      );
    }
  }

  private bound(ms: number): Bound {
    const own = this.now() + ms;
    return own >= this.stopAt
      ? { until: this.stopAt, byDeadline: true, ms }
      : { until: own, byDeadline: false, ms };
  }

  private deadlineError(): DequeueError {
    return new DequeueError(
      'temporary',
      `the run's deadline came after ${this.stored} message(s) were stored; the rest stays at ${this.turn.provider} for the next cycle`,
    );
  }

  /** What a wait that ran out means: the run's deadline, or a silent provider. */
  private expired(bound: Bound, waitingFor: string): SessionEnd {
    if (bound.byDeadline)
      return new SessionEnd(
        this.deadlineError(),
        `421 4.3.2 ${this.name} run deadline reached, closing; try again later`,
      );
    return new SessionEnd(
      new TimeoutError(
        `${this.turn.provider} sent no ${waitingFor} within ${duration(bound.ms)} (RFC 5321 4.5.3.2)`,
      ),
      `421 4.4.2 ${this.name} timeout, closing`,
    );
  }

  private finalError(error: DequeueError | null): DequeueError | null {
    const main = this.mainError(error);
    if (!this.leftBehind.length) return main;
    // Mail visible that the provider still holds: its next delivery makes a duplicate.
    const also =
      this.leftBehind.slice(0, MAX_NAMED_REFUSALS).join('; ') +
      (this.leftBehind.length > MAX_NAMED_REFUSALS
        ? `; and ${this.leftBehind.length - MAX_NAMED_REFUSALS} more`
        : '');
    if (!main) return new DequeueError('temporary', also);
    return new DequeueError(main.kind, `${main.message}; also: ${also}`, { cause: main });
  }

  private mainError(error: DequeueError | null): DequeueError | null {
    if (error) return error;
    if (this.sinkFailure) return this.sinkFailure;
    if (this.deferredRecipients) {
      const more =
        this.deferredRecipients > this.deferrals.length
          ? `; and ${this.deferredRecipients - this.deferrals.length} more`
          : '';
      const deferred = `${this.deferredRecipients} recipient(s) put off by the destination, the provider keeps them: ${this.deferrals.join('; ')}${more}`;
      if (!this.refusedCount) return new DequeueError('temporary', deferred);
      const refused = new DequeueError(
        'permanent',
        `${this.refusedCount} refused for good: ${this.refusals.join('; ')}`,
      );
      return new DequeueError('permanent', `${refused.message}; ${deferred}`);
    }
    if (this.refusedCount) {
      const more =
        this.refusedCount > this.refusals.length
          ? `; and ${this.refusedCount - this.refusals.length} more`
          : '';
      return new DequeueError(
        'permanent',
        `${this.refusedCount} message(s) refused, the provider returns them to their senders: ${this.refusals.join('; ')}${more}`,
      );
    }
    return null;
  }

  private refuse(why: string): void {
    if (++this.refusedCount <= MAX_NAMED_REFUSALS) this.refusals.push(why);
  }

  /** A recipient the destination put off (4xx to RCPT): the provider keeps it; the result says why. */
  private deferRecipient(why: string): void {
    if (++this.deferredRecipients <= MAX_NAMED_REFUSALS) this.deferrals.push(why);
  }

  /** The transaction is over without DATA: the sink lets go of its side of it. */
  private dropTransaction(): void {
    const letGo = this.tx?.sinkTx?.abandon();
    if (letGo) {
      this.lettingGo.add(letGo);
      const done = () => void this.lettingGo.delete(letGo);
      letGo.then(done, done);
    }
    // A destination that failed is likely to fail again: the session closes at the next command
    // (after this transaction's own replies), as after a failed store.
    const failure = this.tx?.destinationFailure;
    if (failure)
      this.sinkFailure ??= new DequeueError(
        'temporary',
        `the destination could not take mail, the provider keeps it: ${failure.message}`,
        { cause: failure },
      );
    this.tx = null;
  }

  private async serve(): Promise<SessionEnd> {
    for (;;) {
      const bound = this.bound(this.limits.commandTimeoutMs);
      let line: string | null;
      try {
        line = await this.stream.readLine(bound.until);
      } catch (e) {
        if (e instanceof TimeoutError) throw this.expired(bound, 'command');
        if (e instanceof LineTooLongError) {
          throw new SessionEnd(
            e,
            `500 5.5.2 Line too long (more than ${this.limits.maxCommandLineBytes} bytes)`,
          );
        }
        throw new SessionEnd(asDequeueError(e));
      }
      if (line === null) {
        if (!this.tx) return new SessionEnd(null);
        return new SessionEnd(
          new DequeueError(
            'temporary',
            `${this.turn.provider} closed the connection in the middle of a transaction; the message stays with it`,
          ),
        );
      }
      // INetSim (and others) send a stray empty line after the final dot: not a command, and
      // answering it would put every later reply one step out of line.
      if (line.trim() === '') continue;
      this.note('C', printable(line));
      const done = await this.command(line);
      if (done) return done;
    }
  }

  /** One command; returns a SessionEnd when the session is over. */
  private async command(line: string): Promise<SessionEnd | null> {
    const { verb, args } = splitCommand(line);
    if (this.sinkFailure && verb !== 'QUIT') {
      return new SessionEnd(
        this.sinkFailure,
        `421 4.3.0 ${this.name} cannot store mail now, closing; try again later`,
      );
    }
    switch (verb) {
      case 'EHLO':
      case 'HELO':
        return this.hello(verb, args);
      case 'MAIL':
        return this.mail(args);
      case 'RCPT':
        return this.rcpt(args);
      case 'DATA':
        if (!this.tx)
          return this.mailRefused
            ? this.deferred('503 5.5.1 Need MAIL first')
            : this.reject('503 5.5.1 Need MAIL first');
        if (this.tx.rcptTo.length === 0) {
          // RFC 5321 4.1.1.4, RFC 2920 3.1: a DATA whose RCPTs were all refused gets 554 (flow
          // control), and the transaction has nothing left to do: the next MAIL starts afresh.
          this.dropTransaction();
          this.mailRefused = true;
          return this.deferred('554 5.5.1 No valid recipients');
        }
        if (args.trim()) return this.reject('501 5.5.4 DATA takes no arguments');
        await this.data(this.tx);
        return null;
      case 'RSET':
        this.dropTransaction();
        this.mailRefused = false;
        await this.reply('250 2.0.0 Ok');
        return null;
      case 'NOOP':
        await this.reply('250 2.0.0 Ok');
        return null;
      case 'QUIT':
        return new SessionEnd(null, `221 2.0.0 ${this.name} closing`);
      case 'VRFY':
        // RFC 5321 3.5.3: 252 when we will not verify but would accept.
        await this.reply('252 2.5.0 Cannot VRFY, but send it');
        return null;
      default:
        return this.reject(
          verb === '?'
            ? '500 5.5.2 Syntax error'
            : `502 5.5.1 ${printable(verb, 16)} not implemented`,
        );
    }
  }

  private async reject(reply: string): Promise<SessionEnd | null> {
    if (++this.rejected > MAX_REJECTED_COMMANDS) {
      return new SessionEnd(
        new ProtocolError(
          `${this.turn.provider} sent more than ${MAX_REJECTED_COMMANDS} commands we had to reject; the last: ${reply}`,
        ),
        `421 4.7.0 ${this.name} too many errors, closing`,
      );
    }
    await this.reply(reply);
    return null;
  }

  /** A refusal that is flow control (`flowControl`): free, up to its bound. */
  private async deferred(reply: string): Promise<SessionEnd | null> {
    if (++this.flowControl > MAX_FLOW_CONTROL_REPLIES) return this.reject(reply);
    await this.reply(reply);
    return null;
  }

  /** A message's transaction is over (whatever its outcome): the counts start again. */
  private transactionEnded(): void {
    this.rejected = 0;
    this.flowControl = 0;
  }

  private async hello(verb: 'EHLO' | 'HELO', args: string): Promise<SessionEnd | null> {
    const name = args.trim().split(/\s+/)[0] ?? '';
    if (!name) return this.reject(`501 5.5.4 Syntax: ${verb} hostname`);
    this.heloName = name;
    this.esmtp = verb === 'EHLO';
    this.dropTransaction();
    this.mailRefused = false;
    if (verb === 'HELO') {
      await this.reply(`250 ${this.name}`);
      return null;
    }
    await this.reply(
      [
        `250-${this.name} greets ${printable(name, 64)}`,
        `250-SIZE ${this.limits.maxMessageBytes}`,
        '250-8BITMIME',
        '250-PIPELINING',
        '250 ENHANCEDSTATUSCODES',
      ].join('\r\n'),
    );
    return null;
  }

  private async mail(args: string): Promise<SessionEnd | null> {
    if (this.tx) return this.reject('503 5.5.1 MAIL already given; RSET first');
    // Whatever follows a refused MAIL in its pipelined group gets 503 as flow control.
    this.mailRefused = true;
    if (!this.heloName) return this.reject('503 5.5.1 Send EHLO or HELO first');
    const path = parseMailFrom(args);
    if (!path.ok) return this.reject(`${path.code} ${path.text}`);
    let body: Transaction['body'];
    let declaredSize: number | undefined;
    for (const [key, value] of path.params) {
      if (key === 'SIZE' && this.esmtp && typeof value === 'string' && /^\d{1,20}$/.test(value)) {
        declaredSize = Number(value);
        // RFC 1870 section 6.1: refuse up front what will not fit, before a byte is sent.
        if (declaredSize > this.limits.maxMessageBytes) {
          this.refuse(
            `a message of ${declaredSize} bytes from <${printable(path.address, 80)}> exceeds maxMessageBytes ${this.limits.maxMessageBytes}`,
          );
          await this.reply(
            `552 5.3.4 Message size exceeds fixed maximum message size (${this.limits.maxMessageBytes})`,
          );
          return null;
        }
      } else if (
        key === 'BODY' &&
        this.esmtp &&
        typeof value === 'string' &&
        /^(?:7BIT|8BITMIME)$/i.test(value)
      ) {
        // RFC 6152 section 2 (after RFC 5321 4.1.1.11): the value is case-insensitive.
        body = value.toUpperCase() as Transaction['body'];
      } else {
        // RFC 5321 4.1.1.11: a parameter we did not advertise is refused, not silently dropped.
        return this.reject(`555 5.5.4 Parameter ${printable(key, 20)} not recognized`);
      }
    }
    const start = { mailFrom: path.address, target: this.turn.target.name, body, declaredSize };
    this.tx = { ...start, rcptTo: [], sinkTx: this.sink.transaction?.(start) };
    this.mailRefused = false;
    await this.reply('250 2.1.0 Ok');
    return null;
  }

  private async rcpt(args: string): Promise<SessionEnd | null> {
    if (!this.tx)
      return this.mailRefused
        ? this.deferred('503 5.5.1 Need MAIL first')
        : this.reject('503 5.5.1 Need MAIL first');
    const path = parseRcptTo(args);
    if (!path.ok) return this.reject(`${path.code} ${path.text}`);
    if (path.params.size)
      return this.reject(
        `555 5.5.4 Parameter ${printable([...path.params.keys()][0]!, 20)} not recognized`,
      );
    if (this.tx.rcptTo.length >= this.limits.maxRecipients) {
      // RFC 5321 4.5.3.1.10: 452, and the provider sends the rest in another transaction.
      return this.deferred('452 4.5.3 Too many recipients');
    }
    if (this.tx.sinkTx) {
      // Issue 9 item 10: each recipient gets the destination's own answer, so one refused
      // address does not refuse the message for the others.
      const bound = this.bound(this.limits.commandTimeoutMs);
      const verdict = await this.timer
        .within(this.tx.sinkTx.recipient(path.address), bound.until)
        .catch((e: unknown) => {
          if (e instanceof TimeoutError && bound.byDeadline) throw this.expired(bound, 'relay');
          const error = asDequeueError(e);
          return {
            accepted: false as const,
            code: 451,
            text: '4.4.1 The destination did not answer in time',
            error,
          };
        });
      if (!verdict.accepted) {
        const why = `<${printable(path.address, 80)}>: ${verdict.error?.message ?? `${verdict.code} ${verdict.text}`}`;
        this.note('*', `recipient ${why}`);
        if (verdict.code >= 500) this.refuse(`recipient ${why}`);
        else this.deferRecipient(why);
        if (verdict.error && verdict.code < 500) this.tx.destinationFailure ??= verdict.error;
        return this.deferred(`${verdict.code} ${printable(verdict.text, 200)}`);
      }
    }
    this.tx.rcptTo.push(path.address);
    await this.reply('250 2.1.5 Ok');
    return null;
  }

  /** DATA: stream the message to the sink, then answer for it (250, 451, 552 or 554). */
  private async data(tx: Transaction): Promise<void> {
    this.tx = null;
    this.transactionEnded();
    const date = new Date(this.now());
    const id = messageId(date);
    const trace = receivedHeader({
      heloName: this.heloName ?? '',
      remoteAddress: this.turn.socket.remoteAddress,
      by: this.name,
      esmtp: this.esmtp,
      tls: this.tls,
      id,
      date,
    });
    const envelope: MailEnvelope = {
      id,
      mailFrom: tx.mailFrom,
      rcptTo: [...tx.rcptTo],
      ...(tx.body ? { body: tx.body } : {}),
      ...(tx.declaredSize !== undefined ? { declaredSize: tx.declaredSize } : {}),
      receivedAt: date.toISOString(),
      provider: this.turn.provider,
      target: this.turn.target.name,
      heloName: this.heloName ?? '',
      tls: this.tls,
      traceBytes: trace.length,
    };

    let draft: MessageDraft | null = null;
    const beginBound = this.bound(this.limits.commandTimeoutMs);
    try {
      const begun = tx.sinkTx ? tx.sinkTx.begin(envelope) : this.sink.begin(envelope);
      draft = await this.timer.within(begun, beginBound.until).catch((e: unknown) => {
        // A draft that comes after all is dropped at once.
        if (e instanceof TimeoutError)
          begun.then(
            (late) => late.abort(),
            () => undefined,
          );
        throw e;
      });
      await this.timer.within(draft.write([trace]), beginBound.until);
    } catch (e) {
      if (draft) await this.abortQuietly(draft);
      if (e instanceof TimeoutError && beginBound.byDeadline)
        throw this.expired(beginBound, 'sink');
      await this.failed(id, asDequeueError(e), 'was not accepted');
      return;
    }
    await this.reply('354 End data with <CR><LF>.<CR><LF>');

    const unstuffer = new DataUnstuffer();
    const max = this.limits.maxMessageBytes;
    let size = 0;
    let failure: DequeueError | null = null;
    for (;;) {
      const bound = this.bound(this.limits.commandTimeoutMs);
      let chunk: Buffer | null;
      try {
        chunk = await this.stream.readChunk(bound.until);
      } catch (e) {
        if (draft) await this.abortQuietly(draft);
        if (e instanceof TimeoutError)
          throw this.expired(bound, `message data for ${id} (after ${size} bytes)`);
        throw new SessionEnd(
          new DequeueError(
            'temporary',
            `connection to ${this.turn.provider} broke in the middle of message ${id} after ${size} bytes; the provider keeps it`,
            { cause: e },
          ),
        );
      }
      if (!chunk) {
        if (draft) await this.abortQuietly(draft);
        throw new SessionEnd(
          new DequeueError(
            'temporary',
            `${this.turn.provider} closed the connection in the middle of message ${id} after ${size} bytes; the provider keeps it`,
          ),
        );
      }
      const piece = unstuffer.push(chunk);
      // One write per chunk, of the slices between stuffed dots: neither a write per slice nor
      // a copy to join them (each cost a fifth of the throughput; bench/odmr-receive.ts).
      let bytes = 0;
      for (const slice of piece.content) bytes += slice.length;
      size += bytes;
      if (size > max && draft) {
        // Keep reading to the final dot (RFC 1870 section 6.3) but store nothing more; a
        // provider that sends twice the limit without ending is cut off.
        await this.abortQuietly(draft);
        draft = null;
      }
      if (draft && bytes) {
        try {
          await this.timer.within(draft.write(piece.content), bound.until);
        } catch (e) {
          await this.abortQuietly(draft);
          draft = null;
          if (e instanceof TimeoutError && bound.byDeadline) throw this.expired(bound, 'sink');
          failure = asDequeueError(e);
        }
      }
      if (piece.ended) {
        this.stream.unread(piece.rest);
        break;
      }
      if (size > 2 * max) {
        throw new SessionEnd(
          new ProtocolError(
            `${this.turn.provider} kept sending message ${id} past twice the size limit (${max} bytes)`,
          ),
          `552 5.3.4 Message size exceeds fixed maximum message size, closing`,
        );
      }
    }
    this.note('*', `message ${id}: ${size} bytes received`);

    if (size > max) {
      this.refuse(`message ${id} of ${size} bytes exceeds maxMessageBytes ${max}`);
      await this.reply(`552 5.3.4 Message size exceeds fixed maximum message size (${max})`);
      return;
    }
    if (failure || !draft) {
      await this.failed(
        id,
        failure ?? new DequeueError('temporary', 'the sink dropped the message'),
        'could not be stored',
      );
      return;
    }
    // RFC 5321 4.5.3.2.6: the provider waits 10 minutes for this reply; store within that.
    if (!this.stream.canReply) {
      // No reply can reach the provider any more: it keeps the message, so we keep nothing.
      await this.abortQuietly(draft);
      throw new SessionEnd(this.goneBeforeReply(id, 'not stored'));
    }
    const commitBound = this.bound(this.limits.dataEndTimeoutMs);
    try {
      const stored = await this.timer.within(draft.commit(), commitBound.until);
      if (!this.stream.canReply) {
        // Our 250 would never leave: kept, the message would certainly come again (a duplicate).
        if (draft.withdrawable) {
          await this.abortQuietly(draft);
          throw new SessionEnd(this.goneBeforeReply(id, 'withdrawn from the store'));
        }
        this.leftBehind.push(
          `message ${id} went to ${stored.location} but the connection closed before our 250: not counted, and the provider will send it again (a duplicate)`,
        );
        throw new SessionEnd(null);
      }
      this.stored++;
      this.note('*', `message ${id} stored: ${stored.location}`);
      // Sent now, not held for a pipelined group: a 250 we still held when the connection went
      // would be a message stored that the provider sends again.
      await this.reply(`250 2.0.0 Ok: stored as ${id}`, true);
    } catch (e) {
      if (e instanceof SessionEnd) throw e;
      // Withdraw whatever the commit made visible: without our 250 the provider still has it.
      await this.abortQuietly(draft);
      if (e instanceof TimeoutError && commitBound.byDeadline)
        throw this.expired(commitBound, 'sink');
      await this.failed(
        id,
        e instanceof TimeoutError
          ? new TimeoutError(`storing message ${id} took longer than ${duration(commitBound.ms)}`)
          : asDequeueError(e),
        'could not be stored',
      );
    }
  }

  /**
   * The sink refused or failed: 554 when it says the message can never be taken (a relay's
   * 5xx), else 451, after which the session closes at the next command: a sink that failed once
   * (S3 unreachable, disk full) is likely to fail again, and what is left stays queued.
   */
  private async failed(id: string, error: DequeueError, what: string): Promise<void> {
    this.note('*', `message ${id} ${what}: ${error.message}`);
    if (error.kind === 'permanent') {
      this.refuse(`message ${id}: ${error.message}`);
      await this.reply(
        `554 5.3.0 Message refused by the destination: ${printable(error.message, 200)}`,
      );
      return;
    }
    this.sinkFailure = new DequeueError(
      'temporary',
      `message ${id} ${what}, the provider keeps it: ${error.message}`,
      { cause: error },
    );
    await this.reply('451 4.3.0 Local error in processing, message not stored; try again later');
  }

  private async abortQuietly(draft: MessageDraft): Promise<void> {
    // Bounded: a sink that hangs on abort must not hold the session past its deadline.
    const until = Math.min(this.now() + this.limits.commandTimeoutMs, this.turn.deadline);
    await this.timer.within(draft.abort(), until).catch((e: unknown) => {
      const why = asDequeueError(e).message;
      this.note('*', `abort failed: ${why}`);
      // It may still be visible, unacknowledged: the run's result says so (finalError).
      this.leftBehind.push(
        e instanceof TimeoutError
          ? 'an unacknowledged message could not be withdrawn in time; the store may show it'
          : why,
      );
    });
  }

  private goneBeforeReply(id: string, what: string): DequeueError {
    return new DequeueError(
      'temporary',
      `connection to ${this.turn.provider} closed before our reply to message ${id} could be sent: ${what}, the provider keeps it`,
    );
  }
}

/** Random bytes for message ids, taken 6 at a time from a pool filled 1.5 KiB at a time. */
const idPool = Buffer.alloc(1536);
let idAt = idPool.length;

/** Sortable by time, unique: `20240102T030405123Z-1a2b3c4d5e6f`. */
export function messageId(date: Date): string {
  // One call into the random generator per 256 messages, not one each (a profile showed it).
  if (idAt + 6 > idPool.length) {
    randomFillSync(idPool);
    idAt = 0;
  }
  const random = idPool.toString('hex', idAt, (idAt += 6));
  return `${date.toISOString().replace(/[-:.]/g, '')}-${random}`;
}

/** "300 ms", "5 s", "10 min": how long a bound was, for messages. */
function duration(ms: number): string {
  if (ms < 10_000) return `${ms} ms`;
  return ms % 60_000 === 0 ? `${ms / 60_000} min` : `${Math.round(ms / 1000)} s`;
}
