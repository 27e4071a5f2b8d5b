/**
 * What follows the final dot of a message, as plain decisions (no I/O): stored, refused for good
 * (552 over the size limit, RFC 1870 section 6.3; 554 when the destination refuses), or not
 * stored now (451, RFC 5321 4.5.3.2.6: the provider keeps it).
 */
import { DequeueError } from '../errors';
import type { MessageDraft } from '../ports';
import { printable } from '../smtp/command';

/**
 * Where a message's size stands against maxMessageBytes: within it (stored), over it (read on to
 * the final dot but stored no more, RFC 1870 section 6.3), or past twice it (cut off).
 */
export function sizeLimit(size: number, max: number): 'within' | 'over' | 'cut-off' {
  if (size > 2 * max) return 'cut-off';
  return size > max ? 'over' : 'within';
}

/** The message as read to its final dot: its size, and the draft if it is still whole. */
export interface ReceivedBody {
  readonly size: number;
  /** Null when it was dropped: over the size limit, or a write failed (`failure`). */
  readonly draft: MessageDraft | null;
  readonly failure: DequeueError | null;
}

export type DotVerdict =
  | { readonly answer: 'too-big'; readonly reply: string; readonly refusal: string }
  | { readonly answer: 'not-stored'; readonly error: DequeueError }
  | { readonly answer: 'commit'; readonly draft: MessageDraft };

/**
 * What follows the final dot: a message over the limit is refused for good (552, the provider
 * returns it to its sender), one the sink dropped is not stored, a whole one is committed.
 */
export function afterTheDot(id: string, body: ReceivedBody, max: number): DotVerdict {
  if (body.size > max)
    return {
      answer: 'too-big',
      reply: `552 5.3.4 Message size exceeds fixed maximum message size (${max})`,
      refusal: `message ${id} of ${body.size} bytes exceeds maxMessageBytes ${max}`,
    };
  if (body.failure || !body.draft)
    return {
      answer: 'not-stored',
      error: body.failure ?? new DequeueError('temporary', 'the sink dropped the message'),
    };
  return { answer: 'commit', draft: body.draft };
}

/** Our answer when the sink would not take a message: the reply, and what the session records. */
export interface SinkErrorAnswer {
  readonly reply: string;
  /** A refusal for good, for the session's result. */
  readonly refusal?: string;
  /** A failure that closes the session at the next command. */
  readonly sinkFailure?: DequeueError;
}

/**
 * The sink refused or failed: 554 when it says the message can never be taken (a relay's 5xx),
 * else 451, after which the session closes at the next command: a sink that failed once (S3
 * unreachable, disk full) is likely to fail again, and what is left stays queued.
 */
export function answerToSinkError(id: string, error: DequeueError, what: string): SinkErrorAnswer {
  if (error.kind === 'permanent')
    return {
      reply: `554 5.3.0 Message refused by the destination: ${printable(error.message, 200)}`,
      refusal: `message ${id}: ${error.message}`,
    };
  return {
    reply: '451 4.3.0 Local error in processing, message not stored; try again later',
    sinkFailure: new DequeueError(
      'temporary',
      `message ${id} ${what}, the provider keeps it: ${error.message}`,
      { cause: error },
    ),
  };
}
