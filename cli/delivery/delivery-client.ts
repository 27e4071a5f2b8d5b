/**
 * The client side of `dequeue deliver`: stored messages to the customer's own mail server over
 * SMTP (STARTTLS when offered), SMTPS, or LMTP (RFC 2033, TCP or a unix socket), one connection
 * (of the run's `--connections`, run-connection.ts) for many messages, each with its own envelope.
 *
 * The connection opens with the one client handshake (lambda/core/smtp/client-handshake.ts:
 * greeting, EHLO or LHLO, STARTTLS), and replies are read through the same bounded reply channel
 * as the release signal and the relay.
 *
 * Per message (RFC 5321 3.3): MAIL FROM with the stored reverse-path (the null path `<>` kept),
 * one RCPT TO per recipient still waiting, DATA, the text canonical and dot-stuffed
 * (message-text.ts), the final dot. With PIPELINING (RFC 2920) MAIL, the RCPTs and
 * DATA go in one write. The answer for each recipient is its RCPT reply when that refused it, else
 * the reply to the final dot: one reply for all of them in SMTP, one per accepted recipient, in
 * RCPT order, in LMTP (RFC 2033 4.2). A recipient with no final answer (a 4xx, a cut, a timeout)
 * is not final: the caller keeps the message for it.
 */
import {
  boundedText,
  openClientSession,
  type ClientSession,
} from '../../lambda/core/smtp/client-handshake';
import { asDequeueError, DequeueError, ProtocolError } from '../../lambda/core/errors';
import type { SmtpReply } from '../../lambda/core/smtp/reply';
import { canAnswer, groupMissingReply } from '../../lambda/core/smtp/reply-pairing';
import type { TlsState } from '../../lambda/core/smtp/tls-policy';
import type { Destination } from './destination';
import { DELIVERY_TIMEOUTS, type DeliveryOptions, type DeliveryTimeouts } from './delivery-options';
import { DELIVER_TLS_WORDS, deliveryTls } from './delivery-tls';
import { streamText, writeAll } from './message-text';
import {
  type Answer,
  dataRefused,
  dotOutcomes,
  type EnvelopeLines,
  type EnvelopeReplies,
  envelopeLines,
  envelopeMisfit,
  mailRefused,
  type Misfit,
  NO_RECIPIENT,
  type Outgoing,
  type RecipientOutcome,
  rcptOutcomes,
  type TransactionResult,
  transactionResult,
  unanswered,
} from './transaction';

export class DeliveryConnection {
  private broken: DequeueError | null = null;

  private constructor(
    private readonly session: ClientSession,
    private readonly destination: Destination,
    private readonly options: DeliveryOptions,
    private readonly timeouts: DeliveryTimeouts,
  ) {
    session.socket.on('close', () => {
      this.broken ??= new DequeueError('temporary', `${destination.display} closed the connection`);
    });
  }

  static async open(
    destination: Destination,
    options: DeliveryOptions,
  ): Promise<DeliveryConnection> {
    const timeouts = { ...DELIVERY_TIMEOUTS, ...options.timeouts };
    const lmtp = destination.protocol === 'lmtp';
    const tls = options.tls ?? deliveryTls(destination);
    const session = await openClientSession({
      host: destination.host,
      port: destination.port,
      socketPath: destination.socketPath,
      tls: tls.mode,
      tlsVerify: tls.verify,
      tlsCa: tls.ca ?? options.tlsCa,
      tlsWords: DELIVER_TLS_WORDS,
      ehlo: true,
      hello: lmtp ? 'LHLO' : 'EHLO',
      helloName: options.helloName,
      peer: destination.display,
      label: 'deliver',
      transcript: options.transcript,
      bound: (step) =>
        step === 'connect'
          ? timeouts.connect
          : step === 'greeting'
            ? timeouts.greeting
            : step === 'tls'
              ? timeouts.connect
              : timeouts.command,
    });
    // RFC 7435 allows cleartext when the server offers no TLS, but a STARTTLS stripped by
    // someone on the path looks exactly like that: the operator is told, every time.
    if (tls.mode === 'opportunistic' && !session.encrypted)
      options.onNotice?.(
        `${destination.display} ${session.extensions.has('STARTTLS') ? 'refused STARTTLS' : 'does not offer STARTTLS'}: the mail goes in cleartext (--tls opportunistic; --tls required refuses such a server)`,
      );
    return new DeliveryConnection(session, destination, options, timeouts);
  }

  /** What protects this connection: TLS with a verified certificate, TLS without, or nothing. */
  get tls(): TlsState {
    return this.session.verified ? 'verified' : this.session.encrypted ? 'unverified' : 'none';
  }

  /** Still good for another message. */
  get usable(): boolean {
    return !this.broken && !this.session.channel.broken && !this.session.socket.destroyed;
  }

  get lmtp(): boolean {
    return this.destination.protocol === 'lmtp';
  }

  /**
   * One message, in its phases: the envelope (MAIL, RCPT..., DATA; one pipelined group with
   * PIPELINING, RFC 2920), the pairing check of its replies, the recipients' outcomes from them,
   * then the text and the final dot. Never rejects: what happened to each recipient is the value.
   * `answered` is called once the server has answered the envelope (the run starts the next
   * message on another connection only then, deliver-run.ts).
   */
  async send(m: Outgoing, answered: () => void = () => undefined): Promise<TransactionResult> {
    const result = await this.transaction(m, answered);
    return result.unsent ? result : { ...result, tls: this.tls };
  }

  private async transaction(m: Outgoing, answered: () => void): Promise<TransactionResult> {
    const envelope = envelopeLines(m, this.session.extensions, this.destination.display);
    if ('notSent' in envelope) return envelope.notSent;
    const { lines } = envelope;

    let sent: { replies: EnvelopeReplies; pipelined: boolean };
    try {
      sent = await this.envelope(lines);
    } catch (e) {
      // No reply to MAIL: the server cannot have taken this message.
      const error = asDequeueError(e);
      this.broken ??= error;
      return { recipients: unanswered(m.recipients, error.message), error, unsent: true };
    }
    answered();
    const { replies } = sent;
    const missing = sent.pipelined ? groupMissingReply([...replies.rcpts, replies.data]) : null;
    if (missing) {
      this.broken ??= missing;
      return { recipients: unanswered(m.recipients, missing.message), error: missing };
    }

    const misfit = envelopeMisfit(m.recipients, replies);
    if (misfit) return this.untrusted(m.recipients, this.mismatch(misfit));
    if (replies.mail.code >= 300) {
      await this.reset();
      return this.trusted(m.recipients, mailRefused(m.recipients, replies.mail));
    }

    const { outcomes, accepted } = rcptOutcomes(m.recipients, replies.rcpts);
    const data = replies.data;
    if (data instanceof DequeueError || data.code !== 354) {
      if (data instanceof DequeueError && data !== NO_RECIPIENT) this.broken ??= data;
      const refused = dataRefused(accepted, data);
      if (this.usable) await this.reset();
      return this.trusted(
        m.recipients,
        transactionResult(m.recipients, [...outcomes, ...refused.outcomes], refused.error),
      );
    }
    if (accepted.length === 0) {
      // A pipelining server that said 354 although it took no recipient: end the empty data.
      await this.endData(1).catch(() => undefined);
      await this.reset();
      return this.trusted(m.recipients, transactionResult(m.recipients, outcomes, null));
    }
    return this.text(m, outcomes, accepted);
  }

  /**
   * MAIL, the RCPTs and DATA: with PIPELINING in one write (RFC 2920), else one at a time (RCPT
   * only after MAIL was accepted, DATA only when some RCPT was). Throws when MAIL got no reply.
   */
  private async envelope(
    lines: EnvelopeLines,
  ): Promise<{ replies: EnvelopeReplies; pipelined: boolean }> {
    const channel = this.session.channel;
    const ms = this.timeouts.command;
    if (this.session.extensions.has('PIPELINING')) {
      const pending = channel.pipeline([lines.mail, ...lines.rcpts, 'DATA'], ms).map((p) =>
        p.then(
          (r) => r,
          (e: unknown) => asDequeueError(e),
        ),
      );
      const mail = await pending[0]!;
      if (mail instanceof DequeueError) throw mail;
      const rcpts: Answer[] = [];
      for (let i = 0; i < lines.rcpts.length; i++) rcpts.push(await pending[i + 1]!);
      const data = await pending[lines.rcpts.length + 1]!;
      return { replies: { mail, rcpts, data }, pipelined: true };
    }
    const mail = await channel.command(lines.mail, ms);
    const rcpts: Answer[] = [];
    if (mail.code < 300) {
      for (const line of lines.rcpts)
        rcpts.push(await channel.command(line, ms).catch((e: unknown) => asDequeueError(e)));
    }
    const anyAccepted = rcpts.some((r) => !(r instanceof DequeueError) && r.code < 300);
    const data = anyAccepted
      ? await channel
          .command('DATA', this.timeouts.dataStart)
          .catch((e: unknown) => asDequeueError(e))
      : NO_RECIPIENT;
    return { replies: { mail, rcpts, data }, pipelined: false };
  }

  /** The text and the final dot, then each accepted recipient's answer from the dot's replies. */
  private async text(
    m: Outgoing,
    outcomes: readonly RecipientOutcome[],
    accepted: readonly string[],
  ): Promise<TransactionResult> {
    try {
      await this.stream(m);
    } catch (e) {
      // Cut the connection in the middle of DATA (RFC 5321 4.1.1.4): the server must not deliver
      // what it got. Our own read failing (the store) and the server failing end alike.
      const error = asDequeueError(e);
      this.cut(error);
      return this.trusted(
        m.recipients,
        transactionResult(
          m.recipients,
          [...outcomes, ...unanswered(accepted, error.message)],
          error,
        ),
      );
    }
    // Never rejects: a missing reply is a value.
    const replies = await this.endData(this.lmtp ? accepted.length : 1);
    const answered = dotOutcomes(accepted, replies, this.lmtp);
    if ('misfit' in answered) return this.untrusted(m.recipients, this.mismatch(answered.misfit));
    if (answered.error) this.broken ??= answered.error;
    return this.trusted(
      m.recipients,
      transactionResult(m.recipients, [...outcomes, ...answered.outcomes], answered.error),
    );
  }

  /**
   * A reply that cannot answer its command (a 354 to RCPT, a 250 to DATA, a 3xx to the final
   * dot, RSET refused), one nobody asked for, or a RCPT accepted after MAIL was refused means
   * the server's replies and our commands no longer pair up (a reply sent twice, or not at all):
   * none of this transaction's answers can be trusted. The connection is cut and every
   * recipient of the message waits for the next run; the server may have taken it (a
   * duplicate then), but no answer is shown for the wrong command and nothing is marked on one
   * (lambda/core/smtp/reply-pairing.ts: the rules, and where the signal keeps them too).
   */
  private untrusted(recipients: readonly string[], error: ProtocolError): TransactionResult {
    this.cut(error);
    return { recipients: unanswered(recipients, `not trusted: ${error.message}`), error };
  }

  /** The result as decided, unless the replies stopped pairing meanwhile (then untrusted). */
  private trusted(recipients: readonly string[], r: TransactionResult): TransactionResult {
    const lost =
      this.broken instanceof ProtocolError
        ? this.broken
        : this.session.channel.broken instanceof ProtocolError
          ? this.session.channel.broken
          : null;
    return lost ? this.untrusted(recipients, lost) : r;
  }

  private mismatch({ command, reply }: Misfit): ProtocolError {
    return new ProtocolError(
      `${this.destination.display} answered ${command} with ${reply.code} ${boundedText(reply)}, which cannot answer it: its replies no longer pair with our commands`,
    );
  }

  /**
   * The message text, canonical and stuffed (message-text.ts); throws when it cannot finish. The
   * final dot is written by endData, once its replies are awaited.
   */
  private async stream(m: Outgoing): Promise<void> {
    const closed = () =>
      this.broken ??
      this.session.channel.broken ??
      new DequeueError(
        'temporary',
        `${this.destination.display} closed the connection during DATA`,
      );
    const { bytes, end } = await streamText(m.text(), {
      socket: this.session.socket,
      usable: () => this.usable,
      closed,
      channelBroken: () => this.session.channel.broken,
      dataBlockMs: this.timeouts.dataBlock,
      display: this.destination.display,
    });
    this.options.transcript.line('deliver', '*', `message ${m.id}: ${bytes} bytes sent`);
    this.pendingEnd = end;
  }

  private pendingEnd: Buffer[] = [];

  /** Write the end of the data and read `count` replies (LMTP: one per accepted recipient). */
  private async endData(count: number): Promise<(SmtpReply | DequeueError)[]> {
    const channel = this.session.channel;
    const end = this.pendingEnd.length ? this.pendingEnd : [Buffer.from('.\r\n')];
    this.pendingEnd = [];
    // Every waiter first: replies that arrive together are each paired with their own.
    const replies = Array.from({ length: count }, (_, i) =>
      channel
        .expect(
          count > 1 ? `the final dot (recipient ${i + 1} of ${count})` : 'the final dot',
          this.timeouts.finalDot,
        )
        .then(
          (r) => r,
          (e: unknown) => asDequeueError(e),
        ),
    );
    this.options.transcript.line('deliver', 'C', '.');
    writeAll(this.session.socket, end);
    return Promise.all(replies);
  }

  /**
   * RSET after a transaction that did not complete, so the next one starts clean; false when the
   * connection is gone or RSET was refused (then cut: a refused RSET, or a reply that cannot
   * answer it, means the replies no longer pair with the commands).
   */
  private async reset(): Promise<boolean> {
    if (!this.usable) return false;
    const reply = await this.session.channel
      .command('RSET', this.timeouts.command)
      .catch((e: unknown) => asDequeueError(e));
    if (reply instanceof DequeueError) {
      this.cut(reply);
      return false;
    }
    if (!canAnswer('RSET', reply.code)) {
      this.cut(
        new ProtocolError(
          `${this.destination.display} answered RSET with ${reply.code} ${boundedText(reply)}: its replies no longer pair with our commands`,
        ),
      );
      return false;
    }
    return true;
  }

  private cut(error: DequeueError): void {
    this.broken ??= error;
    this.session.channel.detach();
    this.session.socket.on('error', () => undefined);
    this.session.socket.destroy();
  }

  /** QUIT (briefly bounded) and close; never rejects. */
  async close(): Promise<void> {
    const socket = this.session.socket;
    if (this.usable) {
      await this.session.channel.command('QUIT', this.timeouts.quit).catch(() => undefined);
    }
    this.session.channel.detach();
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => {
      if (socket.destroyed) return resolve();
      const timer = setTimeout(() => socket.destroy(), this.timeouts.quit);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.end();
    });
  }
}
