/**
 * The wire of the loopback peers (peers/atrn-provider.ts and the benchmarks that send mail like
 * it): dot-stuffing written independently of lambda/core, writes that wait for drain, and CRLF
 * lines read one at a time with a bound.
 */
import type { Socket } from 'node:net';

/** RFC 5321 4.5.2 dot-stuffing, written independently of lambda/core/smtp/dot-stuffing.ts. */
export function stuff(text: Buffer): Buffer {
  const s = text.toString('latin1').replace(/(^|\r\n)\./g, '$1..');
  return Buffer.from(s.endsWith('\r\n') || s === '' ? `${s}.\r\n` : `${s}\r\n.\r\n`, 'latin1');
}

/** Write in pieces, waiting for drain; false when the socket went away meanwhile. */
export async function writeSlowly(socket: Socket, data: Buffer, piece: number): Promise<boolean> {
  for (let i = 0; i < data.length; i += piece) {
    if (socket.destroyed || !socket.writable) return false;
    if (!socket.write(data.subarray(i, i + piece))) {
      const ok = await new Promise<boolean>((resolve) => {
        const done = (v: boolean) => () => {
          socket.off('drain', onDrain);
          socket.off('close', onClose);
          resolve(v);
        };
        const onDrain = done(true);
        const onClose = done(false);
        socket.once('drain', onDrain);
        socket.once('close', onClose);
      });
      if (!ok) return false;
    }
  }
  return !socket.destroyed;
}

/** CRLF lines from a socket, one at a time, each with a bound. */
export class Lines {
  private buffer = '';
  private ended = false;
  private waiter: (() => void) | null = null;
  private readonly onData = (chunk: Buffer): void => {
    this.buffer += chunk.toString('latin1');
    this.waiter?.();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.waiter?.();
  };

  constructor(private readonly socket: Socket) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
  }

  /** Stop listening (the socket is handed to TLS). */
  detach(): void {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
  }

  async next(timeoutMs: number): Promise<string | null> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const lf = this.buffer.indexOf('\n');
      if (lf !== -1) {
        const line = this.buffer.slice(0, lf).replace(/\r$/, '');
        this.buffer = this.buffer.slice(lf + 1);
        return line;
      }
      if (this.ended) return null;
      const left = until - Date.now();
      if (left <= 0) return null;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.waiter = null;
          resolve();
        }, left);
        this.waiter = () => {
          clearTimeout(timer);
          this.waiter = null;
          resolve();
        };
      });
    }
  }
}
