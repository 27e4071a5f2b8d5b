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
 * Our own small server rather than smtp-server's `SMTPServer.connect()`: the session decides every
 * bound itself. smtp-server's only wait is one idle socket timeout (not RFC 5321's separate
 * per-command and after-the-dot bounds, nor a run deadline), a message over SIZE is only flagged
 * once it has all arrived, the bytes read past the ATRN reply would have to be pushed back into
 * the socket by hand, and it starts a reverse DNS lookup of the provider of its own.
 */
import { asDequeueError, DequeueError, ProviderCutError, TimeoutError } from '../errors';
import type { MailReceiver, MailSink, ReversedOutcome, ReversedTurn } from '../ports';
import type { MemoryBudget } from '../memory-budget';
import { customerDomains, foreignRecipient } from '../customer-domains';
import { parseMailFrom, parseRcptTo, printable, splitCommand } from '../smtp/command';
import { CommandBudget } from './command-budget';
import { destinationVerdict, sinkAdmission } from './sink-answers';
import { mailParameters } from './mail-parameters';
import { receiveMessage } from './message-data';
import type { Transaction } from './message-envelope';
import { LineTooLongError } from './provider-stream';
import { type ReceiverLimits, type ReceiverOptions, receiverLimits } from './receiver-limits';
import { SessionReport } from './session-report';
import { SessionEnd, SessionWire } from './session-wire';

/** After our last reply (221, 421), how long the provider gets to close before we do. */
const CLOSE_GRACE_MS = 1_000;

/** The `MailReceiver` port: serves each ATRN turn into `sink`. */
export function createMailReceiver(sink: MailSink, options: ReceiverOptions = {}): MailReceiver {
  const limits = receiverLimits(options);
  const now = options.now ?? Date.now;
  // The session must attach to the socket before anything is awaited (provider-stream.ts).
  return (turn) => new ReversedSession(turn, sink, limits, now, options.memory).run();
}

class ReversedSession {
  private readonly report = new SessionReport();
  private readonly wire: SessionWire;
  private heloName: string | null = null;
  private esmtp = false;
  private tx: Transaction | null = null;
  /**
   * Refusals counted against the provider: bad commands, and flow control (452 for recipients
   * over maxRecipients, RFC 5321 4.5.3.1.10, and the 503/554 that the rest of a pipelined group
   * gets after its MAIL was refused or all its RCPTs were, RFC 2920 3.1), free up to a bound.
   */
  private readonly budget: CommandBudget;
  /** The last MAIL was refused and no MAIL, RSET or EHLO came since: RCPT and DATA get 503. */
  private mailRefused = false;
  /** Whose mail this is: the ATRN command's domains or the target's mail.domains (RFC 2645 4). */
  private readonly domains: readonly string[];
  /** Abandoned transactions the sink is still letting go of (files it opened at MAIL). */
  private readonly lettingGo = new Set<Promise<void>>();

  constructor(
    private readonly turn: ReversedTurn,
    private readonly sink: MailSink,
    private readonly limits: ReceiverLimits,
    private readonly now: () => number,
    memory?: MemoryBudget,
  ) {
    this.wire = new SessionWire(turn, limits, now, this.report, memory);
    this.budget = new CommandBudget(this.wire);
    this.domains = customerDomains(turn.target);
  }

  async run(): Promise<ReversedOutcome> {
    let end: SessionEnd;
    try {
      if (this.now() >= this.wire.stopAt) {
        // RFC 5321 3.1: a server that will not take mail now may greet with 421.
        throw new SessionEnd(this.wire.deadlineError(), this.wire.closingReply());
      }
      await this.wire.reply(
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
    if (end.reply) await this.wire.reply(end.reply).catch(() => undefined);
    // The provider gets a moment to read our last reply and close first (it is the client).
    await this.wire.stream.close(Math.min(this.now() + CLOSE_GRACE_MS, this.turn.deadline));
    // Nothing the sink opened for a transaction outlives the session, and nothing it put off for
    // after its answers is left undone (bounded all the same).
    const letGo = Promise.all([...this.lettingGo, this.sink.settle?.(this.turn.target.name)]);
    await this.wire.timer.within(letGo, this.turn.deadline).catch(() => undefined);
    this.wire.timer.stop();
    this.wire.dispose();
    const refused = this.report.foreignRecipients;
    return {
      stored: this.report.stored,
      error: this.report.error(end.error),
      ...(refused ? { refusedRecipients: refused } : {}),
    };
  }

  private get name(): string {
    return this.turn.helloName;
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
      this.report.sinkFailure ??= new DequeueError(
        'temporary',
        `the destination could not take mail, the provider keeps it: ${failure.message}`,
        { cause: failure },
      );
    this.tx = null;
  }

  private async serve(): Promise<SessionEnd> {
    for (;;) {
      const bound = this.wire.bound(this.limits.commandTimeoutMs);
      let line: string | null;
      try {
        line = await this.wire.stream.readLine(bound.until);
      } catch (e) {
        if (e instanceof TimeoutError) throw this.wire.expired(bound, 'command');
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
          new ProviderCutError(
            `${this.turn.provider} closed the connection in the middle of a transaction; the message stays with it`,
          ),
        );
      }
      // INetSim (and others) send a stray empty line after the final dot: not a command, and
      // answering it would put every later reply one step out of line.
      if (line.trim() === '') continue;
      this.wire.note('C', printable(line));
      const done = await this.command(line);
      if (done) return done;
    }
  }

  /** One command; returns a SessionEnd when the session is over. */
  private async command(line: string): Promise<SessionEnd | null> {
    const { verb, args } = splitCommand(line);
    if (this.report.sinkFailure && verb !== 'QUIT') {
      return new SessionEnd(
        this.report.sinkFailure,
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
        await this.wire.reply('250 2.0.0 Ok');
        return null;
      case 'NOOP':
        await this.wire.reply('250 2.0.0 Ok');
        return null;
      case 'QUIT':
        return new SessionEnd(null, `221 2.0.0 ${this.name} closing`);
      case 'VRFY':
        // RFC 5321 3.5.3: 252 when we will not verify but would accept.
        await this.wire.reply('252 2.5.0 Cannot VRFY, but send it');
        return null;
      default:
        return this.reject(
          verb === '?'
            ? '500 5.5.2 Syntax error'
            : `502 5.5.1 ${printable(verb, 16)} not implemented`,
        );
    }
  }

  private reject(reply: string): Promise<SessionEnd | null> {
    return this.budget.reject(reply);
  }

  /** A refusal that is flow control (CommandBudget): free, up to its bound. */
  private deferred(reply: string): Promise<SessionEnd | null> {
    return this.budget.deferred(reply);
  }

  private async hello(verb: 'EHLO' | 'HELO', args: string): Promise<SessionEnd | null> {
    const name = args.trim().split(/\s+/)[0] ?? '';
    if (!name) return this.reject(`501 5.5.4 Syntax: ${verb} hostname`);
    this.heloName = name;
    this.esmtp = verb === 'EHLO';
    this.dropTransaction();
    this.mailRefused = false;
    if (verb === 'HELO') {
      await this.wire.reply(`250 ${this.name}`);
      return null;
    }
    await this.wire.reply(
      [
        `250-${this.name} greets ${printable(name, 64)}`,
        `250-SIZE ${this.limits.maxMessageBytes}`,
        '250-8BITMIME',
        // RFC 6531: a message with UTF-8 addresses or headers is not held back, nor mangled by
        // a provider's "downconversion" (Exim punycodes a UTF-8 local part when not offered).
        '250-SMTPUTF8',
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
    const parameters = mailParameters(
      path.params,
      path.address,
      this.esmtp,
      this.limits.maxMessageBytes,
    );
    if (!parameters.ok) {
      if (!parameters.refusal) return this.reject(parameters.reply);
      this.report.refuse(parameters.refusal);
      await this.wire.reply(parameters.reply);
      return null;
    }
    const { body, declaredSize, smtputf8 } = parameters;
    const start = {
      mailFrom: path.address,
      target: this.turn.target.name,
      body,
      declaredSize,
      ...(smtputf8 ? { smtputf8 } : {}),
    };
    if (this.sink.admit) {
      const refusal = await sinkAdmission(this.wire, this.limits, this.sink.admit, start);
      if (refusal) {
        // The provider keeps it (4xx); a store below its bound takes nothing more this session.
        this.wire.note('*', refusal.error.message);
        if (refusal.closing) this.report.sinkFailure ??= refusal.error;
        else this.report.putOff(refusal.error.message);
        return this.deferred(`${refusal.code} ${printable(refusal.text, 200)}`);
      }
    }
    this.tx = { ...start, rcptTo: [], sinkTx: this.sink.transaction?.(start) };
    this.mailRefused = false;
    await this.wire.reply('250 2.1.0 Ok');
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
    const foreign = foreignRecipient(path.address, this.domains);
    if (foreign) {
      // RFC 2645 section 4: the provider delivers the mail of the customer's domains; anything
      // else stored here would be handed to the customer's server, which may relay it. Refused
      // for good (the provider returns it), as flow control: the customer's own mail still comes.
      const who = `<${printable(path.address, 80)}>`;
      this.wire.note('*', `recipient ${who} ${foreign}`);
      this.report.refuseForeign(`recipient ${who} ${foreign}`);
      return this.deferred(`550 5.7.1 ${who} not accepted: ${printable(foreign, 160)}`);
    }
    if (this.tx.rcptTo.length >= this.limits.maxRecipients) {
      // RFC 5321 4.5.3.1.10: 452, and the provider sends the rest in another transaction.
      return this.deferred('452 4.5.3 Too many recipients');
    }
    if (this.tx.sinkTx) {
      // Issue 9 item 10: each recipient gets the destination's own answer.
      const verdict = await destinationVerdict(
        this.wire,
        this.limits,
        this.tx.sinkTx,
        path.address,
      );
      if (!verdict.accepted) {
        const why = `<${printable(path.address, 80)}>: ${verdict.error?.message ?? `${verdict.code} ${verdict.text}`}`;
        this.wire.note('*', `recipient ${why}`);
        if (verdict.code >= 500) this.report.refuse(`recipient ${why}`);
        else this.report.deferRecipient(why);
        if (verdict.error && verdict.code < 500) this.tx.destinationFailure ??= verdict.error;
        return this.deferred(`${verdict.code} ${printable(verdict.text, 200)}`);
      }
    }
    this.tx.rcptTo.push(path.address);
    await this.wire.reply('250 2.1.5 Ok');
    return null;
  }

  /** DATA: the transaction is over whatever happens; the message goes to the sink. */
  private async data(tx: Transaction): Promise<void> {
    this.tx = null;
    this.budget.transactionEnded();
    await receiveMessage(
      {
        wire: this.wire,
        sink: this.sink,
        report: this.report,
        limits: this.limits,
        heloName: this.heloName ?? '',
        esmtp: this.esmtp,
      },
      tx,
    );
  }
}
