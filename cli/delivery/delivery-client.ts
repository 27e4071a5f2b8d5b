/**
 * The client side of `dequeue deliver`: stored messages to the customer's own mail server over
 * SMTP (STARTTLS when offered), SMTPS, or LMTP (RFC 2033, TCP or a unix socket), one connection
 * for the whole run, each message with its own envelope.
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
import type { Transcript } from '../../lambda/core/ports';
import type { SmtpReply } from '../../lambda/core/smtp/reply';
import { SMTP_TIMEOUTS } from '../../lambda/core/smtp/timeouts';
import type { Destination } from './destination';
import { streamText, writeAll } from './message-text';
import type { Outgoing, RecipientOutcome, TransactionResult } from './transaction';

/** RFC 5321 4.5.3.2: the client's bound for each step (SMTP_TIMEOUTS); ours to connect and QUIT. */
const { greeting, command, dataStart, dataBlock, finalDot } = SMTP_TIMEOUTS;
export const DELIVERY_TIMEOUTS = {
  connect: 30_000,
  greeting,
  command,
  dataStart,
  dataBlock,
  finalDot,
  quit: 2_000,
};
export type DeliveryTimeouts = typeof DELIVERY_TIMEOUTS;

export interface DeliveryOptions {
  readonly helloName: string;
  readonly tlsCa?: string;
  /** Verify the server's certificate (STARTTLS, SMTPS). Default true. */
  readonly tlsVerify?: boolean;
  readonly transcript: Transcript;
  readonly timeouts?: Partial<DeliveryTimeouts>;
}

const isFinal = (code: number) => code < 400 || code >= 500;
/** DATA not sent because every RCPT was refused (not a fault of the connection). */
const NO_RECIPIENT = new DequeueError('temporary', 'no recipient accepted');

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
    const session = await openClientSession({
      host: destination.host,
      port: destination.port,
      socketPath: destination.socketPath,
      tls: destination.protocol === 'smtps' ? 'implicit' : lmtp ? 'none' : 'opportunistic',
      tlsVerify: options.tlsVerify ?? true,
      tlsCa: options.tlsCa,
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
    return new DeliveryConnection(session, destination, options, timeouts);
  }

  /** Still good for another message. */
  get usable(): boolean {
    return !this.broken && !this.session.channel.broken && !this.session.socket.destroyed;
  }

  get lmtp(): boolean {
    return this.destination.protocol === 'lmtp';
  }

  async send(m: Outgoing): Promise<TransactionResult> {
    const ext = this.session.extensions;
    const none = (error: DequeueError): TransactionResult => ({
      recipients: m.recipients.map((address) => ({
        address,
        code: null,
        text: error.message,
        final: false,
      })),
      error,
    });
    if (m.body === '8BITMIME' && !ext.has('8BITMIME')) {
      // RFC 6152 3: 8-bit data must not go to a server that did not offer it.
      return none(
        new DequeueError(
          'temporary',
          `${this.destination.display} does not offer 8BITMIME and message ${m.id} is 8-bit; it is kept until the server takes 8-bit mail`,
        ),
      );
    }
    if (m.smtputf8 && !ext.has('SMTPUTF8')) {
      // RFC 6531 3.2: a message that needs SMTPUTF8 must not go to a server that does not offer
      // it; no server will take it as it is, so it fails for every recipient (the sender is owed
      // a DSN), with the enhanced code RFC 6533 gives for it.
      const text = `5.6.7 not sent: ${this.destination.display} does not offer SMTPUTF8 (RFC 6531) and message ${m.id} needs it`;
      return {
        recipients: m.recipients.map((address) => ({ address, code: 553, text, final: true })),
        error: null,
      };
    }
    const params = [
      ...(m.body === '8BITMIME' ? ['BODY=8BITMIME'] : []),
      // RFC 6531 3.4: a keyword without a value.
      ...(m.smtputf8 ? ['SMTPUTF8'] : []),
      ...(ext.has('SIZE') && m.size !== undefined ? [`SIZE=${m.size}`] : []),
    ];
    const mail = `MAIL FROM:<${m.mailFrom}>${params.map((p) => ` ${p}`).join('')}`;
    const rcpts = m.recipients.map((r) => `RCPT TO:<${r}>`);
    const channel = this.session.channel;
    const ms = this.timeouts.command;

    let mailReply: SmtpReply;
    const rcptReplies: (SmtpReply | DequeueError)[] = [];
    let dataReply: SmtpReply | DequeueError;
    const pipelined = ext.has('PIPELINING');
    try {
      if (pipelined) {
        const pending = channel.pipeline([mail, ...rcpts, 'DATA'], ms).map((p) =>
          p.then(
            (r) => r,
            (e: unknown) => asDequeueError(e),
          ),
        );
        const first = await pending[0]!;
        if (first instanceof DequeueError) throw first;
        mailReply = first;
        for (let i = 0; i < rcpts.length; i++) rcptReplies.push(await pending[i + 1]!);
        dataReply = await pending[rcpts.length + 1]!;
        // A reply of the group missing (a timeout, a cut): one dropped earlier in the group would
        // have shifted the rest onto the wrong commands, so none of them is shown or acted on.
        const missing = [...rcptReplies, dataReply].find(
          (r): r is DequeueError => r instanceof DequeueError,
        );
        if (missing) {
          this.broken ??= missing;
          return none(missing);
        }
      } else {
        mailReply = await channel.command(mail, ms);
        if (mailReply.code < 300) {
          for (const line of rcpts)
            rcptReplies.push(
              await channel.command(line, ms).catch((e: unknown) => asDequeueError(e)),
            );
        }
        const anyAccepted = rcptReplies.some((r) => !(r instanceof DequeueError) && r.code < 300);
        dataReply = anyAccepted
          ? await channel
              .command('DATA', this.timeouts.dataStart)
              .catch((e: unknown) => asDequeueError(e))
          : NO_RECIPIENT;
      }
    } catch (e) {
      this.broken ??= asDequeueError(e);
      return { ...none(asDequeueError(e)), unsent: true };
    }

    /**
     * A reply that cannot answer its command (a 354 to RCPT, a 250 to DATA, a 3xx to the final
     * dot, RSET refused), one nobody asked for, or a RCPT accepted after MAIL was refused means
     * the server's replies and our commands no longer pair up (a reply sent twice, or not at all):
     * none of this transaction's answers can be trusted. The connection is cut and every
     * recipient of the message waits for the next run; the server may have taken it (a
     * duplicate then), but no answer is shown for the wrong command and nothing is marked on one.
     */
    const untrusted = (error: ProtocolError): TransactionResult => {
      this.cut(error);
      return {
        recipients: m.recipients.map((address) => ({
          address,
          code: null,
          text: `not trusted: ${error.message}`,
          final: false,
        })),
        error,
      };
    };
    const trusted = (r: TransactionResult): TransactionResult => {
      const lost =
        this.broken instanceof ProtocolError
          ? this.broken
          : this.session.channel.broken instanceof ProtocolError
            ? this.session.channel.broken
            : null;
      return lost ? untrusted(lost) : r;
    };
    const mismatch = (command: string, reply: SmtpReply) =>
      new ProtocolError(
        `${this.destination.display} answered ${command} with ${reply.code} ${boundedText(reply)}, which cannot answer it: its replies no longer pair with our commands`,
      );
    // RFC 5321 4.2.1 and 4.3.2: which reply codes each command can have.
    const refusal = (code: number) => code >= 400 && code < 600;
    if (!(mailReply.code < 300 && mailReply.code >= 200) && !refusal(mailReply.code))
      return untrusted(mismatch('MAIL', mailReply));
    for (const [i, r] of rcptReplies.entries()) {
      if (r instanceof DequeueError) continue;
      if (!(r.code >= 200 && r.code < 300) && !refusal(r.code))
        return untrusted(mismatch(`RCPT TO:<${m.recipients[i]}>`, r));
      if (mailReply.code >= 300 && r.code < 300)
        return untrusted(mismatch(`RCPT TO:<${m.recipients[i]}> after MAIL was refused`, r));
    }
    if (!(dataReply instanceof DequeueError) && dataReply.code !== 354 && !refusal(dataReply.code))
      return untrusted(mismatch('DATA', dataReply));

    if (mailReply.code >= 300) {
      if (!(dataReply instanceof DequeueError) && dataReply.code === 354)
        return untrusted(mismatch('DATA after MAIL was refused', dataReply));
      // Every recipient gets the MAIL reply: 5xx refuses the message for all of them.
      const text = boundedText(mailReply);
      await this.reset();
      return trusted({
        recipients: m.recipients.map((address) => ({
          address,
          code: mailReply.code,
          text,
          final: isFinal(mailReply.code),
        })),
        error: isFinal(mailReply.code)
          ? null
          : new DequeueError('temporary', `MAIL FROM refused for now: ${mailReply.code} ${text}`),
      });
    }

    const outcomes = new Map<string, RecipientOutcome>();
    const accepted: string[] = [];
    m.recipients.forEach((address, i) => {
      const r = rcptReplies[i];
      if (r === undefined || r instanceof DequeueError) {
        outcomes.set(address, {
          address,
          code: null,
          text: r?.message ?? 'no reply to RCPT',
          final: false,
        });
      } else if (r.code < 300) {
        accepted.push(address);
      } else {
        outcomes.set(address, {
          address,
          code: r.code,
          text: boundedText(r),
          final: isFinal(r.code),
        });
      }
    });
    const result = (error: DequeueError | null): TransactionResult =>
      trusted({
        recipients: m.recipients.map((address) => outcomes.get(address)!),
        error:
          error ??
          (m.recipients.some((a) => !outcomes.get(a)!.final)
            ? new DequeueError('temporary', 'some recipients were deferred')
            : null),
      });

    if (dataReply instanceof DequeueError || dataReply.code !== 354) {
      if (dataReply instanceof DequeueError && dataReply !== NO_RECIPIENT)
        this.broken ??= dataReply;
      const why =
        dataReply instanceof DequeueError
          ? dataReply.message
          : `DATA refused: ${dataReply.code} ${boundedText(dataReply)}`;
      for (const address of accepted) {
        const code =
          dataReply instanceof DequeueError || accepted.length === 0 ? null : dataReply.code;
        outcomes.set(address, { address, code, text: why, final: code !== null && code >= 500 });
      }
      if (this.usable) await this.reset();
      return result(
        accepted.length && (dataReply instanceof DequeueError || dataReply.code < 500)
          ? new DequeueError('temporary', why)
          : null,
      );
    }
    if (accepted.length === 0) {
      // A pipelining server that said 354 although it took no recipient: end the empty data.
      await this.endData(1).catch(() => undefined);
      await this.reset();
      return result(null);
    }

    try {
      await this.stream(m);
    } catch (e) {
      // Cut the connection in the middle of DATA (RFC 5321 4.1.1.4): the server must not deliver
      // what it got. Our own read failing (the store) and the server failing end alike.
      this.cut(asDequeueError(e));
      const error = asDequeueError(e);
      for (const address of accepted)
        outcomes.set(address, { address, code: null, text: error.message, final: false });
      return result(error);
    }

    // Never rejects: a missing reply is a value.
    const replies = await this.endData(this.lmtp ? accepted.length : 1);
    let error: DequeueError | null = null;
    for (const [i, address] of accepted.entries()) {
      const r = replies[this.lmtp ? i : 0]!;
      if (r instanceof DequeueError) {
        error ??= r;
        outcomes.set(address, {
          address,
          code: null,
          text: `no reply to the final dot: ${r.message}`,
          final: false,
        });
      } else if (!(r.code >= 200 && r.code < 300) && !refusal(r.code)) {
        return untrusted(mismatch('the final dot', r));
      } else {
        outcomes.set(address, {
          address,
          code: r.code,
          text: boundedText(r),
          final: isFinal(r.code),
        });
      }
    }
    if (error) this.broken ??= error;
    return result(error);
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
    if (reply.code < 200 || reply.code >= 300) {
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
