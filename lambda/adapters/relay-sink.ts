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
 *
 * The client opens with the same handshake as the release signal (core/smtp/client-handshake:
 * greeting, EHLO/HELO, STARTTLS) and reads replies through the same bounded reply channel. One connection per message keeps a failure in
 * one message from touching the next. Known limit: recipients are forwarded after our own RCPT
 * replies, so a relay that refuses one recipient refuses the whole message (451 or 554).
 */
import type { Socket } from 'node:net';
import type { MailRelay } from '../core/config';
import { peerName } from '../core/smtp/connection';
import { boundedText, openClientSession, type ClientSession } from '../core/smtp/client-handshake';
import { DotStuffer } from '../core/smtp/dot-stuffing';
import { DequeueError, RefusalError, TimeoutError } from '../core/errors';
import { silentTranscript, type MailEnvelope, type MailSink, type MessageDraft, type StoredMessage, type Transcript } from '../core/ports';
import { ReplyChannel } from '../core/smtp/reply-channel';
import { replyText, type SmtpReply } from '../core/smtp/reply';

/** RFC 5321 4.5.3.2: the client's bounds for each step. */
const GREETING_MS = 5 * 60_000;
const MAIL_RCPT_MS = 5 * 60_000;
const DATA_START_MS = 2 * 60_000;
const DATA_BLOCK_MS = 3 * 60_000;
const FINAL_DOT_MS = 10 * 60_000;
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
}

/** A relay sink when `relay` is configured, else `archive` itself. */
export function withRelay(archive: MailSink | undefined, relay: MailRelay | undefined, helloName: string, tlsCa?: string): MailSink | undefined {
  if (!relay) return archive;
  return createRelaySink({ relay, helloName, archive, tlsCa });
}

export function createRelaySink(options: RelaySinkOptions): MailSink {
  return {
    async begin(envelope: MailEnvelope): Promise<MessageDraft> {
      const archived = options.archive ? await options.archive.begin(envelope) : null;
      try {
        const relayed = await RelayedMessage.open(options, envelope);
        return new RelayDraft(relayed, archived);
      } catch (e) {
        await archived?.abort();
        throw e;
      }
    },
  };
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
      return archived ? { ...archived, location: `${archived.location} and ${relayed.location}` } : relayed;
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

/** One message on its way to the relay, from EHLO to the reply to the final dot. */
class RelayedMessage {
  private readonly stuffer = new DotStuffer();
  private bytes = 0;

  private constructor(
    private readonly socket: Socket,
    private readonly channel: ReplyChannel,
    private readonly peer: string,
    private readonly envelope: MailEnvelope,
    private readonly timeoutMs: number | undefined,
  ) {}

  static async open(options: RelaySinkOptions, envelope: MailEnvelope): Promise<RelayedMessage> {
    const { host, port, tls, tlsVerify, timeoutSeconds } = options.relay;
    const bound = (ms: number) => (timeoutSeconds ? timeoutSeconds * 1000 : ms);
    const peer = `relay ${peerName(host, port)}`;
    let session: ClientSession;
    try {
      // The same handshake as the release signal: greeting, EHLO/HELO, STARTTLS rules.
      session = await openClientSession({
        host, port, tls, tlsVerify,
        tlsCa: options.tlsCa,
        ehlo: true,
        helloName: options.helloName,
        peer,
        label: 'relay',
        transcript: options.transcript ?? silentTranscript,
        bound: (step) => bound(step === 'command' ? MAIL_RCPT_MS : GREETING_MS),
      });
    } catch (e) {
      if (e instanceof DequeueError) throw e;
      throw new DequeueError('temporary', `${peer}: ${(e as Error).message}`, { cause: e });
    }
    const { socket, channel, extensions: ext } = session;
    const demand = (step: string, reply: SmtpReply, ...codes: number[]) => {
      if (codes.includes(reply.code)) return reply;
      // RFC 5321 4.2.1: 4yz transient, 5yz permanent.
      throw new RefusalError(step, reply.code, boundedText(reply), peer);
    };
    try {
      const body = envelope.body === '8BITMIME' && ext.has('8BITMIME') ? ' BODY=8BITMIME' : '';
      demand(`MAIL FROM:<${envelope.mailFrom}>`, await channel.command(`MAIL FROM:<${envelope.mailFrom}>${body}`, bound(MAIL_RCPT_MS)), 250);
      for (const rcpt of envelope.rcptTo) {
        demand(`RCPT TO:<${rcpt}>`, await channel.command(`RCPT TO:<${rcpt}>`, bound(MAIL_RCPT_MS)), 250, 251);
      }
      demand('DATA', await channel.command('DATA', bound(DATA_START_MS)), 354);
      return new RelayedMessage(socket, channel, peer, envelope, timeoutSeconds ? timeoutSeconds * 1000 : undefined);
    } catch (e) {
      socket.destroy();
      if (e instanceof DequeueError) throw e;
      throw new DequeueError('temporary', `${peer}: ${(e as Error).message}`, { cause: e });
    }
  }

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
    const reply = await this.channel.expect('the final dot', this.timeoutMs ?? FINAL_DOT_MS);
    if (reply.code !== 250) {
      this.cut();
      throw new DequeueError(reply.code >= 500 ? 'permanent' : 'temporary', `${this.peer} refused the message: ${reply.code} ${replyText(reply).slice(0, 300)}`);
    }
    // QUIT is a courtesy; the message is the relay's from its 250 on.
    void this.channel.command('QUIT', QUIT_MS).catch(() => undefined).finally(() => this.socket.end());
    setTimeout(() => this.socket.destroy(), QUIT_MS).unref();
    return { id: this.envelope.id, location: `smtp://${this.peer} (${replyText(reply).slice(0, 200)})`, bytes: this.bytes };
  }

  /** Drop the connection in the middle of DATA: RFC 5321 4.1.1.4, the relay must not deliver it. */
  cut(): void {
    this.channel.detach();
    this.socket.on('error', () => undefined);
    this.socket.destroy();
  }

  private drained(): Promise<void> {
    const ms = this.timeoutMs ?? DATA_BLOCK_MS;
    return new Promise((resolve, reject) => {
      const done = (error?: DequeueError) => {
        clearTimeout(timer);
        this.socket.off('drain', onDrain);
        this.socket.off('close', onClose);
        if (error) reject(error);
        else resolve();
      };
      const onDrain = () => done();
      const onClose = () => done(new DequeueError('temporary', `${this.peer} closed the connection during DATA`));
      const timer = setTimeout(() => done(new TimeoutError(`${this.peer} took no data for ${Math.round(ms / 1000)} s`)), ms);
      this.socket.once('drain', onDrain);
      this.socket.once('close', onClose);
    });
  }
}
