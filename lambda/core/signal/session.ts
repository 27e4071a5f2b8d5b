/**
 * The release signal: one client session with one provider.
 *
 *   connect (TLS first if "implicit") -> 220 greeting -> EHLO (HELO on 5xx) -> STARTTLS + EHLO
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
import { isIP, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { verbOf, type Target } from '../config';
import { openTcp, peerName, startTls } from '../smtp/connection';
import { asDequeueError, DequeueError, ProtocolError, RefusalError } from '../errors';
import { outcomeOfError, outcomeOfReply, type CommandOutcome } from '../outcome';
import type { Transcript } from '../ports';
import { silentTranscript } from '../ports';
import { ReplyChannel } from '../smtp/reply-channel';
import { worstOutcome, type ReplyRecord } from '../result';
import { authenticate, chooseMechanism } from './auth';
import { replyText, type SmtpReply } from '../smtp/reply';
import { rawSignal } from './raw-session';
import type { SignalDeps, SignalOptions, SignalReport } from './types';

export type { SignalDeps, SignalOptions, SignalReport } from './types';

/** SPEC: the default bound on any one complete reply. */
export const DEFAULT_REPLY_TIMEOUT_MS = 30_000;
/** RFC 2645 section 4 lets a provider scan its queue before answering ATRN: allow 10 minutes. */
export const DEFAULT_ATRN_TIMEOUT_MS = 600_000;
/** QUIT's reply is a courtesy: wait for it only briefly, then close. */
export const QUIT_REPLY_TIMEOUT_MS = 1_000;
/** Reply text kept per command in a result. */
const MAX_RECORDED_TEXT = 1024;

function record(command: string, reply: SmtpReply): ReplyRecord {
  const text = replyText(reply);
  return { command, code: reply.code, text: text.length > MAX_RECORDED_TEXT ? `${text.slice(0, MAX_RECORDED_TEXT)}...` : text };
}

function literalOf(socket: Socket): string {
  const address = socket.localAddress ?? '127.0.0.1';
  return isIP(address) === 6 ? `[IPv6:${address}]` : `[${address}]`;
}

/** Parse an EHLO reply into its extensions: keyword -> parameters (RFC 5321 4.1.1.1). */
export function parseExtensions(reply: SmtpReply): Map<string, string[]> {
  const ext = new Map<string, string[]>();
  for (const line of reply.lines.slice(1)) {
    // Old servers also write "AUTH=LOGIN PLAIN"; treat it as AUTH.
    const [keyword = '', ...params] = line.trim().replace(/^AUTH=/i, 'AUTH ').split(/\s+/);
    if (!keyword) continue;
    const key = keyword.toUpperCase();
    ext.set(key, [...(ext.get(key) ?? []), ...params]);
  }
  return ext;
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
      await this.open();
      const ext = await this.greetAndHello();
      if (this.target.auth && credentials) {
        const mechanism = chooseMechanism(this.target, ext.get('AUTH') ?? [], this.encrypted);
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

  private async open(): Promise<void> {
    const { host, port, tls, tlsVerify } = this.target;
    this.socket = await openTcp(host, port, this.timeout());
    if (tls === 'implicit') {
      this.socket = await startTls(host, port, { verify: tlsVerify, ca: this.deps.tlsCa }, this.timeout(), this.socket);
      this.encrypted = true;
    }
    this.helloName = this.deps.helloName ?? literalOf(this.socket);
    this.transcript.line(this.target.name, '*', `connected to ${this.peer}${this.encrypted ? ' (TLS)' : ''}`);
    this.channel = this.newChannel();
  }

  private newChannel(): ReplyChannel {
    return new ReplyChannel(this.socket, this.peer, this.target.name, this.transcript, this.options.deadline, this.now);
  }

  /** A reply that must have the expected code to go on; anything else ends the session. */
  private demand(command: string, reply: SmtpReply, expected: number): SmtpReply {
    if (reply.code === expected) return reply;
    throw new RefusalError(command, reply.code, record(command, reply).text, this.peer);
  }

  private async greetAndHello(): Promise<Map<string, string[]>> {
    // RFC 5321 3.1: 220 is the greeting; 554 (or 421) means the server will not talk to us.
    this.demand('(greeting)', await this.channel.expect('the greeting', this.timeout()), 220);
    if (!this.target.ehlo) return new Map();
    let ext = await this.hello();
    const { tls } = this.target;
    if (tls === 'opportunistic' || tls === 'required') {
      if (ext.has('STARTTLS')) {
        const reply = await this.channel.command('STARTTLS', this.timeout());
        if (reply.code === 220) {
          await this.upgrade();
          // RFC 3207 4.2: forget what was learnt before TLS and ask again.
          ext = await this.hello();
        } else if (tls === 'required') {
          this.demand('STARTTLS', reply, 220);
        } else {
          this.transcript.line(this.target.name, '*', `STARTTLS refused (${reply.code}); going on unencrypted as "opportunistic" allows`);
        }
      } else if (tls === 'required') {
        throw new DequeueError('permanent', `${this.peer} does not offer STARTTLS and "tls" is "required"`);
      }
    }
    return ext;
  }

  /** EHLO, falling back to HELO when EHLO is refused with 5xx (RFC 5321 3.2). */
  private async hello(): Promise<Map<string, string[]>> {
    const ehlo = await this.channel.command(`EHLO ${this.helloName}`, this.timeout());
    if (ehlo.code === 250) return parseExtensions(ehlo);
    if (ehlo.code < 500) this.demand('EHLO', ehlo, 250);
    const helo = await this.channel.command(`HELO ${this.helloName}`, this.timeout());
    this.demand('HELO', helo, 250);
    return new Map();
  }

  private async upgrade(): Promise<void> {
    const leftover = this.channel.detach();
    // RFC 3207 section 5 / CVE-2011-0411: bytes after the 220 were injected before TLS began.
    // A complete injected reply has already broken the channel ("a reply nobody asked for").
    if (this.channel.broken) throw this.channel.broken;
    if (leftover.length) throw new ProtocolError(`${this.peer} sent data after its 220 to STARTTLS, before TLS began`);
    const { host, port, tlsVerify } = this.target;
    this.socket = await startTls(host, port, { verify: tlsVerify, ca: this.deps.tlsCa }, this.timeout(), this.socket);
    this.encrypted = true;
    this.transcript.line(this.target.name, '*', `TLS started (${(this.socket as TLSSocket).getProtocol?.() ?? 'TLS'})`);
    this.channel = this.newChannel();
  }

  private async sendCommands(ext: Map<string, string[]>): Promise<{
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
