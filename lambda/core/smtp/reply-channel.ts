/**
 * The client side of an SMTP connection: commands out, replies in, strictly in order.
 *
 * As in nodemailer's smtp-connection, every command registers the handler for its reply before the
 * command is written; a reply that arrives with no handler waiting is a protocol error, never
 * ignored (a provider that answers twice is out of step, and everything after would be misread;
 * reply-pairing.ts has the rules and where each client applies them).
 *
 * Each wait is a deadline, not an idle timer: a reply must be complete within `timeoutMs` of the
 * moment its handler reaches the head of the queue (so pipelined commands each get the full
 * allowance), and never later than the session's overall deadline.
 */
import type { Socket } from 'node:net';
import { DequeueError, ProtocolError, TimeoutError } from '../errors';
import type { Transcript } from '../ports';
import { onStop, STOP_GRACE_MS, stopReason } from '../run-stop';
import { ReplyParser, type SmtpReply } from './reply';
import { replyForNoCommand } from './reply-pairing';

/** One line of a pipelined group and the bound on its reply. */
export interface PipelinedCommand {
  readonly line: string;
  readonly timeoutMs: number;
}

interface Waiter {
  readonly what: string;
  readonly timeoutMs: number;
  readonly resolve: (reply: SmtpReply) => void;
  readonly reject: (error: DequeueError) => void;
  timer?: NodeJS.Timeout;
}

export class ReplyChannel {
  private readonly parser = new ReplyParser();
  private readonly waiters: Waiter[] = [];
  private failure: DequeueError | null = null;
  private surplus: SmtpReply | null = null;
  private readonly onData = (chunk: Buffer): void => this.receive(chunk);
  private readonly onClose = (): void =>
    this.fail(new DequeueError('temporary', `${this.peer} closed the connection`));
  // The peer's orderly close (FIN; under TLS its close_notify): Node answers with our own end()
  // (allowHalfOpen is off), which under TLS is our close_notify; destroying here would skip it.
  private readonly onEnd = (): void =>
    this.fail(new DequeueError('temporary', `${this.peer} closed the connection`), false);
  private readonly onError = (e: Error): void =>
    this.fail(
      new DequeueError('temporary', `connection to ${this.peer}: ${e.message}`, { cause: e }),
    );

  /** Why the run was told to stop, once it was (core/run-stop.ts). */
  private stopped: string | null = null;
  private unsubscribe: () => void = () => undefined;

  constructor(
    readonly socket: Socket,
    private readonly peer: string,
    private readonly targetName: string,
    private readonly transcript: Transcript,
    private deadline: number | undefined,
    private readonly now: () => number = Date.now,
    /**
     * The run was told to stop: every reply, the one awaited now included, gets at most
     * STOP_GRACE_MS more, so that the session can still end with QUIT if the peer is quick.
     */
    stop?: AbortSignal,
  ) {
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    socket.on('end', this.onEnd);
    socket.on('error', this.onError);
    this.unsubscribe = onStop(stop, () => {
      this.stopped = stopReason(stop!);
      const until = this.now() + STOP_GRACE_MS;
      if (this.deadline === undefined || until < this.deadline) this.deadline = until;
      const head = this.waiters[0];
      if (head?.timer) {
        clearTimeout(head.timer);
        head.timer = undefined;
        this.arm();
      }
    });
  }

  /** Wait for a reply nobody asked for by command: the greeting. */
  expect(what: string, timeoutMs: number): Promise<SmtpReply> {
    return this.enqueue(what, timeoutMs);
  }

  /**
   * Write one command line and wait for its reply. `shown` replaces the line in the transcript.
   * A line with an embedded CR or LF is never written (unsafeLine): the promise rejects.
   */
  command(line: string, timeoutMs: number, shown: string = line): Promise<SmtpReply> {
    const unsafe = unsafeLine(line, this.peer);
    if (unsafe) return Promise.reject(unsafe);
    const reply = this.enqueue(shown, timeoutMs);
    this.write(line, shown);
    return reply;
  }

  /**
   * Write several command lines in one segment (RFC 2920 PIPELINING) and return one promise per
   * reply, in order. The caller must have checked that the server advertised PIPELINING.
   * Every promise is already handled: a cut while the group is in flight rejects them all, and
   * the caller may stop awaiting at the first (as it does) without any rejection going unhandled.
   */
  pipeline(lines: readonly (string | PipelinedCommand)[], timeoutMs = 0): Promise<SmtpReply>[] {
    // A bare line gets `timeoutMs`; a PipelinedCommand carries its own bound (a QUIT's is brief).
    const commands = lines.map((l) => (typeof l === 'string' ? { line: l, timeoutMs } : l));
    // One unsafe line and nothing of the group is written (unsafeLine).
    const unsafe = commands.map((c) => unsafeLine(c.line, this.peer)).find((e) => e !== null);
    if (unsafe) {
      const refused = Promise.reject(unsafe);
      refused.catch(() => undefined);
      return commands.map(() => refused);
    }
    const replies = commands.map((c) => this.enqueue(c.line, c.timeoutMs));
    for (const c of commands) this.transcript.line(this.targetName, 'C', c.line);
    if (!this.failure) this.socket.write(commands.map((c) => `${c.line}\r\n`).join(''));
    return replies;
  }

  /**
   * Stop reading: hand the socket over (to TLS after STARTTLS, or to the reversed session after
   * ATRN) with the bytes already received past the last reply. A reply still awaited will never
   * come through this channel: it is rejected now and its timer cleared, so that nothing waits
   * (or keeps the process alive) for a reply that cannot arrive.
   */
  detach(): Buffer {
    this.unsubscribe();
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onClose);
    this.socket.off('end', this.onEnd);
    this.socket.off('error', this.onError);
    const stopped = new DequeueError('temporary', `stopped reading from ${this.peer}`);
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(this.failure ?? stopped);
    }
    return this.parser.remainder();
  }

  /** The error that ended this channel, if any. */
  get broken(): DequeueError | null {
    return this.failure;
  }

  /** A complete reply that arrived when no command was waiting for one (it broke the channel). */
  get unexpected(): SmtpReply | null {
    return this.surplus;
  }

  /** Bytes of a reply not yet complete (a partial line or an unfinished multi-line reply). */
  get midReply(): boolean {
    return this.parser.inReply;
  }

  private write(line: string, shown: string): void {
    this.transcript.line(this.targetName, 'C', shown);
    if (!this.failure) this.socket.write(`${line}\r\n`);
  }

  private enqueue(what: string, timeoutMs: number): Promise<SmtpReply> {
    const reply = new Promise<SmtpReply>((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      this.waiters.push({ what, timeoutMs, resolve, reject });
      if (this.waiters.length === 1) this.arm();
    });
    // Handled from the moment it exists: whoever awaits it still sees the rejection, but a reply
    // nobody awaits any more (the rest of a cut group) can never crash the process.
    reply.catch(() => undefined);
    return reply;
  }

  /** Start the clock of the waiter at the head of the queue. */
  private arm(): void {
    const head = this.waiters[0];
    if (!head || head.timer) return;
    const toDeadline =
      this.deadline === undefined ? Number.POSITIVE_INFINITY : this.deadline - this.now();
    const wait = Math.max(0, Math.min(head.timeoutMs, toDeadline));
    head.timer = setTimeout(() => {
      const why = this.stopped
        ? `once the run was stopped (${this.stopped})`
        : toDeadline <= head.timeoutMs
          ? "before the run's deadline"
          : `within ${formatWait(head.timeoutMs)}`;
      this.fail(new TimeoutError(`no complete reply from ${this.peer} to ${head.what} ${why}`));
    }, wait);
  }

  private receive(chunk: Buffer): void {
    // Replies completed before a fault in the same chunk are delivered first: what the peer said
    // must not depend on how TCP cut it into segments.
    const { replies, error } = this.parser.read(chunk);
    for (const reply of replies) {
      reply.lines.forEach((text, i) => {
        this.transcript.line(
          this.targetName,
          'S',
          `${reply.code}${i < reply.lines.length - 1 ? '-' : ' '}${text}`,
        );
      });
      const head = this.waiters.shift();
      if (!head) {
        this.surplus = reply;
        this.fail(replyForNoCommand(this.peer, reply));
        return;
      }
      clearTimeout(head.timer);
      head.resolve(reply);
      this.arm();
    }
    if (error) this.fail(new ProtocolError(`${this.peer}: ${error.message}`, { cause: error }));
  }

  private fail(error: DequeueError, destroy = true): void {
    if (this.failure) return;
    this.failure = error;
    this.unsubscribe();
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(error);
    }
    if (destroy) this.socket.destroy();
  }
}

function formatWait(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

/**
 * Defence in depth (issue 17 item 3): a command argument with CR or LF in it would end the
 * command early, and what follows would be a command of its own (RFC 5321 2.3.8: CRLF ends
 * every line; an address with "\r\nRCPT TO:<x>" injects a recipient, or a whole transaction).
 * Whatever built the line, the writer refuses it: a permanent error, nothing written. The text
 * names the command's verb and where the break is, never the rest of the line.
 */
export function unsafeLine(line: string, peer: string): DequeueError | null {
  const at = line.search(/[\r\n]/);
  if (at === -1) return null;
  const verb = /^[A-Za-z]*/.exec(line)![0].toUpperCase() || 'a command';
  return new DequeueError(
    'permanent',
    `refused to send ${verb} to ${peer}: its argument holds ${line[at] === '\r' ? 'CR' : 'LF'} at character ${at}, which would inject a command`,
    { cause: new RangeError(`an SMTP command line must not contain CR or LF (RFC 5321 2.3.8)`) },
  );
}
