/**
 * A deadline timer: bounds for many short waits with far-off limits, on one timer.
 *
 * The reversed session waits once or twice per chunk of a message (the next bytes, the sink
 * taking them), each bounded by RFC 5321's minutes and the run's deadline. A setTimeout and
 * clearTimeout per wait cost a tenth of the receive throughput (bench/odmr-receive.ts); here a
 * wait costs a Set entry, and the one timer is armed for the earliest bound and re-armed only
 * when it rings, which with minute-long bounds is almost never.
 */
import { TimeoutError } from './errors';

/** setTimeout cannot wait longer than 2^31-1 ms (about 24 days); longer means "no bound". */
export const MAX_TIMER_MS = 2_147_483_647;

interface Wait {
  readonly until: number;
  readonly ring: () => void;
}

export class DeadlineTimer {
  private timer: NodeJS.Timeout | null = null;
  private armedFor = Number.POSITIVE_INFINITY;
  private readonly waits = new Set<Wait>();

  constructor(private readonly now: () => number = Date.now) {}

  /** `promise`, or a TimeoutError once the epoch-ms `until` has passed. */
  within<T>(promise: Promise<T>, until: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const wait: Wait = { until, ring: () => reject(new TimeoutError('bound reached')) };
      this.waits.add(wait);
      this.arm(until);
      promise.then(
        (value) => {
          this.waits.delete(wait);
          resolve(value);
        },
        (e: unknown) => {
          this.waits.delete(wait);
          reject(e);
        },
      );
    });
  }

  /**
   * Ring every wait now, whatever its bound: the run was told to stop (SIGINT, SIGTERM), and each
   * wait ends as if its bound had come; the session then says 421 and closes.
   */
  ringAll(): void {
    const waits = [...this.waits];
    this.waits.clear();
    for (const wait of waits) wait.ring();
  }

  /** Forget every wait and the timer (the session is over). */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.armedFor = Number.POSITIVE_INFINITY;
    this.waits.clear();
  }

  private arm(until: number): void {
    if (this.timer && this.armedFor <= until) return;
    if (this.timer) clearTimeout(this.timer);
    this.armedFor = until;
    this.timer = setTimeout(
      () => this.ring(),
      Math.max(0, Math.min(until - this.now(), MAX_TIMER_MS)),
    );
  }

  private ring(): void {
    this.timer = null;
    this.armedFor = Number.POSITIVE_INFINITY;
    const now = this.now();
    let next = Number.POSITIVE_INFINITY;
    for (const wait of this.waits) {
      if (wait.until <= now) {
        this.waits.delete(wait);
        wait.ring();
      } else {
        next = Math.min(next, wait.until);
      }
    }
    if (next !== Number.POSITIVE_INFINITY) this.arm(next);
  }
}
