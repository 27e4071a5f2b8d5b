/**
 * Everything the function's handler is wired with (lambda/handler.ts): the adapters, taken in so
 * that tests give their own, built from the environment in Lambda (lambda/deployed-adapters.ts).
 */
import type { MxResolver } from './core/precheck/mx-servers';
import type { MemoryBudget } from './core/memory-budget';
import type {
  ConfigSource,
  Credentials,
  CycleCounter,
  MailReceiver,
  MailSink,
  TargetLeases,
  WorkQueue,
} from './core/ports';
import type { Observability } from './observability';
import type { HealthThresholds, StatusStore } from './target-health';

export interface HandlerDeps {
  readonly config: ConfigSource;
  readonly credentials: Credentials;
  readonly counter: CycleCounter;
  /** One session per target at a time, across invocations (DynamoDB: `lease#<target>`). */
  readonly leases?: TargetLeases;
  /**
   * Serves mail pulled after ATRN (RFC 2645) as given; tests may plug one in. Without it, one is
   * made per invocation from `mailStore` and settings.mail (docs/odmr.md); without either (and
   * without a relay) ATRN targets end `config-error`.
   */
  readonly receiver?: MailReceiver;
  /** Where ATRN mail is stored: S3 (DEQUEUE_MAIL_BUCKET, DEQUEUE_MAIL_PREFIX). */
  readonly mailStore?: MailSink;
  /** The in-flight mail memory of a run, shared by the store and every session (from the function's memory). */
  readonly mailMemory?: MemoryBudget;
  /** Where a cycle too large for one run sends its targets: SQS (DEQUEUE_WORK_QUEUE_URL, docs/fan-out.md). */
  readonly workQueue?: WorkQueue;
  /**
   * Added to the error of a relay connection to port 25 that timed out: AWS blocks outbound 25
   * from functions outside a VPC (port25Hint). Undefined outside Lambda.
   */
  readonly port25Hint?: string;
  readonly observability: Observability;
  /**
   * Each target's status after each cycle (DynamoDB: `status#<target>` beside the counter), and
   * the thresholds of the FailingTargets and StaleTargets metrics counted from it. Absent: no
   * status is kept and the two metrics are not published.
   */
  readonly status?: StatusStore;
  readonly health?: HealthThresholds;
  /** Time kept back from getRemainingTimeInMillis() for reporting. Default 5 s. */
  readonly safetyMarginMs?: number;
  readonly now?: () => number;
  /** Extra trusted CA (PEM) for provider certificates (tests). */
  readonly tlsCa?: string;
  /** Host resolution for dry runs (tests); default: the system resolver. */
  readonly resolveHost?: (host: string) => Promise<void>;
  /** MX lookups for `"precheck": "mx"` (the system resolver; tests give their own). */
  readonly resolveMx?: MxResolver;
}
