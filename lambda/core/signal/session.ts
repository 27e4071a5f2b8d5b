/**
 * The release signal: one client session with one provider.
 *
 *   the shared client handshake (smtp/client-handshake: connect, greeting, EHLO/HELO, STARTTLS)
 *   -> AUTH -> each release command in order -> QUIT
 *
 * Every command is sent even when an earlier one answered 251 or failed: fetchmail's ETRN mode
 * stops at the first 251 and never asks for its other domains; we do not. When the provider
 * advertises PIPELINING (RFC 2920), all ETRN commands and the QUIT go out in one segment: ETRN is
 * not among the commands that must end a group (section 3.1), so one round trip serves them all.
 *
 * With ATRN (RFC 2645) and a 250 reply, the same connection is handed to the MailReceiver: the
 * provider now delivers to us, and the session ends when that one does.
 */
import type { Socket } from 'node:net';
import { verbOf, type Target } from '../config';
import { peerName } from '../smtp/connection';
import { boundedText, openClientSession } from '../smtp/client-handshake';
import { asDequeueError, DequeueError, RefusalError } from '../errors';
import { outcomeOfError, outcomeOfReply, type CommandOutcome } from '../outcome';
import type { Transcript } from '../ports';
import { silentTranscript } from '../ports';
import { ReplyChannel } from '../smtp/reply-channel';
import { worstOutcome, type ReplyRecord } from '../result';
import { authenticate, chooseMechanism } from './auth';
import type { SmtpReply } from '../smtp/reply';
import { rawSignal } from './raw-session';
import { DEFAULT_REPLY_TIMEOUT_MS, type SignalDeps, type SignalOptions, type SignalReport } from './types';

export { DEFAULT_REPLY_TIMEOUT_MS, type SignalDeps, type SignalOptions, type SignalReport } from './types';

/** RFC 2645 section 4 lets a provider scan its queue before answering ATRN: allow 10 minutes. */
export const DEFAULT_ATRN_TIMEOUT_MS = 600_000;
/** QUIT's reply is a courtesy: wait for it only briefly, then close. */
export const QUIT_REPLY_TIMEOUT_MS = 1_000;
function record(command: string, reply: SmtpReply): ReplyRecord {
  return { command, code: reply.code, text: boundedText(reply) };
}

export async function releaseSignal(target: Target, options: SignalOptions, deps: SignalDeps): Promise<SignalReport> {
  if (target.protocol === 'raw') return rawSignal(target, options, deps);
  return new SignalSession(target, options, deps).run();
}

class SignalSession {
  private readonly transcript: Transcript;
  private readonly now: () => number;
  private readonly peer: string;
  private readonly replyTimeoutMs: number;
  private readonly replies: ReplyRecord[] = [];
  private socket!: Socket;
  private channel!: ReplyChannel;
  private encrypted = false;
  private helloName = '';

  constructor(
    private readonly target: Target,
    private readonly options: SignalOptions,
    private readonly deps: SignalDeps,
  ) {
    this.transcript = deps.transcript ?? silentTranscript;
    this.now = deps.now ?? Date.now;
    this.peer = peerName(target.host, target.port);
    this.replyTimeoutMs = target.timeoutSeconds ? target.timeoutSeconds * 1000 : DEFAULT_REPLY_TIMEOUT_MS;
  }

  async run(): Promise<SignalReport> {
    // Fetch credentials before connecting: a missing secret must not leave a half-open session.
    const credentials = this.target.auth ? await this.deps.credentials.get(this.target.auth.secretId) : undefined;
    let outcomes: CommandOutcome[] = [];
    let messages = 0;
    try {
      const ext = await this.greetAndHello();
      if (this.target.auth && credentials) {
        const mechanism = chooseMechanism(this.target, [...(ext.get('AUTH') ?? [])], this.encrypted);
        await authenticate(this.channel, mechanism, credentials, this.timeout(), this.peer, this.target.auth.secretId);
      }
      const release = await this.sendCommands(ext);
      outcomes = release.outcomes;
      messages = release.messages;
      if (release.error) return this.report(outcomes, messages, release.error);
      if (!release.handedOver) await this.quit(release.quitReply);
      return this.report(outcomes, messages, null);
    } catch (e) {
      this.socket?.destroy();
      // A refused step (greeting, EHLO, STARTTLS, AUTH) shows in `replies` like a command would.
      if (e instanceof RefusalError) this.replies.push({ command: e.command, code: e.code, text: e.text });
      return this.report(outcomes, messages, asDequeueError(e));
    }
  }

  private report(outcomes: CommandOutcome[], messages: number, error: DequeueError | null): SignalReport {
    const all = error ? [...outcomes, outcomeOfError(error) as CommandOutcome] : outcomes;
    // A bare connection (no command) that got this far is the signal itself.
    const outcome = all.length ? (worstOutcome(all) as CommandOutcome) : 'signalled';
    return { outcome, replies: this.replies, messages, error };
  }

  /** The bound for the next reply: the per-reply timeout, never past the overall deadline. */
  private timeout(ms = this.replyTimeoutMs): number {
    const { deadline } = this.options;
    return deadline === undefined ? ms : Math.max(0, Math.min(ms, deadline - this.now()));
  }

  /** Connect, greet, EHLO/HELO and STARTTLS: the shared client handshake (smtp/client-handshake). */
  private async greetAndHello(): Promise<ReadonlyMap<string, readonly string[]>> {
    const { host, port, tls, tlsVerify, ehlo, name } = this.target;
    const session = await openClientSession({
      host, port, tls, tlsVerify, ehlo,
      tlsCa: this.deps.tlsCa,
      helloName: this.deps.helloName,
      label: name,
      transcript: this.transcript,
      bound: () => this.timeout(),
      deadline: this.options.deadline,
      now: this.now,
    });
    this.socket = session.socket;
    this.channel = session.channel;
    this.encrypted = session.encrypted;
    this.helloName = session.helloName;
    return session.extensions;
  }

  private async sendCommands(ext: ReadonlyMap<string, readonly string[]>): Promise<{
    outcomes: CommandOutcome[]; messages: number; error: DequeueError | null; handedOver: boolean; quitReply?: Promise<SmtpReply>;
  }> {
    const commands = this.target.commands;
    const outcomes: CommandOutcome[] = [];
    const note = (command: string, reply: SmtpReply) => {
      this.replies.push(record(command, reply));
      outcomes.push(outcomeOfReply(verbOf(command), reply.code));
    };

    if (commands.length > 0 && ext.has('PIPELINING') && commands.every((c) => verbOf(c) === 'ETRN')) {
      const pending = this.channel.pipeline([...commands, 'QUIT'], this.timeout());
      const quitReply = pending.pop()!;
      quitReply.catch(() => undefined);
      for (const [i, reply] of pending.entries()) {
        try {
          note(commands[i]!, await reply);
        } catch (e) {
          return { outcomes, messages: 0, error: this.unanswered(commands.slice(i), e), handedOver: false };
        }
      }
      return { outcomes, messages: 0, error: null, handedOver: false, quitReply };
    }

    for (const [i, command] of commands.entries()) {
      const verb = verbOf(command);
      let reply: SmtpReply;
      try {
        const wait = verb === 'ATRN' && !this.target.timeoutSeconds ? DEFAULT_ATRN_TIMEOUT_MS : this.replyTimeoutMs;
        reply = await this.channel.command(command, this.timeout(wait));
      } catch (e) {
        return { outcomes, messages: 0, error: this.unanswered(commands.slice(i), e), handedOver: false };
      }
      note(command, reply);
      if (verb === 'ATRN' && reply.code === 250) {
        const turn = await this.turn();
        return { outcomes, messages: turn.stored, error: turn.error, handedOver: true };
      }
    }
    return { outcomes, messages: 0, error: null, handedOver: false };
  }

  /** Commands left without a reply when the connection failed: each one is named in `replies`. */
  private unanswered(commands: readonly string[], e: unknown): DequeueError {
    const error = asDequeueError(e);
    for (const command of commands) this.replies.push({ command, code: null, text: `no reply: ${error.message}` });
    return error;
  }

  /** RFC 2645 section 4: after 250 to ATRN the roles swap on the same connection. */
  private async turn(): Promise<{ stored: number; error: DequeueError | null }> {
    const receiver = this.deps.receiver;
    const pending = this.channel.detach();
    if (!receiver) {
      this.socket.destroy();
      return { stored: 0, error: new DequeueError('config', 'ATRN accepted but nowhere is configured to store mail') };
    }
    this.transcript.line(this.target.name, '*', 'ATRN accepted: the connection is reversed, we are now the SMTP server');
    try {
      return await receiver({
        socket: this.socket,
        pending,
        target: this.target,
        provider: this.peer,
        deadline: this.options.deadline ?? Number.POSITIVE_INFINITY,
        helloName: this.helloName,
        transcript: this.transcript,
      });
    } catch (e) {
      this.socket.destroy();
      return { stored: 0, error: asDequeueError(e) };
    }
  }

  /** QUIT, with its reply awaited only briefly (RFC 5321 4.1.1.10: the server closes after 221). */
  private async quit(already?: Promise<SmtpReply>): Promise<void> {
    const reply = already ?? this.channel.command('QUIT', this.timeout(QUIT_REPLY_TIMEOUT_MS));
    const brief = new Promise<void>((resolve) => setTimeout(resolve, QUIT_REPLY_TIMEOUT_MS).unref());
    await Promise.race([reply.then(() => undefined, () => undefined), brief]);
    this.channel.detach();
    this.socket.end();
    this.socket.destroySoon?.();
    setTimeout(() => this.socket.destroy(), QUIT_REPLY_TIMEOUT_MS).unref();
  }
}
