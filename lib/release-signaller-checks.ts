/**
 * ReleaseSignaller's props are checked before any resource exists: a conflicting or impossible
 * combination is one clear error naming the props, not a CloudFormation failure mid-deployment.
 */
import { Duration, Token } from 'aws-cdk-lib';
import { egressPortsProblem } from './function-egress';
import type { ReleaseSignallerProps } from './release-signaller-props';
import { MAIL_PREFIX, SECRET_PREFIX, SSM_PREFIX, type PrefixRule } from './prefix-rules';
import {
  describeSeconds,
  ScheduleExpressionError,
  scheduleIntervals,
  type ScheduleIntervals,
} from './schedule-intervals';

/** The default schedule: every 15 minutes. */
export const DEFAULT_SCHEDULE = 'rate(15 minutes)';
/** The default function timeout: Lambda's maximum (an ATRN reply may take 10 minutes). */
export const DEFAULT_TIMEOUT = Duration.minutes(15);
/** CloudWatch evaluates an alarm over 7 days at most: the no-cycle alarm waits twice the longest interval. */
const LONGEST_WATCHED_INTERVAL_SECONDS = 302_400;

/** What the checks learnt that the construct needs too. */
export interface CheckedProps {
  /** How far apart the schedule's cycles are. */
  readonly intervals: ScheduleIntervals;
}

export class ReleaseSignallerPropsError extends Error {
  override readonly name = 'ReleaseSignallerPropsError';
}

export function checkReleaseSignallerProps(
  path: string,
  props: ReleaseSignallerProps,
): CheckedProps {
  const fail = (message: string): never => {
    throw new ReleaseSignallerPropsError(`${path}: ${message}`);
  };

  if (props.staticEgress && props.vpc) {
    fail(
      'give either `vpc` (run in your VPC, egress is yours) or `staticEgress` (a new VPC with one fixed address), not both.',
    );
  }
  if (props.egressAllocationId !== undefined && !props.staticEgress) {
    fail(
      '`egressAllocationId` names the Elastic IP of the static egress NAT gateway: it needs `staticEgress: true`.',
    );
  }
  if (props.egressPorts !== undefined) {
    if (!props.vpc && !props.staticEgress) {
      fail(
        '`egressPorts` sets the security group of a function in a VPC: it needs `staticEgress` or `vpc` (outside a VPC, Lambda has no security group).',
      );
    }
    const problem = egressPortsProblem(props.egressPorts);
    if (problem) fail(`\`egressPorts\` ${problem}.`);
  }
  if (props.vpcSubnets && !props.vpc) {
    fail('`vpcSubnets` selects subnets of `vpc`: give `vpc` too.');
  }
  if (props.alarmEmail !== undefined && props.alarmTopic) {
    fail(
      '`alarmEmail` subscribes to the topic this construct creates; with your own `alarmTopic`, subscribe the address to that topic instead.',
    );
  }

  checkPrefix('ssmPrefix', props.ssmPrefix, SSM_PREFIX, fail);
  checkPrefix('secretPrefix', props.secretPrefix, SECRET_PREFIX, fail);
  checkPrefix('mailPrefix', props.mailPrefix, MAIL_PREFIX, fail);

  const days = (d: Duration | undefined) =>
    d === undefined ? undefined : d.toDays({ integral: false });
  const expiration = days(props.mailExpiration);
  const infrequentAccess = days(props.mailInfrequentAccessAfter);
  if (infrequentAccess !== undefined && infrequentAccess < 30) {
    fail(
      '`mailInfrequentAccessAfter` must be at least 30 days: S3 does not move objects to Standard-IA sooner.',
    );
  }
  if (expiration !== undefined && expiration < 1) {
    fail('`mailExpiration` must be at least 1 day.');
  }
  if (infrequentAccess !== undefined && infrequentAccess >= (expiration ?? 30)) {
    fail(
      `\`mailInfrequentAccessAfter\` (${infrequentAccess} days) must be sooner than \`mailExpiration\` (${expiration ?? 30} days${expiration === undefined ? ', the default' : ''}): S3 moves an old version to Standard-IA only before it expires.`,
    );
  }

  const seconds = props.timeout?.toSeconds();
  if (seconds !== undefined && (seconds < 1 || seconds > 900)) {
    fail(
      `\`timeout\` must be from 1 second to 15 minutes (the Lambda maximum), got ${props.timeout!.toHumanString()}.`,
    );
  }
  checkInteger('memorySize', props.memorySize, 128, 10_240, fail);
  checkInteger('scheduleRetryAttempts', props.scheduleRetryAttempts, 0, 185, fail);
  if (
    props.dashboardName !== undefined &&
    !Token.isUnresolved(props.dashboardName) &&
    !/^[A-Za-z0-9_-]{1,255}$/.test(props.dashboardName)
  ) {
    fail(
      `\`dashboardName\` must be 1 to 255 letters, digits, - or _ (CloudWatch's rule), got ${JSON.stringify(props.dashboardName)}.`,
    );
  }
  checkInteger('failingAfterCycles', props.failingAfterCycles, 1, 1000, fail);
  checkInteger('serverDownAfterCycles', props.serverDownAfterCycles, 1, 1000, fail);
  checkInteger('workerBatchSize', props.workerBatchSize, 1, 100, fail);
  checkInteger('workerMaxConcurrency', props.workerMaxConcurrency, 2, 1000, fail);
  checkInteger('workerMaxReceiveCount', props.workerMaxReceiveCount, 1, 1000, fail);
  if (
    props.fanOut === false &&
    (props.workerBatchSize ?? props.workerMaxConcurrency ?? props.workerMaxReceiveCount) !==
      undefined
  ) {
    fail(
      '`workerBatchSize`, `workerMaxConcurrency` and `workerMaxReceiveCount` shape the fan-out workers: they need `fanOut` (the default), not `fanOut: false`.',
    );
  }
  if (props.staleAfter !== undefined) {
    const hours = props.staleAfter.toHours({ integral: false });
    if (!Number.isInteger(hours) || hours < 1 || hours > 8760) {
      fail(
        `\`staleAfter\` must be a whole number of hours from 1 hour to 365 days, got ${props.staleAfter.toHumanString()}.`,
      );
    }
  }
  const age = props.scheduleMaxEventAge?.toSeconds();
  if (age !== undefined && (age < 60 || age > 86_400)) {
    fail(
      `\`scheduleMaxEventAge\` must be from 60 seconds to 24 hours (EventBridge Scheduler's limits), got ${props.scheduleMaxEventAge!.toHumanString()}.`,
    );
  }
  const reserved = props.reservedConcurrency;
  if (reserved !== undefined && reserved !== 'none') {
    checkInteger('reservedConcurrency', reserved, 1, 1000, fail);
    const workers = props.fanOut === false ? 0 : (props.workerMaxConcurrency ?? 10);
    if (reserved < workers + 1) {
      fail(
        `\`reservedConcurrency\` (${reserved}) leaves no room for a cycle beside the ${workers} fan-out workers (\`workerMaxConcurrency\`): give at least ${workers + 1}, or 'none'.`,
      );
    }
  }

  return { intervals: checkSchedule(props, fail) };
}

/**
 * The schedule against the timeout, the event ages and the stale bound: a cycle ends before the
 * next starts, nothing is delivered later than one interval, the stale bound outlasts the longest
 * interval, and the no-cycle alarm can watch twice the longest interval.
 */
function checkSchedule(
  props: ReleaseSignallerProps,
  fail: (m: string) => never,
): ScheduleIntervals {
  const expression = props.schedule?.expressionString ?? DEFAULT_SCHEDULE;
  let intervals: ScheduleIntervals;
  try {
    intervals = scheduleIntervals(expression, props.schedule?.timeZone?.timezoneName ?? 'UTC');
  } catch (error) {
    if (!(error instanceof ScheduleExpressionError)) throw error;
    return fail(`\`schedule\` ${error.message}.`);
  }
  const { shortestSeconds: shortest, longestSeconds: longest } = intervals;
  const timeout = (props.timeout ?? DEFAULT_TIMEOUT).toSeconds();
  if (timeout > shortest) {
    fail(
      `\`timeout\` (${describeSeconds(timeout)}) is longer than the shortest time between two cycles of \`schedule\` ${expression} (${describeSeconds(shortest)}): a cycle could still be talking to a provider when the next one starts. Lengthen the interval or shorten the timeout.`,
    );
  }
  const age = props.scheduleMaxEventAge?.toSeconds();
  if (age !== undefined && age > shortest) {
    fail(
      `\`scheduleMaxEventAge\` (${describeSeconds(age)}) is longer than the shortest time between two cycles (${describeSeconds(shortest)}): a late slot would run into the next cycle.`,
    );
  }
  if (longest > LONGEST_WATCHED_INTERVAL_SECONDS) {
    fail(
      `\`schedule\` ${expression} leaves up to ${describeSeconds(longest)} between two cycles: the no-cycle alarm waits twice the longest interval, and CloudWatch evaluates an alarm over 7 days at most. Schedule a cycle at least every 3.5 days.`,
    );
  }
  const stale = props.staleAfter?.toSeconds();
  if (stale !== undefined && stale < longest) {
    fail(
      `\`staleAfter\` (${props.staleAfter!.toHumanString()}) is shorter than the longest time between two cycles of \`schedule\` ${expression} (${describeSeconds(longest)}): every target would be stale before its next cycle.`,
    );
  }
  return intervals;
}

function checkPrefix(
  name: string,
  value: string | undefined,
  rule: PrefixRule,
  fail: (m: string) => never,
): void {
  if (value === undefined || Token.isUnresolved(value)) return;
  if (!rule.pattern.test(value))
    fail(`\`${name}\` must be ${rule.expected}, got ${JSON.stringify(value)}.`);
}

function checkInteger(
  name: string,
  value: number | undefined,
  min: number,
  max: number,
  fail: (m: string) => never,
): void {
  if (value === undefined || Token.isUnresolved(value)) return;
  if (!Number.isInteger(value) || value < min || value > max) {
    fail(`\`${name}\` must be a whole number from ${min} to ${max}, got ${value}.`);
  }
}
