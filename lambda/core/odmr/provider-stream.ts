/**
 * What the provider sends us after the ATRN turn, taken one piece at a time: command lines
 * (capped) and raw chunks for DATA.
 *
 * The socket flows into a small inbox, and is paused when the inbox holds INBOX_HIGH_WATER bytes
 * that the session has not taken: a slow sink slows the provider (TCP backpressure) instead of
 * filling memory, while a fast one never waits for a stop-and-start of the socket (paused-mode
 * reads of a 16 KiB stream buffer halved the throughput here; bench/odmr-receive.ts).
 *
 * Every read takes an epoch-ms bound; passing it rejects with TimeoutError. The listeners are
 * attached in the constructor, before the session awaits anything, so that no byte the socket
 * emits after the ATRN reply goes to nobody.
 */
import type { Socket } from 'node:net';
import { type DeadlineTimer, MAX_TIMER_MS } from '../deadline-timer';
import { DequeueError, ProtocolError, TimeoutError } from '../errors';
import type { MemoryBudget } from '../memory-budget';

const LF = 0x0a;
const CR = 0x0d;
/** Replies are tiny; more than this unread by the provider means it stopped reading. */
const MAX_UNSENT_REPLY_BYTES = 64 * 1024;
/** Replies held back for a pipelined group are sent once they reach this size anyway. */
const MAX_HELD_REPLY_BYTES = 16 * 1024;
/** Bytes received and not yet taken by the session before the socket is paused. */
export const INBOX_HIGH_WATER = 1024 * 1024;
/**
 * With a run's memory budget, what the inbox holds on its own before it draws from the budget:
 * enough for commands and a slow trickle of data, so that no stream ever waits for the budget
 * to make progress (and none can hold up the messages that would free it).
 */
export const INBOX_FLOOR = 64 * 1024;

export class LineTooLongError extends ProtocolError {
  constructor(readonly limit: number) {
    super(`the provider sent a line longer than ${limit} bytes`);
    this.name = 'LineTooLongError';
  }
}

export class ProviderStream {
  /** Bytes read but not consumed: the ATRN leftovers, a partial command line, pipelined input. */
  private held: Buffer;
  private readonly inbox: Buffer[] = [];
  private inboxBytes = 0;
  /** Inbox bytes drawn from the run's budget (beyond INBOX_FLOOR), given back as they are taken. */
  private drawn = 0;
  /** The budget was spent when data came: paused until memory is given back. */
  private starved = false;
  private unsubscribe: (() => void) | null = null;
  private ended = false;
  private failure: DequeueError | null = null;
  private wake: (() => void) | null = null;
  /** Replies not yet written: the provider pipelined more commands than we have answered. */
  private heldReplies = '';
  private readonly onData = (chunk: Buffer): void => {
    this.inbox.push(chunk);
    this.inboxBytes += chunk.length;
    if (this.budget) {
      // Beyond the floor, every byte held comes from the budget; the chunk is here already, so
      // when the budget is spent it is held anyway (one chunk over) and the socket waits.
      const want = Math.max(0, this.inboxBytes - INBOX_FLOOR) - this.drawn;
      if (want > 0) {
        if (this.budget.tryTake(want)) this.drawn += want;
        else this.starve();
      }
    }
    if (this.inboxBytes >= INBOX_HIGH_WATER) this.socket.pause();
    this.notify();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.notify();
  };
  private readonly onError = (e: Error): void => {
    this.failure ??= new DequeueError(
      'temporary',
      `connection to the provider failed: ${e.message}`,
      { cause: e },
    );
    this.notify();
  };

  constructor(
    private readonly socket: Socket,
    pending: Buffer,
    private readonly maxLineBytes: number,
    private readonly timer: DeadlineTimer,
    private readonly now: () => number = Date.now,
    private readonly budget?: MemoryBudget,
  ) {
    this.held = pending;
    // A provider may half-close right after its last command: Exim writes the final dot and
    // QUIT together and shuts its side (FIN) before reading our replies. Without this Node
    // ends our side too, and the 250 that makes the provider delete the message never leaves.
    socket.allowHalfOpen = true;
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
    if (socket.readableEnded || socket.destroyed) this.ended = true;
    socket.resume();
  }

  /** The next command line without its CRLF; null when the provider closed. */
  async readLine(until: number): Promise<string | null> {
    for (;;) {
      const lf = this.held.indexOf(LF);
      if (lf !== -1) {
        const end = lf > 0 && this.held[lf - 1] === CR ? lf - 1 : lf;
        if (end > this.maxLineBytes) throw new LineTooLongError(this.maxLineBytes);
        const line = this.held.subarray(0, end).toString('utf8');
        this.held = this.held.subarray(lf + 1);
        return line;
      }
      // Found as soon as the limit is passed, not when the line finally ends (which may be never).
      if (this.held.length > this.maxLineBytes) throw new LineTooLongError(this.maxLineBytes);
      const chunk = await this.readFromSocket(until);
      if (!chunk) return null;
      // Copy only the small remainder of a line in progress, never a whole large chunk.
      this.held = this.held.length ? Buffer.concat([this.held, chunk]) : chunk;
    }
  }

  /** The next chunk of raw bytes (DATA); null when the provider closed. */
  async readChunk(until: number): Promise<Buffer | null> {
    if (this.held.length) {
      const chunk = this.held;
      this.held = Buffer.alloc(0);
      return chunk;
    }
    return this.readFromSocket(until);
  }

  /** Bytes received and not yet taken (what this stream holds in memory). */
  get bufferedBytes(): number {
    return this.inboxBytes + this.held.length;
  }

  /** Put bytes back: what followed the end of DATA is read as commands again. */
  unread(bytes: Buffer): void {
    this.held = this.held.length ? Buffer.concat([bytes, this.held]) : bytes;
  }

  /**
   * Write a reply; waits (bounded) only when the provider has stopped reading.
   *
   * While more of the provider's input is already here (a pipelined group: MAIL, RCPT...,
   * DATA), the reply is held back and goes with the next ones: RFC 2920 3.2 asks a server to
   * send the replies to a group as a unit, and to send them at once when no input is left
   * (readFromSocket, before it waits; close). One write per group instead of one per command:
   * each write is a system call that also wakes the provider, and with a sink that stores
   * nothing those writes were over a quarter of the session's time (bench/odmr-receive.ts).
   */
  async write(text: string, until: number, now = false): Promise<void> {
    if (!this.canReply) return;
    this.heldReplies += text;
    if (!now && this.bufferedBytes > 0 && this.heldReplies.length < MAX_HELD_REPLY_BYTES) return;
    this.sendHeldReplies();
    if (this.socket.writableLength <= MAX_UNSENT_REPLY_BYTES) return;
    await this.waitFor(until, (done) => {
      this.socket.once('drain', done);
      return () => this.socket.off('drain', done);
    });
  }

  /** False once nothing we write can reach the provider (the connection failed or is gone). */
  get canReply(): boolean {
    return !this.failure && !this.socket.destroyed && this.socket.writable;
  }

  /** Half-close after the last reply; the provider has until `until` to close, then we do. */
  async close(until: number): Promise<void> {
    this.dispose();
    // Bytes still arriving are not wanted; a late reset must not go unhandled.
    this.socket.on('error', () => undefined);
    if (this.socket.destroyed) return;
    this.sendHeldReplies();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(
        () => {
          this.socket.destroy();
          resolve();
        },
        Math.max(0, Math.min(until - this.now(), MAX_TIMER_MS)),
      );
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      // Flowing, so the peer's FIN is seen and 'close' can come.
      this.socket.resume();
      this.socket.end();
    });
  }

  private sendHeldReplies(): void {
    if (!this.heldReplies || this.socket.destroyed) return;
    this.socket.write(this.heldReplies);
    this.heldReplies = '';
  }

  private starve(): void {
    this.starved = true;
    this.socket.pause();
    this.unsubscribe ??= this.budget!.onFree(() => this.maybeResume());
  }

  /** Give back to the budget what the inbox no longer holds beyond its floor. */
  private settleBudget(): void {
    if (!this.budget) return;
    const held = Math.max(0, this.inboxBytes - INBOX_FLOOR);
    if (held < this.drawn) {
      this.budget.give(this.drawn - held);
      this.drawn = held;
    }
  }

  private maybeResume(): void {
    if (this.ended || !this.socket.isPaused() || this.inboxBytes >= INBOX_HIGH_WATER) return;
    if (this.starved) {
      // Within the floor, or the budget can cover what is held over it again.
      const want = Math.max(0, this.inboxBytes - INBOX_FLOOR) - this.drawn;
      if (want > 0 && !this.budget!.tryTake(want)) return;
      if (want > 0) this.drawn += want;
      this.starved = false;
      this.unsubscribe?.();
      this.unsubscribe = null;
    }
    this.socket.resume();
  }

  private dispose(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
    // What the inbox still holds is no longer ours to count.
    if (this.budget && this.drawn) this.budget.give(this.drawn);
    this.drawn = 0;
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
  }

  private async readFromSocket(until: number): Promise<Buffer | null> {
    for (;;) {
      // What arrived before a reset is still taken: it may hold a complete message.
      const chunk = this.inbox.shift();
      if (chunk) {
        this.inboxBytes -= chunk.length;
        this.settleBudget();
        this.maybeResume();
        return chunk;
      }
      if (this.failure) throw this.failure;
      if (this.ended) return null;
      // No input is left: what we held back for a pipelined group goes now (RFC 2920 3.2).
      this.sendHeldReplies();
      await this.waitFor(until, (done) => {
        this.wake = done;
        return () => {
          if (this.wake === done) this.wake = null;
        };
      });
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  /** Wait for `arm`'s event, rejecting with TimeoutError at `until`. */
  private async waitFor(until: number, arm: (done: () => void) => () => void): Promise<void> {
    if (until <= this.now()) throw new TimeoutError('bound reached');
    let disarm = (): void => undefined;
    const event = new Promise<void>((resolve) => {
      disarm = arm(resolve);
    });
    try {
      await this.timer.within(event, until);
    } finally {
      disarm();
    }
  }
}
