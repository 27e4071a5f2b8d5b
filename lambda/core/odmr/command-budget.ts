/**
 * How many refusals the reversed session gives a provider before it hangs up. Genuinely bad
 * commands are counted against MAX_REJECTED_COMMANDS; flow control (RFC 5321 4.5.3.1.10's 452,
 * RFC 2920 3.1's 503/554 after a refused MAIL or all RCPTs refused) is free up to a much larger
 * bound, so that a pipelining provider may send many RCPTs while one that loops still ends.
 * Both counts start again when a message's transaction ends.
 */
import { ProtocolError } from '../errors';
import type { SessionWire } from './session-wire';
import { SessionEnd } from './session-wire';

/**
 * Rejected commands tolerated per transaction (counted from the end of the last message) before
 * we hang up on a provider that is out of step. Flow control is not counted (see `deferred`).
 */
export const MAX_REJECTED_COMMANDS = 20;
/**
 * Flow-control replies (452, and 503 after a refused MAIL) tolerated per transaction before they
 * count as rejected: a pipelining provider may send any number of RCPTs, one that loops must end.
 */
export const MAX_FLOW_CONTROL_REPLIES = 10_000;

export class CommandBudget {
  /** Genuinely bad commands since the last message ended (MAX_REJECTED_COMMANDS). */
  private rejected = 0;
  /** Flow-control replies since the last message ended (MAX_FLOW_CONTROL_REPLIES). */
  private flowControl = 0;

  constructor(private readonly wire: SessionWire) {}

  /** A bad command: answered with `reply`, or the session ends once there were too many. */
  async reject(reply: string): Promise<SessionEnd | null> {
    if (++this.rejected > MAX_REJECTED_COMMANDS) {
      return new SessionEnd(
        new ProtocolError(
          `${this.wire.turn.provider} sent more than ${MAX_REJECTED_COMMANDS} commands we had to reject; the last: ${reply}`,
        ),
        `421 4.7.0 ${this.wire.name} too many errors, closing`,
      );
    }
    await this.wire.reply(reply);
    return null;
  }

  /** A refusal that is flow control: free, up to its bound. */
  async deferred(reply: string): Promise<SessionEnd | null> {
    if (++this.flowControl > MAX_FLOW_CONTROL_REPLIES) return this.reject(reply);
    await this.wire.reply(reply);
    return null;
  }

  /** A message's transaction is over (whatever its outcome): the counts start again. */
  transactionEnded(): void {
    this.rejected = 0;
    this.flowControl = 0;
  }
}
