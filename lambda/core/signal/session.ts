/**
 * The release signal: one client session with one provider.
 *
 *   the shared client handshake (smtp/client-handshake: connect, greeting, EHLO/HELO, STARTTLS)
 *   -> AUTH -> each release command in order -> QUIT
 *
 * Every command is sent even when an earlier one answered 251 or failed: fetchmail's ETRN mode
 * stops at the first 251 and never asks for its other domains; we do not.
 *
 * Pairing replies with commands (the rules, and where else they are kept: smtp/reply-pairing.ts).
 * A reply belongs to a command only by its place in the stream, so a peer that sends one reply
 * too many or too few shifts every later reply onto the wrong command. Fork-happy MTAs do exactly
 * that when ETRNs are pipelined: they fork a queue runner per ETRN with earlier replies still
 * unflushed in their output buffer, and the child flushes its copy. Debian's Exim 4.96 then sends a reply twice in cleartext (458, 458, 250, 221 for three
 * commands); sendmail 8.17 does it in cleartext and inside STARTTLS, where the copy is a TLS
 * record the client cannot decrypt ("decryption failed or bad record mac"), and every reply after
 * it is lost. So the rule, TLS or not:
 * - never more than one unanswered ETRN: each waits for the previous one's reply; only the last
 *   one travels with the QUIT (by then nothing earlier is unflushed). It costs one round trip per
 *   domain after the first (bench/etrn-round-trips.ts shows the table), and holds with every
 *   server we have met;
 * - every session ends with a check: the reply paired with QUIT must be 221 and nothing may
 *   follow it, and no ETRN may be answered with a code RFC 1985 does not give it (a 221 to an
 *   ETRN is QUIT's reply, shifted). When the check fails the replies are not trusted: after a
 *   last ETRN that travelled with the QUIT, everything is sent again one command at a time on a
 *   new connection (ETRN is idempotent: asking twice releases nothing twice); otherwise it is a
 *   protocol error, and no per-domain result is reported rather than a wrong one;
 * - at most `maxEtrnPerSession` ETRNs (default 8) in one session, the rest on further sessions of
 *   the same cycle (signal/etrn-sessions.ts: sendmail slows its replies after 8).
 *
 * Every path that leaves the connection usable ends with QUIT, bounded briefly (sayGoodbye):
 * after a refused AUTH, a mechanism refused here, a refused greeting or EHLO. The session
 * resolves only once its socket is closed: nothing of it outlives the result.
 *
 * With ATRN (RFC 2645) and a 250 reply, the same connection is handed to the MailReceiver: the
 * provider now delivers to us, and the session ends when that one does.
 */
import { verbOf, type Target } from '../config';
import { closeSocket, peerName } from '../smtp/connection';
import {
  boundedText,
  openClientSession,
  QUIT_WAIT_MS,
  sayGoodbye,
  type ClientSession,
} from '../smtp/client-handshake';
import { asDequeueError, DequeueError, ProtocolError, RefusalError } from '../errors';
import { outcomeOfError, outcomeOfReply, type CommandOutcome } from '../outcome';
import type { AuthCredentials, ReversedOutcome, Transcript } from '../ports';
import { silentTranscript } from '../ports';
import { worstOutcome, type ReplyRecord } from '../result';
import { atrnUntilSettled } from './atrn-again';
import { DEFAULT_MAX_ETRN_PER_SESSION, etrnSessions, inSessions } from './etrn-sessions';
import { authenticate, chooseMechanism } from './auth';
import type { SmtpReply } from '../smtp/reply';
import { atrnRefused, misfit, notOffered, pairingDoubt } from './reply-verdicts';
import { DEFAULT_REPLY_TIMEOUT_MS, replyTimeoutMs } from '../smtp/timeouts';
import { onStop, STOP_GRACE_MS, stoppedError } from '../run-stop';
import { fingerSignal } from './finger-session';
import type { SignalDeps, SignalOptions, SignalReport } from './types';

export type { SignalDeps, SignalOptions, SignalReport } from './types';

/** RFC 2645 section 4 lets a provider scan its queue before answering ATRN: allow 10 minutes. */
export const DEFAULT_ATRN_TIMEOUT_MS = 600_000;

function record(command: string, reply: SmtpReply): ReplyRecord {
  return { command, code: reply.code, text: boundedText(reply) };
}

export async function releaseSignal(
  target: Target,
  options: SignalOptions,
  deps: SignalDeps,
): Promise<SignalReport> {
  if (target.protocol === 'raw') return fingerSignal(target, options, deps);
  const sessions = etrnSessions(
    target.commands,
    options.maxEtrnPerSession ?? DEFAULT_MAX_ETRN_PER_SESSION,
  );
  if (sessions.length === 1) return new SignalSession(target, options, deps).run();
  const now = deps.now ?? Date.now;
  return inSessions(sessions, {
    run: (commands) => new SignalSession({ ...target, commands }, options, deps).run(),
    // A stopped run starts no further session (core/run-stop.ts).
    timeLeft: () =>
      !options.stop?.aborted &&
      (options.deadline === undefined ||
        now() +
          Math.min(
            (target.timeoutSeconds ?? 0) * 1000 || DEFAULT_REPLY_TIMEOUT_MS,
            DEFAULT_REPLY_TIMEOUT_MS,
          ) <
          options.deadline),
    note: (text) => (deps.transcript ?? silentTranscript).line(target.name, '*', text),
  });
}

/** One connection's worth of the signal. `outOfStep` says why its replies are not trusted. */
interface Attempt {
  readonly report: SignalReport;
  readonly outOfStep?: string;
  /** The commands went out as one pipelined group (a failed check is then worth one retry). */
  readonly pipelined?: boolean;
  /** ATRN turned the connection around inside TLS (signal/atrn-again.ts). */
  readonly turnedInTls?: boolean;
}

class SignalSession {
  private readonly transcript: Transcript;
  private readonly now: () => number;
  private readonly peer: string;
  private readonly replyTimeoutMs: number;
  /** Once the run was told to stop: when the session must have ended (STOP_GRACE_MS on). */
  private stopDeadline = Number.POSITIVE_INFINITY;

  constructor(
    private readonly target: Target,
    private readonly options: SignalOptions,
    private readonly deps: SignalDeps,
  ) {
    this.transcript = deps.transcript ?? silentTranscript;
    this.now = deps.now ?? Date.now;
    this.peer = peerName(target.host, target.port);
    this.replyTimeoutMs = replyTimeoutMs(target.timeoutSeconds);
  }

  async run(): Promise<SignalReport> {
    const unsubscribe = onStop(this.options.stop, () => {
      this.stopDeadline = this.now() + STOP_GRACE_MS;
    });
    try {
      return await this.signal();
    } finally {
      unsubscribe();
    }
  }

  private async signal(): Promise<SignalReport> {
    // Fetch credentials before connecting: a missing secret must not leave a half-open session.
    const credentials = this.target.auth
      ? await this.deps.credentials.get(this.target.auth.secretId)
      : undefined;
    const first = await this.attempt(credentials, true);
    if (first.outOfStep === undefined || !first.pipelined || this.options.stop?.aborted) {
      // Exim over STARTTLS delivers one message per ATRN session (atrn-again.ts); a stopped run
      // asks for no further session.
      return atrnUntilSettled(first, {
        again: () => this.attempt(credentials, true),
        timeLeft: () =>
          !this.options.stop?.aborted &&
          this.timeout() >= Math.min(this.replyTimeoutMs, DEFAULT_REPLY_TIMEOUT_MS),
        note: (text) => this.transcript.line(this.target.name, '*', text),
      });
    }
    this.transcript.line(
      this.target.name,
      '*',
      `the replies were out of step with the pipelined commands (${first.outOfStep}); sending them again one at a time on a new connection`,
    );
    return (await this.attempt(credentials, false)).report;
  }

  /** Connect, authenticate, send the commands, say goodbye: one connection. */
  private async attempt(
    credentials: AuthCredentials | undefined,
    mayPipeline: boolean,
  ): Promise<Attempt> {
    const replies: ReplyRecord[] = [];
    const refused = (e: unknown) => {
      // A refused step (greeting, EHLO, STARTTLS, AUTH) shows in `replies` like a command would.
      if (e instanceof RefusalError)
        replies.push({ command: e.command, code: e.code, text: e.text });
      return { report: this.report(replies, [], 0, asDequeueError(e)) };
    };
    let session: ClientSession;
    try {
      session = await this.open();
    } catch (e) {
      return refused(e);
    }
    try {
      // Told to stop meanwhile: no AUTH, release() says QUIT before the first command.
      if (this.target.auth && credentials && !this.options.stop?.aborted) {
        const mechanism = chooseMechanism(
          this.target,
          [...(session.extensions.get('AUTH') ?? [])],
          {
            encrypted: session.encrypted,
            verified: session.encrypted && this.target.tlsVerify,
            helo: session.helo,
          },
        );
        await authenticate(
          session.channel,
          mechanism,
          credentials,
          this.timeout(),
          this.peer,
          this.target.auth.secretId,
        );
      }
    } catch (e) {
      await sayGoodbye(session.channel, session.socket, this.quitWait());
      return refused(e);
    }
    return this.release(session, replies, mayPipeline);
  }

  private report(
    replies: readonly ReplyRecord[],
    outcomes: readonly CommandOutcome[],
    messages: number,
    error: DequeueError | null,
  ): SignalReport {
    const all = error ? [...outcomes, outcomeOfError(error) as CommandOutcome] : outcomes;
    // A bare connection (no command) that got this far is the signal itself.
    const outcome = all.length ? (worstOutcome(all) as CommandOutcome) : 'signalled';
    return { outcome, replies, messages, error };
  }

  /** The bound for the next reply: the per-reply timeout, never past the overall deadline. */
  private timeout(ms = this.replyTimeoutMs): number {
    const deadline = Math.min(this.options.deadline ?? Number.POSITIVE_INFINITY, this.stopDeadline);
    return deadline === Number.POSITIVE_INFINITY
      ? ms
      : Math.max(0, Math.min(ms, deadline - this.now()));
  }

  /** QUIT's reply and the close after it: briefly, and never longer than any other reply. */
  private quitWait(): number {
    return this.timeout(Math.min(QUIT_WAIT_MS, this.replyTimeoutMs));
  }

  /** Connect, greet, EHLO/HELO and STARTTLS: the shared client handshake (smtp/client-handshake). */
  private open(): Promise<ClientSession> {
    const { host, port, tls, tlsVerify, ehlo, name } = this.target;
    return openClientSession({
      host,
      port,
      tls,
      tlsVerify,
      ehlo,
      tlsCa: this.deps.tlsCa,
      helloName: this.deps.helloName,
      label: name,
      transcript: this.transcript,
      bound: () => this.timeout(),
      deadline: this.options.deadline,
      now: this.now,
      stop: this.options.stop,
    });
  }

  private async release(
    session: ClientSession,
    replies: ReplyRecord[],
    mayPipeline: boolean,
  ): Promise<Attempt> {
    const { channel, socket } = session;
    const commands = this.target.commands;
    const outcomes: CommandOutcome[] = [];
    const note = (command: string, reply: SmtpReply) => {
      replies.push(record(command, reply));
      outcomes.push(outcomeOfReply(verbOf(command), reply.code));
    };
    const failed = (i: number, e: unknown): Attempt => ({
      report: this.report(replies, outcomes, 0, this.unanswered(replies, commands.slice(i), e)),
    });

    // One ETRN at a time, TLS or not (the pairing rule at the top); only the last one travels
    // with the QUIT: by then every earlier reply has been read, so a server that forks with its
    // output unflushed has nothing to send twice. It saves the QUIT's round trip. Not on the
    // retry after out-of-step replies: one at a time means that.
    let quit: Promise<SmtpReply> | undefined;
    let refusal: DequeueError | null = null;
    for (const [i, command] of commands.entries()) {
      const { stop } = this.options;
      if (stop?.aborted) {
        // Told to stop: the commands not yet sent stay unsent, and the session ends with QUIT.
        await sayGoodbye(channel, socket, this.quitWait(), quit);
        return failed(i, stoppedError(stop, 'not sent'));
      }
      const verb = verbOf(command);
      let reply: SmtpReply;
      try {
        const wait = replyTimeoutMs(
          this.target.timeoutSeconds,
          verb === 'ATRN' ? DEFAULT_ATRN_TIMEOUT_MS : DEFAULT_REPLY_TIMEOUT_MS,
        );
        if (
          mayPipeline &&
          i === commands.length - 1 &&
          verb === 'ETRN' &&
          session.extensions.has('PIPELINING')
        ) {
          const pending = channel.pipeline([
            { line: command, timeoutMs: this.timeout(wait) },
            { line: 'QUIT', timeoutMs: this.quitWait() },
          ]);
          quit = pending[1];
          reply = await pending[0]!;
        } else {
          reply = await channel.command(command, this.timeout(wait));
        }
      } catch (e) {
        await sayGoodbye(channel, socket, 0, quit);
        return failed(i, e);
      }
      const doubt = misfit(command, reply);
      if (doubt) {
        await sayGoodbye(channel, socket, this.quitWait(), quit);
        return { ...this.untrusted(doubt), pipelined: quit !== undefined };
      }
      note(command, reply);
      if (verb === 'ATRN' && reply.code === 450) refusal = atrnRefused(this.peer, reply);
      refusal ??= notOffered(this.peer, this.target.ehlo && !session.helo, session, verb, reply);
      if (verb === 'ATRN' && reply.code === 250) {
        const turn = await this.turn(session);
        // A provider with nothing to send may still turn the line and then close or say QUIT
        // at once (Exim without a spool check in its ATRN ACL): no mail, as a 453 would say.
        if (turn.stored === 0 && !turn.error) outcomes[outcomes.length - 1] = 'no-mail';
        const report = this.report(replies, outcomes, turn.stored, turn.error);
        const refused = turn.refusedRecipients;
        return {
          report: refused ? { ...report, refusedRecipients: refused } : report,
          turnedInTls: session.encrypted,
        };
      }
    }
    const bye = await sayGoodbye(channel, socket, this.quitWait(), quit);
    // A bare connection has no reply to misplace.
    const doubt = commands.length ? pairingDoubt(bye) : null;
    if (doubt) return { ...this.untrusted(doubt), pipelined: quit !== undefined };
    return { report: this.report(replies, outcomes, 0, refusal) };
  }

  /**
   * The replies of this connection cannot be trusted to belong to their commands: none of them
   * is reported as a command's result.
   */
  private untrusted(doubt: string): Attempt {
    const replies: ReplyRecord[] = this.target.commands.map((command) => ({
      command,
      code: null,
      text: `not trusted: ${doubt}`,
    }));
    const error = new ProtocolError(
      `${this.peer} sent replies out of step with the commands (${doubt}); no per-command result is reported rather than a wrong one`,
    );
    return { report: this.report(replies, [], 0, error), outOfStep: doubt };
  }

  /** Commands left without a reply when the connection failed: each one is named in `replies`. */
  private unanswered(
    replies: ReplyRecord[],
    commands: readonly string[],
    e: unknown,
  ): DequeueError {
    const error = asDequeueError(e);
    for (const command of commands)
      replies.push({ command, code: null, text: `no reply: ${error.message}` });
    return error;
  }

  /** RFC 2645 section 4: after 250 to ATRN the roles swap on the same connection. */
  private async turn(session: ClientSession): Promise<ReversedOutcome> {
    const receiver = this.deps.receiver;
    const pending = session.channel.detach();
    if (!receiver) {
      await closeSocket(session.socket, 0);
      return {
        stored: 0,
        error: new DequeueError('config', 'ATRN accepted but nowhere is configured to store mail'),
      };
    }
    this.transcript.line(
      this.target.name,
      '*',
      'ATRN accepted: the connection is reversed, we are now the SMTP server',
    );
    try {
      return await receiver({
        socket: session.socket,
        pending,
        target: this.target,
        provider: this.peer,
        deadline: this.options.deadline ?? Number.POSITIVE_INFINITY,
        helloName: session.helloName,
        transcript: this.transcript,
        stop: this.options.stop,
      });
    } catch (e) {
      await closeSocket(session.socket, 0);
      return { stored: 0, error: asDequeueError(e) };
    }
  }
}
