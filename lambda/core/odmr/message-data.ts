/**
 * DATA in the reversed session: one message from the provider into the sink, and our answer for
 * it. The rule that matters (RFC 5321 4.5.3.2.6, RFC 2645 section 4): our 250 after the final dot
 * is what makes the provider delete the message, so it goes out only once the sink says the
 * message is durable; a message we do not acknowledge is never left visible in the sink.
 */
import { customerDomains } from '../customer-domains';
import { DataUnstuffer } from '../smtp/dot-stuffing';
import {
  asDequeueError,
  DequeueError,
  ProtocolError,
  ProviderCutError,
  TimeoutError,
} from '../errors';
import type { MailEnvelope, MailSink, MessageDraft } from '../ports';
import { afterTheDot, answerToSinkError, type ReceivedBody, sizeLimit } from './dot-verdict';
import { messageEnvelope, type Transaction } from './message-envelope';
import { messageId } from './message-id';
import type { ReceiverLimits } from './receiver-limits';
import type { SessionReport } from './session-report';
import { type Bound, duration, SessionEnd, type SessionWire } from './session-wire';
import { receivedHeader } from './trace-header';

/** What receiving a message needs of its session. */
export interface MessageSession {
  readonly wire: SessionWire;
  readonly sink: MailSink;
  readonly report: SessionReport;
  readonly limits: ReceiverLimits;
  /** The provider's EHLO/HELO name, and whether it said EHLO (the trace header's WITH). */
  readonly heloName: string;
  readonly esmtp: boolean;
}

/** DATA, after the session checked the transaction has recipients: receive and answer. */
export function receiveMessage(session: MessageSession, tx: Transaction): Promise<void> {
  return new MessageReceipt(session, tx).receive();
}

class MessageReceipt {
  private readonly wire: SessionWire;
  private readonly sink: MailSink;
  private readonly report: SessionReport;
  private readonly limits: ReceiverLimits;
  private readonly heloName: string;
  private readonly esmtp: boolean;

  constructor(
    session: MessageSession,
    private readonly tx: Transaction,
  ) {
    this.wire = session.wire;
    this.sink = session.sink;
    this.report = session.report;
    this.limits = session.limits;
    this.heloName = session.heloName;
    this.esmtp = session.esmtp;
  }

  /** Stream the message to the sink, then answer for it (250, 451, 552 or 554). */
  async receive(): Promise<void> {
    const date = new Date(this.wire.now());
    const id = messageId(date);
    const trace = receivedHeader({
      heloName: this.heloName,
      remoteAddress: this.wire.turn.socket.remoteAddress,
      by: this.wire.name,
      esmtp: this.esmtp,
      tls: this.wire.tls,
      id,
      date,
    });
    const envelope = messageEnvelope(this.tx, {
      id,
      date,
      provider: this.wire.turn.provider,
      target: this.wire.turn.target.name,
      domains: customerDomains(this.wire.turn.target),
      heloName: this.heloName,
      tls: this.wire.tls,
      traceBytes: trace.length,
    });
    const draft = await this.open(envelope, trace);
    if (!draft) return;
    await this.wire.reply('354 End data with <CR><LF>.<CR><LF>');
    const body = await this.readBody(id, draft);
    this.wire.note('*', `message ${id}: ${body.size} bytes received`);
    const verdict = afterTheDot(id, body, this.limits.maxMessageBytes);
    if (verdict.answer === 'too-big') {
      this.report.refuse(verdict.refusal);
      await this.wire.reply(verdict.reply);
    } else if (verdict.answer === 'not-stored') {
      await this.failed(id, verdict.error, 'could not be stored');
    } else {
      await this.acknowledge(id, verdict.draft);
    }
  }

  /**
   * The sink's draft for the message, with the trace header written first; null when the sink
   * would not take it (answered here, 451 or 554).
   */
  private async open(envelope: MailEnvelope, trace: Buffer): Promise<MessageDraft | null> {
    let draft: MessageDraft | null = null;
    const bound = this.wire.bound(this.limits.commandTimeoutMs);
    try {
      const begun = this.tx.sinkTx ? this.tx.sinkTx.begin(envelope) : this.sink.begin(envelope);
      draft = await this.wire.timer.within(begun, bound.until).catch((e: unknown) => {
        // A draft that comes after all is dropped at once.
        if (e instanceof TimeoutError)
          begun.then(
            (late) => late.abort(),
            () => undefined,
          );
        throw e;
      });
      await this.wire.timer.within(draft.write([trace]), bound.until);
      return draft;
    } catch (e) {
      if (draft) await this.abortQuietly(draft);
      if (e instanceof TimeoutError && bound.byDeadline) throw this.wire.expired(bound, 'sink');
      await this.failed(envelope.id, asDequeueError(e), 'was not accepted');
      return null;
    }
  }

  /**
   * The message up to the final dot, unstuffed and written to the draft while it fits. Past the
   * size limit it is read on to the dot but stored no more (RFC 1870 section 6.3); a provider that
   * sends twice the limit without ending is cut off.
   */
  private async readBody(id: string, opened: MessageDraft): Promise<ReceivedBody> {
    const unstuffer = new DataUnstuffer();
    const max = this.limits.maxMessageBytes;
    let draft: MessageDraft | null = opened;
    let size = 0;
    let failure: DequeueError | null = null;
    for (;;) {
      const bound = this.wire.bound(this.limits.commandTimeoutMs);
      const chunk = await this.nextChunk(id, size, bound, draft);
      const piece = unstuffer.push(chunk);
      // One write per chunk, of the slices between stuffed dots: neither a write per slice nor
      // a copy to join them (each cost a fifth of the throughput; bench/odmr-receive.ts).
      let bytes = 0;
      for (const slice of piece.content) bytes += slice.length;
      size += bytes;
      const limit = sizeLimit(size, max);
      if (limit !== 'within' && draft) {
        await this.abortQuietly(draft);
        draft = null;
      }
      if (draft && bytes) {
        try {
          await this.wire.timer.within(draft.write(piece.content), bound.until);
        } catch (e) {
          await this.abortQuietly(draft);
          draft = null;
          if (e instanceof TimeoutError && bound.byDeadline) throw this.wire.expired(bound, 'sink');
          failure = asDequeueError(e);
        }
      }
      if (piece.ended) {
        this.wire.stream.unread(piece.rest);
        return { size, draft, failure };
      }
      if (limit === 'cut-off') {
        throw new SessionEnd(
          new ProtocolError(
            `${this.wire.turn.provider} kept sending message ${id} past twice the size limit (${max} bytes)`,
          ),
          `552 5.3.4 Message size exceeds fixed maximum message size, closing`,
        );
      }
    }
  }

  /**
   * The next chunk of the message. A connection that breaks, closes or falls silent in the middle
   * of it ends the session; the provider keeps the message and the draft is dropped.
   */
  private async nextChunk(
    id: string,
    size: number,
    bound: Bound,
    draft: MessageDraft | null,
  ): Promise<Buffer> {
    let chunk: Buffer | null;
    try {
      chunk = await this.wire.stream.readChunk(bound.until);
    } catch (e) {
      if (draft) await this.abortQuietly(draft);
      if (e instanceof TimeoutError)
        throw this.wire.expired(bound, `message data for ${id} (after ${size} bytes)`);
      throw new SessionEnd(
        new ProviderCutError(
          `connection to ${this.wire.turn.provider} broke in the middle of message ${id} after ${size} bytes; the provider keeps it`,
          { cause: e },
        ),
      );
    }
    if (!chunk) {
      if (draft) await this.abortQuietly(draft);
      throw new SessionEnd(
        new ProviderCutError(
          `${this.wire.turn.provider} closed the connection in the middle of message ${id} after ${size} bytes; the provider keeps it`,
        ),
      );
    }
    return chunk;
  }

  /**
   * Commit the draft and say 250: the provider deletes the message on our 250, so it is said only
   * once the sink holds the message durably, and not at all when it could no longer arrive.
   */
  private async acknowledge(id: string, draft: MessageDraft): Promise<void> {
    // RFC 5321 4.5.3.2.6: the provider waits 10 minutes for this reply; store within that.
    if (!this.wire.stream.canReply) {
      // No reply can reach the provider any more: it keeps the message, so we keep nothing.
      await this.abortQuietly(draft);
      throw new SessionEnd(this.goneBeforeReply(id, 'not stored'));
    }
    const commitBound = this.wire.bound(this.limits.dataEndTimeoutMs);
    try {
      const stored = await this.wire.timer.within(draft.commit(), commitBound.until);
      if (!this.wire.stream.canReply) {
        // Our 250 would never leave: kept, the message would certainly come again (a duplicate).
        if (draft.withdrawable) {
          await this.abortQuietly(draft);
          throw new SessionEnd(this.goneBeforeReply(id, 'withdrawn from the store'));
        }
        this.report.leaveBehind(
          `message ${id} went to ${stored.location} but the connection closed before our 250: not counted, and the provider will send it again (a duplicate)`,
        );
        throw new SessionEnd(null);
      }
      this.report.stored++;
      this.wire.note('*', `message ${id} stored: ${stored.location}`);
      // Sent now, not held for a pipelined group: a 250 we still held when the connection went
      // would be a message stored that the provider sends again.
      await this.wire.reply(`250 2.0.0 Ok: stored as ${id}`, true);
    } catch (e) {
      if (e instanceof SessionEnd) throw e;
      // Withdraw whatever the commit made visible: without our 250 the provider still has it.
      await this.abortQuietly(draft);
      if (e instanceof TimeoutError && commitBound.byDeadline)
        throw this.wire.expired(commitBound, 'sink');
      await this.failed(
        id,
        e instanceof TimeoutError
          ? new TimeoutError(`storing message ${id} took longer than ${duration(commitBound.ms)}`)
          : asDequeueError(e),
        'could not be stored',
      );
    }
  }

  /** The sink would not take the message: answer for it (answerToSinkError) and record why. */
  private async failed(id: string, error: DequeueError, what: string): Promise<void> {
    this.wire.note('*', `message ${id} ${what}: ${error.message}`);
    const answer = answerToSinkError(id, error, what);
    if (answer.refusal) this.report.refuse(answer.refusal);
    if (answer.sinkFailure) this.report.sinkFailure = answer.sinkFailure;
    await this.wire.reply(answer.reply);
  }

  private async abortQuietly(draft: MessageDraft): Promise<void> {
    // Bounded: a sink that hangs on abort must not hold the session past its deadline.
    const until = Math.min(this.wire.now() + this.limits.commandTimeoutMs, this.wire.turn.deadline);
    await this.wire.timer.within(draft.abort(), until).catch((e: unknown) => {
      const why = asDequeueError(e).message;
      this.wire.note('*', `abort failed: ${why}`);
      // It may still be visible, unacknowledged: the run's result says so (SessionReport.error).
      this.report.leaveBehind(
        e instanceof TimeoutError
          ? 'an unacknowledged message could not be withdrawn in time; the store may show it'
          : why,
      );
    });
  }

  private goneBeforeReply(id: string, what: string): DequeueError {
    return new DequeueError(
      'temporary',
      `connection to ${this.wire.turn.provider} closed before our reply to message ${id} could be sent: ${what}, the provider keeps it`,
    );
  }
}
