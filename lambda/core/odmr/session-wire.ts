/**
 * The reversed session's side of the turned connection: our replies out, the provider's lines and
 * data in (provider-stream.ts), the transcript, and what a wait that ran out means. Every wait
 * ends at the earlier of its own RFC 5321 4.5.3.2 timeout and the session's stop time (the run's
 * deadline less the time kept to say 421 and close), on one timer (deadline-timer.ts).
 */
import { TLSSocket } from 'node:tls';
import { DeadlineTimer } from '../deadline-timer';
import { DequeueError, TimeoutError } from '../errors';
import type { MemoryBudget } from '../memory-budget';
import type { ReversedTurn } from '../ports';
import { onStop, stopReason } from '../run-stop';
import { ProviderStream } from './provider-stream';
import type { ReceiverLimits } from './receiver-limits';
import type { SessionReport } from './session-report';

/** Ends the session: the reply to send first (if any) and what to report. */
export class SessionEnd {
  constructor(
    readonly error: DequeueError | null,
    readonly reply?: string,
  ) {}
}

/** A bound for one wait: the earlier of its own timeout and the session's stop time. */
export interface Bound {
  readonly until: number;
  readonly byDeadline: boolean;
  readonly ms: number;
}

export class SessionWire {
  readonly timer: DeadlineTimer;
  readonly stream: ProviderStream;
  /**
   * The run's deadline less the time kept to send 421 and close; the moment the run was told to
   * stop, when it was (core/run-stop.ts).
   */
  stopAt: number;
  /** Why the run was stopped, once it was ("SIGINT"). */
  private stopped: string | null = null;
  /** Detaches the session from the run's stop signal (dispose()). */
  private readonly unsubscribe: () => void;
  /** The turned connection is encrypted (the trace header and the envelope say so). */
  readonly tls: boolean;

  constructor(
    readonly turn: ReversedTurn,
    private readonly limits: ReceiverLimits,
    readonly now: () => number,
    private readonly report: SessionReport,
    memory?: MemoryBudget,
  ) {
    this.timer = new DeadlineTimer(now);
    this.stream = new ProviderStream(
      turn.socket,
      turn.pending,
      limits.maxCommandLineBytes,
      this.timer,
      now,
      memory,
    );
    this.stopAt = turn.deadline - limits.closeReserveMs;
    this.tls =
      turn.socket instanceof TLSSocket ||
      (turn.socket as { encrypted?: boolean }).encrypted === true;
    // Every wait under way ends now, each as if the deadline had come; later waits end at once.
    this.unsubscribe = onStop(turn.stop, () => {
      this.stopped = stopReason(turn.stop!);
      this.stopAt = Math.min(this.stopAt, this.now());
      this.timer.ringAll();
    });
  }

  /** The session is over: it no longer listens for the run's stop. */
  dispose(): void {
    this.unsubscribe();
  }

  /** Our name in replies (the helloName of the turn). */
  get name(): string {
    return this.turn.helloName;
  }

  /** A line of the transcript: C the provider's, S ours, * what happened. */
  note(direction: 'C' | 'S' | '*', text: string): void {
    this.turn.transcript.line(this.turn.target.name, direction, text);
  }

  /** One reply (lines joined by CRLF), bounded; `now` sends it at once, not with a group. */
  async reply(text: string, now = false): Promise<void> {
    for (const line of text.split('\r\n')) this.note('S', line);
    const bound = this.bound(this.limits.commandTimeoutMs);
    try {
      await this.stream.write(`${text}\r\n`, bound.until, now);
    } catch (e) {
      if (!(e instanceof TimeoutError)) throw e;
      if (bound.byDeadline) throw new SessionEnd(this.deadlineError());
      throw new SessionEnd(
        new TimeoutError(
          `${this.turn.provider} stopped reading our replies for ${duration(bound.ms)}`,
        ),
      );
    }
  }

  /**
   * The bound of a wait of `ms` starting now. `byDeadline` is read when the wait has run out: a
   * stop that came meanwhile makes it the run's end, not the provider's silence.
   */
  bound(ms: number): Bound {
    const own = this.now() + ms;
    const until = Math.min(own, this.stopAt);
    const wire = this;
    return {
      until,
      ms,
      get byDeadline() {
        return own >= wire.stopAt;
      },
    };
  }

  deadlineError(): DequeueError {
    const end = this.stopped ? `the run was stopped (${this.stopped})` : "the run's deadline came";
    return new DequeueError(
      'temporary',
      `${end} after ${this.report.stored} message(s) were stored; the rest stays at ${this.turn.provider} for the next cycle`,
    );
  }

  /** The 421 that ends the session at the run's end (RFC 5321 3.8), deadline or stop. */
  closingReply(): string {
    return this.stopped
      ? `421 4.3.2 ${this.name} shutting down, closing; try again later`
      : `421 4.3.2 ${this.name} run deadline reached, closing; try again later`;
  }

  /** What a wait that ran out means: the run's end (deadline or stop), or a silent provider. */
  expired(bound: Bound, waitingFor: string): SessionEnd {
    if (bound.byDeadline) return new SessionEnd(this.deadlineError(), this.closingReply());
    return new SessionEnd(
      new TimeoutError(
        `${this.turn.provider} sent no ${waitingFor} within ${duration(bound.ms)} (RFC 5321 4.5.3.2)`,
      ),
      `421 4.4.2 ${this.name} timeout, closing`,
    );
  }
}

/** "300 ms", "5 s", "10 min": how long a bound was, for messages. */
export function duration(ms: number): string {
  if (ms < 10_000) return `${ms} ms`;
  return ms % 60_000 === 0 ? `${ms / 60_000} min` : `${Math.round(ms / 1000)} s`;
}
