/**
 * What the provider sends us after the ATRN turn, pulled one piece at a time: command lines
 * (capped) and raw chunks for DATA. Pulling rather than being pushed is what bounds memory: the
 * socket is only read when the session is ready for more, so a slow sink slows the provider
 * (TCP backpressure) instead of filling a buffer.
 *
 * Every read takes an epoch-ms bound; passing it rejects with TimeoutError. The socket arrives in
 * whatever mode the signal session left it; listening for 'readable' puts it in paused mode
 * (node:stream), which must happen before the first await so that no byte is emitted to nobody.
 */
import type { Socket } from 'node:net';
import { DequeueError, ProtocolError, TimeoutError } from './errors';

const LF = 0x0a;
const CR = 0x0d;
/** Replies are tiny; more than this unread by the provider means it stopped reading. */
const MAX_UNSENT_REPLY_BYTES = 64 * 1024;
/** setTimeout cannot wait longer than 2^31-1 ms (about 24 days); longer means "no bound". */
const MAX_TIMER_MS = 2_147_483_647;

export class LineTooLongError extends ProtocolError {
  constructor(readonly limit: number) {
    super(`the provider sent a line longer than ${limit} bytes`);
    this.name = 'LineTooLongError';
  }
}

export class ProviderStream {
  /** Bytes read but not consumed: the ATRN leftovers, a partial command line, pipelined input. */
  private held: Buffer;
  private ended = false;
  private failure: DequeueError | null = null;
  private wake: (() => void) | null = null;
  private readonly onReadable = (): void => this.notify();
  private readonly onEnd = (): void => {
    this.ended = true;
    this.notify();
  };
  private readonly onError = (e: Error): void => {
    this.failure ??= new DequeueError('temporary', `connection to the provider failed: ${e.message}`, { cause: e });
    this.notify();
  };

  constructor(
    private readonly socket: Socket,
    pending: Buffer,
    private readonly maxLineBytes: number,
    private readonly now: () => number = Date.now,
  ) {
    this.held = pending;
    socket.on('readable', this.onReadable);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
    if (socket.readableEnded || socket.destroyed) this.ended = true;
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

  /** Put bytes back: what followed the end of DATA is read as commands again. */
  unread(bytes: Buffer): void {
    this.held = this.held.length ? Buffer.concat([bytes, this.held]) : bytes;
  }

  /** Write a reply; waits (bounded) only when the provider has stopped reading. */
  async write(text: string, until: number): Promise<void> {
    if (this.failure || this.socket.destroyed) return;
    this.socket.write(text);
    if (this.socket.writableLength <= MAX_UNSENT_REPLY_BYTES) return;
    await this.waitFor(until, (done) => {
      this.socket.once('drain', done);
      return () => this.socket.off('drain', done);
    });
  }

  /** Half-close after the last reply; the provider has until `until` to close, then we do. */
  async close(until: number): Promise<void> {
    this.dispose();
    // Bytes still arriving are not wanted; a late reset must not go unhandled.
    this.socket.on('error', () => undefined);
    if (this.socket.destroyed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.socket.destroy();
        resolve();
      }, Math.max(0, Math.min(until - this.now(), MAX_TIMER_MS)));
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      // Flowing, so the peer's FIN is seen and 'close' can come.
      this.socket.resume();
      this.socket.end();
    });
  }

  /** Drop the socket at once (a broken provider). */
  destroy(): void {
    this.dispose();
    this.socket.on('error', () => undefined);
    this.socket.destroy();
  }

  private dispose(): void {
    this.socket.off('readable', this.onReadable);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
  }

  private async readFromSocket(until: number): Promise<Buffer | null> {
    for (;;) {
      // What arrived before a reset is still read: it may hold a complete message.
      const chunk = this.socket.read() as Buffer | null;
      if (chunk) return chunk;
      if (this.failure) throw this.failure;
      if (this.ended) return null;
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
  private waitFor(until: number, arm: (done: () => void) => () => void): Promise<void> {
    const left = until - this.now();
    if (left <= 0) return Promise.reject(new TimeoutError('bound reached'));
    return new Promise<void>((resolve, reject) => {
      const disarm = arm(() => {
        clearTimeout(timer);
        disarm();
        resolve();
      });
      const timer = setTimeout(() => {
        disarm();
        reject(new TimeoutError('bound reached'));
      }, Math.min(left, MAX_TIMER_MS));
    });
  }
}
