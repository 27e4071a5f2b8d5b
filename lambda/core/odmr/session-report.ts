/**
 * What a reversed session reports when it ends: how many messages were stored, and one error
 * naming what the provider still holds or returns: the sink that failed, recipients the
 * destination put off, messages refused for good, and messages left visible without our 250
 * (the provider sends them again: a duplicate). Plain state and text, no I/O.
 */
import { DequeueError } from '../errors';

/** Refused messages named in the result; the rest are counted. */
export const MAX_NAMED_REFUSALS = 5;

export class SessionReport {
  /** Messages stored and acknowledged with 250. */
  stored = 0;
  /** Set when the sink failed: the session closes at the next command (the rest stays queued). */
  sinkFailure: DequeueError | null = null;
  /** Recipients the destination answered 4xx (the relay): the first few are named. */
  private readonly deferrals: string[] = [];
  private deferredRecipients = 0;
  /** Messages refused for good (552, 554): the provider bounces them. The first few are named. */
  private readonly refusals: string[] = [];
  private refusedCount = 0;
  /** Recipients refused as outside the customer's domains (550 5.7.1): counted in the result. */
  foreignRecipients = 0;
  /** Messages the sink put off at MAIL (too big for the space left): the first few are named. */
  private readonly putOffs: string[] = [];
  private putOffCount = 0;
  /** Unacknowledged messages the sink could not take back, or could not be told apart: reported. */
  private readonly leftBehind: string[] = [];

  /** Mail the store may show that the provider still holds (it will come again). */
  leaveBehind(what: string): void {
    this.leftBehind.push(what);
  }

  /**
   * The session's error, or null when all went well: why it ended (`ended`), else the sink's
   * failure, else the recipients put off and the messages refused; with whatever was left
   * visible without our 250 added to it.
   */
  error(ended: DequeueError | null): DequeueError | null {
    const main = this.mainError(ended);
    if (!this.leftBehind.length) return main;
    // Mail visible that the provider still holds: its next delivery makes a duplicate.
    const also =
      this.leftBehind.slice(0, MAX_NAMED_REFUSALS).join('; ') +
      (this.leftBehind.length > MAX_NAMED_REFUSALS
        ? `; and ${this.leftBehind.length - MAX_NAMED_REFUSALS} more`
        : '');
    if (!main) return new DequeueError('temporary', also);
    return new DequeueError(main.kind, `${main.message}; also: ${also}`, { cause: main });
  }

  private mainError(error: DequeueError | null): DequeueError | null {
    if (error) return error;
    if (this.sinkFailure) return this.sinkFailure;
    if (this.putOffCount) {
      const more =
        this.putOffCount > this.putOffs.length
          ? `; and ${this.putOffCount - this.putOffs.length} more`
          : '';
      return new DequeueError(
        'temporary',
        `${this.putOffCount} message(s) put off, the provider keeps them: ${this.putOffs.join('; ')}${more}`,
      );
    }
    if (this.deferredRecipients) {
      const more =
        this.deferredRecipients > this.deferrals.length
          ? `; and ${this.deferredRecipients - this.deferrals.length} more`
          : '';
      const deferred = `${this.deferredRecipients} recipient(s) put off by the destination, the provider keeps them: ${this.deferrals.join('; ')}${more}`;
      if (!this.refusedCount) return new DequeueError('temporary', deferred);
      const refused = new DequeueError(
        'permanent',
        `${this.refusedCount} refused for good: ${this.refusals.join('; ')}`,
      );
      return new DequeueError('permanent', `${refused.message}; ${deferred}`);
    }
    if (this.refusedCount) {
      const more =
        this.refusedCount > this.refusals.length
          ? `; and ${this.refusedCount - this.refusals.length} more`
          : '';
      return new DequeueError(
        'permanent',
        `${this.refusedCount} message(s) refused, the provider returns them to their senders: ${this.refusals.join('; ')}${more}`,
      );
    }
    return null;
  }

  /** A message (or a recipient) refused for good: the provider returns it to its sender. */
  refuse(why: string): void {
    if (++this.refusedCount <= MAX_NAMED_REFUSALS) this.refusals.push(why);
  }

  /** A recipient outside the customer's domains (RFC 2645 section 4): refused for good, counted. */
  refuseForeign(why: string): void {
    this.foreignRecipients++;
    this.refuse(why);
  }

  /** A message the sink would not take now (452 at MAIL): the provider keeps it. */
  putOff(why: string): void {
    if (++this.putOffCount <= MAX_NAMED_REFUSALS) this.putOffs.push(why);
  }

  /** A recipient the destination put off (4xx to RCPT): the provider keeps it; the result says why. */
  deferRecipient(why: string): void {
    if (++this.deferredRecipients <= MAX_NAMED_REFUSALS) this.deferrals.push(why);
  }
}
