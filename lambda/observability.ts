/**
 * What operators see: one structured JSON log line per target result, and CloudWatch metrics in
 * the Embedded Metric Format (EMF), published from the function's own stdout without API calls.
 *
 * Metrics, namespace `Dequeue` (POWERTOOLS_METRICS_NAMESPACE), default dimension `service`:
 * - `Targets` (Count), dimensions service + `outcome`: how many targets ended with each outcome,
 *   all six every invocation (zeros included, so graphs show 0 rather than gaps).
 * - `TargetFailures` (Count), dimension service only: failed targets (temporary, permanent,
 *   config), emitted every invocation, 0 included. The stack's dashboard graphs it; no alarm
 *   watches it (one failed cycle is the next cycle's retry): the failing-targets alarm watches
 *   `FailingTargets` below, the stale-targets alarm `StaleTargets`.
 * - `MessagesStored` (Count): mail received and stored after ATRN.
 * - `TargetDuration` (Milliseconds): one value per target actually worked.
 * - `FailingTargets` and `StaleTargets` (Count), dimension service only: how many targets have
 *   failed DEQUEUE_FAILING_AFTER_CYCLES cycles in a row, and how many have not been released for
 *   DEQUEUE_STALE_AFTER_HOURS, from the status items (docs/lambda.md "Target status"). One value
 *   each per full cycle; left out of dry runs and of runs limited to some targets, which do not
 *   see every target (the alarms keep their state through a missing value).
 * - `ServerDownTargets` (Count), dimension service only, published with the two above: how many
 *   targets have found their customer's own server down (`precheck`) DEQUEUE_SERVER_DOWN_AFTER_CYCLES
 *   checks in a row or more. One metric for all targets: a metric per target would be billed
 *   as a custom metric each.
 *
 * An EMF document has one set of dimensions for all its metrics, so `Targets` by outcome goes out
 * as one single-metric document per outcome; everything else is stored and flushed once, at the
 * end of the invocation (Powertools flushes early only past 100 values of one metric).
 * https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
 *
 * Nothing here ever sees a credential: results carry none (docs/outcomes.md).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { isFailure, type CycleResult, type Outcome, type TargetResult } from './core/result';

export const DEFAULT_SERVICE_NAME = 'dequeue';
export const DEFAULT_METRICS_NAMESPACE = 'Dequeue';
export const OUTCOMES: readonly Outcome[] = [
  'signalled',
  'no-mail',
  'skipped',
  'temporary-failure',
  'permanent-failure',
  'config-error',
];

/** Targets in need of attention, counted once per cycle. */
export interface TargetHealth {
  readonly failing: number;
  readonly stale: number;
  /** Targets whose own server the precheck has found down for long enough. */
  readonly serverDown: number;
}

export interface Observability {
  readonly logger: Logger;
  readonly metrics: Metrics;
}

/** Powertools reads POWERTOOLS_* itself; the defaults here keep local runs tidy without them. */
export function createObservability(env: NodeJS.ProcessEnv): Observability {
  const serviceName = env.POWERTOOLS_SERVICE_NAME || DEFAULT_SERVICE_NAME;
  return {
    logger: new Logger({ serviceName }),
    metrics: new Metrics({
      serviceName,
      namespace: env.POWERTOOLS_METRICS_NAMESPACE || DEFAULT_METRICS_NAMESPACE,
    }),
  };
}

/** Worked targets have a duration worth graphing; skipped and invalid ones took no time. */
const WORKED = new Set<Outcome>(['signalled', 'no-mail', 'temporary-failure', 'permanent-failure']);

/** One invocation's account: a line per target as it finishes, the metrics flushed once. */
export class InvocationReport {
  private readonly tally = new Map<Outcome, number>(OUTCOMES.map((o) => [o, 0]));
  private failures = 0;
  private messages = 0;
  private health?: TargetHealth;

  constructor(private readonly observability: Observability) {}

  target(result: TargetResult): void {
    const { logger, metrics } = this.observability;
    const line = {
      target: result.target,
      outcome: result.outcome,
      cycle: result.cycle,
      durationMs: result.durationMs,
      error: result.error,
      messages: result.messages,
      ...(result.refusedRecipients ? { refusedRecipients: result.refusedRecipients } : {}),
      ...(result.reason ? { reason: result.reason } : {}),
      replies: result.replies,
    };
    if (isFailure(result.outcome)) logger.warn('target result', line);
    else logger.info('target result', line);

    this.tally.set(result.outcome, (this.tally.get(result.outcome) ?? 0) + 1);
    if (isFailure(result.outcome)) this.failures++;
    this.messages += result.messages;
    if (WORKED.has(result.outcome))
      metrics.addMetric('TargetDuration', MetricUnit.Milliseconds, result.durationMs);
  }

  /** The cycle's count of failing and stale targets, published with the rest in finish(). */
  targetHealth(health: TargetHealth): void {
    this.health = health;
  }

  /** Emit the counts and flush. Call once, last, whatever happened (also after an error). */
  finish(cycle: CycleResult | undefined, summary: Record<string, unknown> = {}): void {
    const { logger, metrics } = this.observability;
    for (const [outcome, count] of this.tally) {
      const single = metrics.singleMetric();
      single.addDimension('outcome', outcome);
      single.addMetric('Targets', MetricUnit.Count, count);
    }
    metrics.addMetric('TargetFailures', MetricUnit.Count, this.failures);
    metrics.addMetric('MessagesStored', MetricUnit.Count, this.messages);
    if (this.health) {
      metrics.addMetric('FailingTargets', MetricUnit.Count, this.health.failing);
      metrics.addMetric('StaleTargets', MetricUnit.Count, this.health.stale);
      metrics.addMetric('ServerDownTargets', MetricUnit.Count, this.health.serverDown);
    }
    metrics.publishStoredMetrics();
    logger.info('cycle finished', {
      cycle: cycle?.cycle ?? null,
      targets: cycle?.results.length ?? 0,
      failures: this.failures,
      messages: this.messages,
      outcomes: Object.fromEntries(this.tally),
      ...(this.health
        ? {
            failingTargets: this.health.failing,
            staleTargets: this.health.stale,
            serverDownTargets: this.health.serverDown,
          }
        : {}),
      ...(cycle?.notCounted ? { notCounted: cycle.notCounted } : {}),
      ...summary,
    });
  }
}
