/**
 * The relay (`settings.mail.relay`): each message received after ATRN is forwarded, as it
 * streams in, to an SMTP host of the customer's (their own MX), and the provider gets our 250
 * only after the relay's 250 to the final dot. A relay's 4xx becomes our 451 (the provider keeps
 * the message), its 5xx our 554 (the provider returns it to the sender: the final destination
 * refused it).
 *
 * With an archive sink (the mail directory, S3), the message is also stored there: the archive
 * commits first (it can still be withdrawn), then the relay's final dot is sent; if the relay
 * refuses, the archive copy is withdrawn, so what is archived is exactly what was acknowledged.
 * The archive's copy carries `relayedTo` and is kept outside the undelivered set (`relayed/`):
 * the relay has delivered it, and `deliver` must not deliver it again.
 *
 * The client opens with the same handshake as the release signal (core/smtp/client-handshake:
 * greeting, EHLO/HELO, STARTTLS) and reads replies through the same bounded reply channel. One
 * connection per message keeps a failure in one message from touching the next.
 *
 * Recipients one by one (MailSink.transaction): the connection opens and MAIL goes to the relay
 * at the provider's first RCPT, and each RCPT is forwarded before the provider gets its answer,
 * which is the relay's own: a 550 for one address refuses that address alone, and the message
 * goes to the others. A message declared 8-bit (BODY=8BITMIME) is not sent to a relay that does
 * not offer 8BITMIME (RFC 6152 3): its recipients get 451, so the provider keeps it, and the
 * result says why.
 *
 * Every reply is checked against what its command can have (core/smtp/reply-pairing.ts, rule 1):
 * a relay whose replies are out of step (a 354 to RCPT, a 250 to DATA, a 354 to the final dot)
 * is not believed. Its connection is cut and the provider gets 451 and keeps the message: taken
 * as a refusal, a stray 250 to DATA would have been our 554 and the provider's bounce.
 */
import type { Socket } from 'node:net';
import type { MailRelay } from '../core/config';
import { printable } from '../core/smtp/command';
import { peerName } from '../core/smtp/connection';
import {
  boundedText,
  openClientSession,
  sayGoodbye,
  type ClientSession,
} from '../core/smtp/client-handshake';
import { DotStuffer } from '../core/smtp/dot-stuffing';
import {
  asDequeueError,
  DequeueError,
  ProtocolError,
  RefusalError,
  TimeoutError,
} from '../core/errors';
import {
  silentTranscript,
  type MailEnvelope,
  type MailSink,
  type MessageDraft,
  type RecipientVerdict,
  type SinkTransaction,
  type StoredMessage,
  type TransactionStart,
  type Transcript,
} from '../core/ports';
import type { ReplyChannel } from '../core/smtp/reply-channel';
import { replyText, type SmtpReply } from '../core/smtp/reply';
import { canAnswer, type PairedCommand } from '../core/smtp/reply-pairing';
import { replyTimeoutMs, SMTP_TIMEOUTS } from '../core/smtp/timeouts';
import { RELAY_TLS_WORDS, relayTls } from '../core/smtp/tls-policy';

const QUIT_MS = 1_000;

export interface RelaySinkOptions {
  readonly relay: MailRelay;
  /** Our name in EHLO/HELO. */
  readonly helloName: string;
  /** Also store every message here (committed before the relay's final dot). */
  readonly archive?: MailSink;
  /** Extra trusted CA (PEM) for the relay's certificate. */
  readonly tlsCa?: string;
  readonly transcript?: Transcript;
  /**
   * Said after a connection to port 25 that timed out: in Lambda outside a VPC, AWS drops
   * outbound port 25 without a word, so the timeout is the only sign (lambda/handler.ts).
   */
  readonly port25Hint?: string;
}

/** A relay sink when `relay` is configured, else `archive` itself. */
export function withRelay(
  archive: MailSink | undefined,
  relay: MailRelay | undefined,
  helloName: string,
  tlsCa?: string,
  port25Hint?: string,
): MailSink | undefined {
  if (!relay) return archive;
  return createRelaySink({ relay, helloName, archive, tlsCa, port25Hint });
}

export function createRelaySink(options: RelaySinkOptions): MailSink {
  const { archive } = options;
  return {
    transaction: (mail) => new RelayTransaction(options, mail),
    // The archive's own say at MAIL (a mail directory short of space): nothing is relayed that
    // could not be archived.
    ...(archive?.admit ? { admit: (mail: TransactionStart) => archive.admit!(mail) } : {}),
    ...(archive?.settle ? { settle: (target: string) => archive.settle!(target) } : {}),
    // A caller that does not ask recipient by recipient: all of them, or the message is refused.
    async begin(envelope: MailEnvelope): Promise<MessageDraft> {
      const tx = new RelayTransaction(options, envelope);
      for (const rcpt of envelope.rcptTo) {
        const verdict = await tx.recipient(rcpt);
        if (!verdict.accepted) {
          tx.abandon();
          throw (
            verdict.error ??
            new RefusalError(
              `RCPT TO:<${rcpt}>`,
              verdict.code,
              verdict.text,
              `relay ${peerName(options.relay.host, options.relay.port)}`,
            )
          );
        }
      }
      return tx.begin(envelope);
    },
  };
}

/** One transaction with the relay: connect and MAIL at the first recipient, then RCPT by RCPT. */
class RelayTransaction implements SinkTransaction {
  private session: Promise<ClientSession> | null = null;
  private failure: DequeueError | null = null;
  private handedOver = false;
  private readonly peer: string;
  /** A step's RFC 5321 4.5.3.2 bound (SMTP_TIMEOUTS), or the relay's timeoutSeconds when set. */
  private readonly bound: (ms: number) => number;

  constructor(
    private readonly options: RelaySinkOptions,
    private readonly mail: TransactionStart,
  ) {
    const { host, port, timeoutSeconds } = options.relay;
    this.peer = `relay ${peerName(host, port)}`;
    this.bound = (ms) => replyTimeoutMs(timeoutSeconds, ms);
  }

  async recipient(address: string): Promise<RecipientVerdict> {
    try {
      const { socket, channel } = await this.open();
      const reply = await channel.command(
        `RCPT TO:<${address}>`,
        this.bound(SMTP_TIMEOUTS.command),
      );
      outOfStep(this.peer, 'RCPT', reply, socket);
      if (reply.code === 250 || reply.code === 251) return { accepted: true };
      return { accepted: false, code: reply.code, text: reply.lines[0] ?? '' };
    } catch (e) {
      const error = (this.failure ??= asDequeueError(e));
      if (error instanceof RefusalError && error.code >= 500)
        return { accepted: false, code: error.code, text: error.text.split('\n')[0]!, error };
      return {
        accepted: false,
        code: 451,
        text: `4.4.1 The destination cannot take mail now: ${error.message}`,
        error,
      };
    }
  }

  async begin(envelope: MailEnvelope): Promise<MessageDraft> {
    // The archive's copy is a record of mail the relay takes, outside the undelivered set:
    // `deliver` must not send it to the customer's server a second time.
    const { host, port } = this.options.relay;
    const archived = this.options.archive
      ? await this.options.archive.begin({ ...envelope, relayedTo: peerName(host, port) })
      : null;
    try {
      const session = await this.open();
      const reply = await session.channel.command('DATA', this.bound(SMTP_TIMEOUTS.dataStart));
      outOfStep(this.peer, 'DATA', reply, session.socket);
      if (reply.code !== 354)
        throw new RefusalError('DATA', reply.code, boundedText(reply), this.peer);
      this.handedOver = true;
      return new RelayDraft(
        new RelayedMessage(session.socket, session.channel, this.peer, envelope, this.bound),
        archived,
      );
    } catch (e) {
      await archived?.abort();
      this.abandon();
      throw asDequeueError(e);
    }
  }

  abandon(): void {
    if (this.handedOver || !this.session) return;
    this.handedOver = true;
    this.session.then(
      (s) => {
        // A courtesy, briefly bounded: the relay forgets the transaction either way.
        void sayGoodbye(s.channel, s.socket, QUIT_MS);
      },
      () => undefined,
    );
  }

  /** Connect, say hello, MAIL FROM: once; a failure is remembered for every later recipient. */
  private open(): Promise<ClientSession> {
    if (this.failure) return Promise.reject(this.failure);
    this.session ??= this.connect();
    return this.session;
  }

  private async connect(): Promise<ClientSession> {
    const { host, port } = this.options.relay;
    const tls = relayTls(this.options.relay);
    let session: ClientSession;
    try {
      // The same handshake as the release signal: greeting, EHLO/HELO, STARTTLS rules.
      session = await openClientSession({
        host,
        port,
        tls: tls.mode,
        tlsVerify: tls.verify,
        tlsCa: tls.ca ?? this.options.tlsCa,
        tlsWords: RELAY_TLS_WORDS,
        ehlo: true,
        helloName: this.options.helloName,
        peer: this.peer,
        label: 'relay',
        transcript: this.options.transcript ?? silentTranscript,
        bound: (step) =>
          this.bound(step === 'command' ? SMTP_TIMEOUTS.command : SMTP_TIMEOUTS.greeting),
      });
    } catch (e) {
      if (
        e instanceof TimeoutError &&
        port === 25 &&
        this.options.port25Hint &&
        /^no connection to/.test(e.message)
      ) {
        throw new TimeoutError(`${e.message}: ${this.options.port25Hint}`);
      }
      if (e instanceof DequeueError) throw e;
      throw new DequeueError('temporary', `${this.peer}: ${(e as Error).message}`, { cause: e });
    }
    const { socket, channel, extensions: ext } = session;
    try {
      const eightBit = this.mail.body === '8BITMIME';
      if (eightBit && !ext.has('8BITMIME')) {
        throw new DequeueError(
          'temporary',
          `${this.peer} does not offer 8BITMIME and the message is 8-bit (BODY=8BITMIME): it stays with the provider until the relay takes 8-bit mail (RFC 6152)`,
        );
      }
      const from = `MAIL FROM:<${this.mail.mailFrom}>`;
      const reply = await channel.command(
        `${from}${eightBit ? ' BODY=8BITMIME' : ''}`,
        this.bound(SMTP_TIMEOUTS.command),
      );
      outOfStep(this.peer, 'MAIL', reply, socket);
      // RFC 5321 4.2.1: 4yz transient, 5yz permanent.
      if (reply.code !== 250)
        throw new RefusalError(from, reply.code, boundedText(reply), this.peer);
      return session;
    } catch (e) {
      void channel
        .command('QUIT', QUIT_MS)
        .catch(() => undefined)
        .finally(() => socket.destroy());
      throw asDequeueError(e);
    }
  }
}

class RelayDraft implements MessageDraft {
  constructor(
    private readonly relayed: RelayedMessage,
    private readonly archived: MessageDraft | null,
  ) {}

  async write(chunks: readonly Buffer[]): Promise<void> {
    if (this.archived) await Promise.all([this.archived.write(chunks), this.relayed.write(chunks)]);
    else await this.relayed.write(chunks);
  }

  async commit(): Promise<StoredMessage> {
    const archived = this.archived ? await this.archived.commit() : null;
    try {
      const relayed = await this.relayed.finish();
      return archived
        ? { ...archived, location: `${archived.location} and ${relayed.location}` }
        : relayed;
    } catch (e) {
      await this.archived?.abort();
      throw e;
    }
  }

  async abort(): Promise<void> {
    this.relayed.cut();
    await this.archived?.abort();
  }
}

/** One message on its way to the relay, from its 354 to the reply to the final dot. */
class RelayedMessage {
  private readonly stuffer = new DotStuffer();
  private bytes = 0;

  constructor(
    private readonly socket: Socket,
    private readonly channel: ReplyChannel,
    private readonly peer: string,
    private readonly envelope: MailEnvelope,
    /** A step's RFC 5321 bound, or the relay's timeoutSeconds when set. */
    private readonly bound: (ms: number) => number,
  ) {}

  async write(chunks: readonly Buffer[]): Promise<void> {
    let flowing = true;
    this.socket.cork();
    for (const chunk of chunks) {
      this.bytes += chunk.length;
      for (const piece of this.stuffer.push(chunk)) flowing = this.socket.write(piece) && flowing;
    }
    this.socket.uncork();
    if (!flowing) await this.drained();
  }

  async finish(): Promise<StoredMessage> {
    this.socket.write(this.stuffer.end());
    const reply = await this.channel.expect('the final dot', this.bound(SMTP_TIMEOUTS.finalDot));
    if (!canAnswer('end of data', reply.code)) {
      this.cut();
      throw misfit(this.peer, 'end of data', reply);
    }
    if (reply.code !== 250) {
      this.cut();
      throw new DequeueError(
        reply.code >= 500 ? 'permanent' : 'temporary',
        `${this.peer} refused the message: ${reply.code} ${replyText(reply).slice(0, 300)}`,
      );
    }
    // QUIT is a courtesy; the message is the relay's from its 250 on. Bounded, never rejects, and
    // leaves no timer behind once the socket is closed.
    void sayGoodbye(this.channel, this.socket, QUIT_MS);
    return {
      id: this.envelope.id,
      location: `smtp://${this.peer} (${replyText(reply).slice(0, 200)})`,
      bytes: this.bytes,
    };
  }

  /** Drop the connection in the middle of DATA: RFC 5321 4.1.1.4, the relay must not deliver it. */
  cut(): void {
    this.channel.detach();
    this.socket.on('error', () => undefined);
    this.socket.destroy();
  }

  private drained(): Promise<void> {
    const ms = this.bound(SMTP_TIMEOUTS.dataBlock);
    return new Promise((resolve, reject) => {
      const done = (error?: DequeueError) => {
        clearTimeout(timer);
        this.socket.off('drain', onDrain);
        this.socket.off('close', onClose);
        if (error) reject(error);
        else resolve();
      };
      const onDrain = () => done();
      const onClose = () =>
        done(new DequeueError('temporary', `${this.peer} closed the connection during DATA`));
      const timer = setTimeout(
        () => done(new TimeoutError(`${this.peer} took no data for ${Math.round(ms / 1000)} s`)),
        ms,
      );
      this.socket.once('drain', onDrain);
      this.socket.once('close', onClose);
    });
  }
}

function misfit(peer: string, command: PairedCommand, reply: SmtpReply): ProtocolError {
  return new ProtocolError(
    `${peer} answered ${command} with ${reply.code}, a reply that command cannot have: its replies are out of step, none of them is believed (${reply.code} ${printable(reply.lines[0] ?? '', 120)})`,
  );
}

/** Rule 1 of reply pairing: a reply its command cannot have ends the connection, unbelieved. */
function outOfStep(peer: string, command: PairedCommand, reply: SmtpReply, socket: Socket): void {
  if (canAnswer(command, reply.code)) return;
  socket.on('error', () => undefined);
  socket.destroy();
  throw misfit(peer, command, reply);
}
