/**
 * What an operator looks at: one CloudWatch dashboard (cycles, targets by outcome, failing and
 * stale targets, mail stored, how long cycles take, the function's errors) and saved Logs
 * Insights queries over the function's log (the last result of every target, recent failures).
 *
 * The widgets read the metrics the handler writes through the embedded metric format (namespace
 * `Dequeue`, dimension `service` with this deployment's own value; see lambda/observability.ts) and Lambda's own metrics; the
 * queries read its JSON log lines (`message: "target result"`, with `target`, `outcome`, `cycle`,
 * `durationMs`, `error`, `reason`, `messages`).
 */
import type { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import {
  dequeueMetric,
  FAILING_TARGETS_METRIC,
  METRICS_NAMESPACE,
  SERVER_DOWN_TARGETS_METRIC,
  STALE_TARGETS_METRIC,
  TARGET_FAILURES_METRIC,
} from './signaller-alarms';

/** Every outcome of a target (docs/outcomes.md), as the `Targets` metric's dimension. */
export const TARGET_OUTCOMES = [
  'signalled',
  'no-mail',
  'skipped',
  'temporary-failure',
  'permanent-failure',
  'config-error',
] as const;
const FAILURE_OUTCOMES = ['temporary-failure', 'permanent-failure', 'config-error'] as const;

/** The log line the handler writes once per target (lambda/observability.ts). */
const TARGET_RESULT = 'message = "target result"';

export interface SignallerDashboardProps {
  /** The release-signalling function. */
  readonly function: lambda.IFunction;
  /** The `service` dimension of the handler's metrics (POWERTOOLS_SERVICE_NAME). */
  readonly service: string;
  /** Its timeout, drawn as a line on the duration graph: a cycle that reaches it was cut short. */
  readonly timeout: Duration;
  /** The function's log group, which the saved queries read. */
  readonly logGroup: logs.ILogGroup;
  /** Dashboard name; undefined: CloudFormation generates one. */
  readonly dashboardName?: string;
  /** Folder of the saved queries in the Logs Insights console, e.g. `Dequeue`. */
  readonly queryFolder: string;
  /** The graphs' period. */
  readonly period: Duration;
}

export class SignallerDashboard extends Construct {
  readonly dashboard: cloudwatch.Dashboard;
  /** The latest result of every target: outcome, cycle, time and error. */
  readonly lastResultPerTarget: logs.QueryDefinition;
  /**
   * Every failed target result in the time range chosen in the console (a saved query carries no
   * range of its own: pick 1 day); the dashboard's table shows the same over its day.
   */
  readonly recentFailures: logs.QueryDefinition;

  constructor(scope: Construct, id: string, props: SignallerDashboardProps) {
    super(scope, id);
    const period = props.period;
    const dequeue = (
      metric: { readonly namespace: string; readonly metricName: string },
      statistic: string,
      label: string,
    ) => dequeueMetric(metric, props.service, { statistic, period, label });

    const lastResultQuery = new logs.QueryString({
      filterStatements: [TARGET_RESULT],
      statsStatements: [
        'latest(outcome) as lastOutcome, latest(cycle) as lastCycle, max(@timestamp) as lastAttemptAt, latest(error) as lastError by target',
      ],
      sort: 'target asc',
      limit: 10_000,
    });
    const failuresQuery = new logs.QueryString({
      fields: ['@timestamp', 'target', 'outcome', 'cycle', 'error', 'reason'],
      filterStatements: [
        TARGET_RESULT,
        `outcome in [${FAILURE_OUTCOMES.map((o) => `"${o}"`).join(', ')}]`,
      ],
      sort: '@timestamp desc',
      limit: 1000,
    });
    this.lastResultPerTarget = new logs.QueryDefinition(this, 'LastResultPerTarget', {
      queryDefinitionName: `${props.queryFolder}/last result per target`,
      queryString: lastResultQuery,
      logGroups: [props.logGroup],
    });
    this.recentFailures = new logs.QueryDefinition(this, 'RecentFailures', {
      queryDefinitionName: `${props.queryFolder}/failures (run it over the last day)`,
      queryString: failuresQuery,
      logGroups: [props.logGroup],
    });

    const fn = props.function;
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: props.dashboardName,
      // The failures table below then shows the last day, as its title says.
      start: '-P1D',
      periodOverride: cloudwatch.PeriodOverride.AUTO,
      widgets: [
        [
          new cloudwatch.GraphWidget({
            title: 'Cycles (function invocations) and failed ones',
            left: [
              fn.metricInvocations({ period, statistic: cloudwatch.Stats.SUM, label: 'cycles' }),
              fn.metricErrors({
                period,
                statistic: cloudwatch.Stats.SUM,
                label: 'function errors',
              }),
              fn.metricThrottles({ period, statistic: cloudwatch.Stats.SUM, label: 'throttled' }),
            ],
            leftYAxis: { min: 0 },
            width: 12,
          }),
          new cloudwatch.GraphWidget({
            title: 'Targets by outcome',
            stacked: true,
            left: TARGET_OUTCOMES.map((outcome) =>
              dequeueMetric(
                { namespace: METRICS_NAMESPACE, metricName: 'Targets' },
                props.service,
                {
                  dimensionsMap: { outcome },
                  statistic: cloudwatch.Stats.SUM,
                  period,
                  label: outcome,
                },
              ),
            ),
            leftYAxis: { min: 0 },
            width: 12,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Failing, stale and server-down targets (the alarms watch these)',
            left: [
              dequeue(FAILING_TARGETS_METRIC, cloudwatch.Stats.MAXIMUM, 'failing'),
              dequeue(STALE_TARGETS_METRIC, cloudwatch.Stats.MAXIMUM, 'stale'),
              dequeue(SERVER_DOWN_TARGETS_METRIC, cloudwatch.Stats.MAXIMUM, 'server down'),
              dequeue(TARGET_FAILURES_METRIC, cloudwatch.Stats.SUM, 'failed results'),
            ],
            leftYAxis: { min: 0 },
            leftAnnotations: [{ value: 1, label: 'alarm', color: cloudwatch.Color.RED }],
            width: 12,
          }),
          new cloudwatch.GraphWidget({
            title: 'Messages stored after ATRN',
            left: [
              dequeue(
                { ...TARGET_FAILURES_METRIC, metricName: 'MessagesStored' },
                cloudwatch.Stats.SUM,
                'messages',
              ),
            ],
            leftYAxis: { min: 0 },
            width: 12,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Cycle duration (function duration)',
            left: [
              fn.metricDuration({ period, statistic: cloudwatch.Stats.AVERAGE, label: 'average' }),
              fn.metricDuration({ period, statistic: cloudwatch.Stats.MAXIMUM, label: 'maximum' }),
            ],
            leftYAxis: { min: 0 },
            leftAnnotations: [
              {
                value: props.timeout.toMilliseconds(),
                label: 'timeout',
                color: cloudwatch.Color.RED,
              },
            ],
            width: 12,
          }),
          new cloudwatch.GraphWidget({
            title: 'Time per target worked',
            left: [
              dequeue(
                { ...TARGET_FAILURES_METRIC, metricName: 'TargetDuration' },
                cloudwatch.Stats.percentile(50),
                'p50',
              ),
              dequeue(
                { ...TARGET_FAILURES_METRIC, metricName: 'TargetDuration' },
                cloudwatch.Stats.MAXIMUM,
                'maximum',
              ),
            ],
            leftYAxis: { min: 0 },
            width: 12,
          }),
        ],
        [
          new cloudwatch.LogQueryWidget({
            title: 'Last result per target',
            logGroupNames: [props.logGroup.logGroupName],
            queryString: lastResultQuery.toString(),
            view: cloudwatch.LogQueryVisualizationType.TABLE,
            width: 24,
            height: 8,
          }),
        ],
        [
          new cloudwatch.LogQueryWidget({
            title: 'Failed target results',
            logGroupNames: [props.logGroup.logGroupName],
            queryString: failuresQuery.toString(),
            view: cloudwatch.LogQueryVisualizationType.TABLE,
            width: 24,
            height: 8,
          }),
        ],
      ],
    });
  }
}
