/**
 * The message text on the wire (RFC 5321 4.1.1.4): canonical and dot-stuffed
 * (lambda/core/smtp/dot-stuffing.ts DotStuffer), written with backpressure, every wait for the
 * socket to drain bounded (RFC 5321 4.5.3.2.5, the data block).
 */
import type { Socket } from 'node:net';
import { DequeueError, TimeoutError } from '../../lambda/core/errors';
import { DotStuffer } from '../../lambda/core/smtp/dot-stuffing';

/** The connection the text goes out on, as the writer sees it. */
export interface TextOutlet {
  readonly socket: Socket;
  /** False once the connection broke: the text stops there. */
  readonly usable: () => boolean;
  /** Why the connection broke, to throw when it did. */
  readonly closed: () => DequeueError;
  /** What ended the reply channel, if anything (a 421 before the close says more than the close). */
  readonly channelBroken: () => DequeueError | null;
  /** How long the socket may take to drain one block. */
  readonly dataBlockMs: number;
  /** The server, for messages: `smtp://host:port`. */
  readonly display: string;
}

/** The text sent but for its end: the last pieces and the final dot, written by the caller. */
export interface StreamedText {
  readonly bytes: number;
  readonly end: Buffer[];
}

/**
 * The message text, canonical and stuffed, with backpressure; throws when it cannot finish.
 * Each chunk goes out when the next one is read, and the last with the final dot (the caller
 * writes `end` once the dot's replies are awaited): a small message and its end leave in one
 * write.
 */
export async function streamText(
  text: AsyncIterable<Buffer> | Iterable<Buffer>,
  out: TextOutlet,
): Promise<StreamedText> {
  const socket = out.socket;
  const writer = new DotStuffer();
  let bytes = 0;
  let held: Buffer[] = [];
  for await (const chunk of text) {
    if (!out.usable()) throw out.closed();
    bytes += chunk.length;
    if (held.length && !writeAll(socket, held)) {
      held = [];
      await drained(out);
    }
    held = writer.push(chunk);
  }
  if (!out.usable()) throw out.closed();
  return { bytes, end: [...held, writer.end()] };
}

/** Write the pieces in one segment where they fit; false when the socket asks us to wait. */
export function writeAll(socket: Socket, pieces: readonly Buffer[]): boolean {
  if (pieces.length === 1) return socket.write(pieces[0]!);
  let flowing = true;
  socket.cork();
  for (const piece of pieces) flowing = socket.write(piece) && flowing;
  socket.uncork();
  return flowing;
}

function drained(out: TextOutlet): Promise<void> {
  const { socket, dataBlockMs: ms } = out;
  return new Promise((resolve, reject) => {
    const done = (error?: DequeueError) => {
      clearTimeout(timer);
      socket.off('drain', onDrain);
      socket.off('close', onClose);
      if (error) reject(error);
      else resolve();
    };
    const onDrain = () => done();
    // What the server said before it closed (a 421) is the better reason.
    const onClose = () =>
      done(
        out.channelBroken() ??
          new DequeueError('temporary', `${out.display} closed the connection during DATA`),
      );
    const timer = setTimeout(
      () => done(new TimeoutError(`${out.display} took no data for ${Math.round(ms / 1000)} s`)),
      ms,
    );
    socket.once('drain', onDrain);
    socket.once('close', onClose);
  });
}
