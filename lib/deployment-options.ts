/**
 * The deployment options of the dequeue app, read from CDK context (`-c key=value` or the
 * `context` block of cdk.json) and validated in one place, before any construct exists, so that a
 * mistake is reported as one clear sentence naming the context key instead of a CloudFormation
 * failure half-way through a deployment.
 *
 * Values from `-c` arrive as strings and values from cdk.json arrive typed: both are accepted.
 * Static egress is taken only from cdk.json (lib/egress-options.ts says why).
 */
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import {
  ContextReader,
  DeploymentOptionsError,
  rejectMisspelledKeys,
  type ContextGetter,
} from './context-reader';

export { DeploymentOptionsError, type ContextGetter } from './context-reader';
import { egressOptionsFrom, type EgressOptions } from './egress-options';
import { MAIL_PREFIX, SECRET_PREFIX, SSM_PREFIX } from './prefix-rules';
import {
  defaultStaleAfterHours,
  describeSeconds,
  ScheduleExpressionError,
  scheduleIntervals,
  type ScheduleIntervals,
} from './schedule-intervals';
import {
  DEFAULT_MAIL_PREFIX,
  DEFAULT_SECRET_PREFIX,
  DEFAULT_SSM_PREFIX,
} from '../lambda/default-prefixes';

export interface DeploymentOptions extends EgressOptions {
  /** CloudFormation stack name. Context `stackName`, default `Dequeue`. */
  readonly stackName: string;
  /** EventBridge Scheduler expression, `rate(...)` or `cron(...)`. Context `schedule`. */
  readonly schedule: string;
  /** IANA time zone the schedule is evaluated in. Context `scheduleTimeZone`. */
  readonly scheduleTimeZone: string;
  /** SSM parameter path holding `settings` and `targets/<name>`. Context `ssmPrefix`. */
  readonly ssmPrefix: string;
  /** Secrets Manager name prefix the function may read. Context `secretPrefix`. */
  readonly secretPrefix: string;
  /** Key prefix of mail stored after ATRN. Context `mailPrefix`. */
  readonly mailPrefix: string;
  /** Address subscribed to the alarm topic. Context `alarmEmail`. */
  readonly alarmEmail?: string;
  /** Function timeout. Context `timeoutSeconds`. */
  readonly timeoutSeconds: number;
  /** Function memory. Context `memoryMiB`. */
  readonly memoryMiB: number;
  /** Days the function's logs are kept. Context `logRetentionDays`. */
  readonly logRetentionDays: RetentionDays;
  /** Days after which the old versions of mail deliver took out are deleted. Context `mailExpirationDays`. */
  readonly mailExpirationDays: number;
  /** Days after which those old versions move to S3 Standard-IA. Context `mailInfrequentAccessAfterDays`. */
  readonly mailInfrequentAccessAfterDays?: number;
  /** SSE-KMS with a key of the store's own, or S3-managed keys. Context `mailEncryption`. */
  readonly mailEncryption: 'kms' | 's3';
  /** Failed cycles in a row after which a target counts as failing. Context `failingAfterCycles`. */
  readonly failingAfterCycles: number;
  /**
   * Hours without success after which a target counts as stale. Context `staleAfterHours`;
   * default 24, or 2.5 times the longest time between two cycles when that is longer.
   */
  readonly staleAfterHours: number;
  /** Failed prechecks in a row after which a target's server counts as down. Context `serverDownAfterCycles`. */
  readonly serverDownAfterCycles: number;
  /** Executions reserved for the function, or 'none'; undefined: the stack's default. Context `reservedConcurrency`. */
  readonly reservedConcurrency?: number | 'none';
  /** Shareable test events in the Lambda console. Context `consoleTestEvents`. */
  readonly consoleTestEvents: boolean;
  /** Customer managed KMS key of SecureString parameters. Context `ssmKmsKeyArn`. */
  readonly ssmKmsKeyArn?: string;
  /** Customer managed KMS key of the secrets. Context `secretsKmsKeyArn`. */
  readonly secretsKmsKeyArn?: string;
}

/** Every context key this app reads, with its default (undefined: no default). */
export const CONTEXT_DEFAULTS = {
  stackName: 'Dequeue',
  schedule: 'rate(15 minutes)',
  scheduleTimeZone: 'UTC',
  ssmPrefix: DEFAULT_SSM_PREFIX,
  secretPrefix: DEFAULT_SECRET_PREFIX,
  mailPrefix: DEFAULT_MAIL_PREFIX,
  staticEgress: false,
  egressAllocationId: undefined,
  egressPorts: undefined,
  alarmEmail: undefined,
  timeoutSeconds: 900,
  memoryMiB: 256,
  logRetentionDays: 30,
  mailExpirationDays: 30,
  mailEncryption: 'kms',
  mailInfrequentAccessAfterDays: undefined,
  failingAfterCycles: 3,
  staleAfterHours: undefined,
  serverDownAfterCycles: 4,
  reservedConcurrency: undefined,
  consoleTestEvents: true,
  ssmKmsKeyArn: undefined,
  secretsKmsKeyArn: undefined,
} as const;

/** Keys this app no longer reads, and what took their place: rejected, never silently ignored. */
export const RETIRED_KEYS: Readonly<Record<string, string>> = {
  failureAlarmThreshold:
    'Context "failureAlarmThreshold" is gone: a single failed target no longer raises an alarm. Use "failingAfterCycles" (failed cycles in a row, default 3) and "staleAfterHours" (hours without success, default 24).',
};

export type ContextKey = keyof typeof CONTEXT_DEFAULTS;
export const CONTEXT_KEYS = Object.keys(CONTEXT_DEFAULTS) as ContextKey[];

/**
 * Reads and validates every deployment option.
 *
 * @param get reads one context value
 * @param presentKeys every context key that was given, when known: a key that is a near miss of
 *   one of ours (`staticEgres`) is rejected instead of being silently ignored
 * @param committed reads the `context` block of cdk.json alone: static egress must be there
 *   (lib/egress-options.ts)
 * @throws DeploymentOptionsError naming the context key at fault
 */
export function deploymentOptionsFrom(
  get: ContextGetter,
  presentKeys: readonly string[],
  committed: ContextGetter,
): DeploymentOptions {
  rejectMisspelledKeys(presentKeys, CONTEXT_KEYS, RETIRED_KEYS);
  const read = new ContextReader<ContextKey>(get, CONTEXT_DEFAULTS);

  const egress = egressOptionsFrom(get, read, committed);

  const mailExpirationDays = read.integer('mailExpirationDays', 1, 36_500);
  const mailInfrequentAccessAfterDays = read.optionalInteger(
    'mailInfrequentAccessAfterDays',
    30,
    36_500,
    'S3 moves objects to Standard-IA after 30 days at the earliest',
  );
  if (
    mailInfrequentAccessAfterDays !== undefined &&
    mailInfrequentAccessAfterDays >= mailExpirationDays
  ) {
    throw new DeploymentOptionsError(
      'mailInfrequentAccessAfterDays',
      `Context "mailInfrequentAccessAfterDays" (${mailInfrequentAccessAfterDays}) must be fewer than "mailExpirationDays" (${mailExpirationDays}): S3 moves an old version to Standard-IA only before it expires.`,
    );
  }
  const mailEncryption = read.string('mailEncryption', /^(kms|s3)$/, 'kms or s3') as 'kms' | 's3';

  const schedule = scheduleExpression(read.string('schedule'));
  const scheduleTimeZone = timeZone(read.string('scheduleTimeZone'));
  const intervals = intervalsOf(schedule, scheduleTimeZone);
  const timeoutSeconds = read.integer(
    'timeoutSeconds',
    1,
    900,
    'the Lambda maximum is 900 seconds',
  );
  if (timeoutSeconds > intervals.shortestSeconds) {
    throw new DeploymentOptionsError(
      'timeoutSeconds',
      `Context "timeoutSeconds" (${timeoutSeconds}) is longer than the shortest time between two cycles of "schedule" ${schedule} (${describeSeconds(intervals.shortestSeconds)}): a cycle could still be talking to a provider when the next one starts. Lengthen the interval or shorten the timeout.`,
    );
  }
  const staleAfterHours =
    read.optionalInteger('staleAfterHours', 1, 8760, 'up to 365 days') ??
    defaultStaleAfterHours(intervals);
  if (staleAfterHours * 3600 < intervals.longestSeconds) {
    throw new DeploymentOptionsError(
      'staleAfterHours',
      `Context "staleAfterHours" (${staleAfterHours}) must not be shorter than the longest time between two cycles of "schedule" ${schedule} (${describeSeconds(intervals.longestSeconds)}): every target would be stale before its next cycle.`,
    );
  }
  const reservedConcurrency = reservedConcurrencyOf(get, read);

  const logRetentionDays = read.integer('logRetentionDays', 1, 9999);
  if (!(Object.values(RetentionDays) as unknown[]).includes(logRetentionDays)) {
    const allowed = (Object.values(RetentionDays) as unknown[]).filter(
      (v) => typeof v === 'number',
    );
    throw new DeploymentOptionsError(
      'logRetentionDays',
      `Context "logRetentionDays" must be one of the retention periods CloudWatch Logs offers (${allowed.join(', ')}; 9999 keeps logs forever), got ${logRetentionDays}.`,
    );
  }

  return {
    stackName: read.string(
      'stackName',
      /^[A-Za-z][A-Za-z0-9-]{0,127}$/,
      'a CloudFormation stack name: a letter, then letters, digits and hyphens',
    ),
    schedule,
    scheduleTimeZone,
    ssmPrefix: read.string('ssmPrefix', SSM_PREFIX.pattern, SSM_PREFIX.expected),
    secretPrefix: read.string('secretPrefix', SECRET_PREFIX.pattern, SECRET_PREFIX.expected),
    mailPrefix: read.string('mailPrefix', MAIL_PREFIX.pattern, MAIL_PREFIX.expected),
    ...egress,
    alarmEmail: read.optionalString(
      'alarmEmail',
      /^[^\s@]+@[^\s@]+\.[^\s@]+$/,
      'an e-mail address',
    ),
    timeoutSeconds,
    reservedConcurrency,
    memoryMiB: read.integer('memoryMiB', 128, 10_240, 'Lambda offers 128 to 10240 MiB'),
    logRetentionDays: logRetentionDays as RetentionDays,
    mailExpirationDays,
    mailInfrequentAccessAfterDays,
    mailEncryption,
    failingAfterCycles: read.integer('failingAfterCycles', 1, 1000),
    staleAfterHours,
    serverDownAfterCycles: read.integer('serverDownAfterCycles', 1, 1000),
    consoleTestEvents: read.boolean('consoleTestEvents'),
    ssmKmsKeyArn: read.optionalString(
      'ssmKmsKeyArn',
      KMS_KEY_ARN,
      'the ARN of a KMS key (arn:aws:kms:<region>:<account>:key/<id>)',
    ),
    secretsKmsKeyArn: read.optionalString(
      'secretsKmsKeyArn',
      KMS_KEY_ARN,
      'the ARN of a KMS key (arn:aws:kms:<region>:<account>:key/<id>)',
    ),
  };
}

const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/;

/**
 * EventBridge Scheduler's recurring forms: `rate(value unit)` (singular unit for 1, plural
 * otherwise) and six-field `cron(min hour day-of-month month day-of-week year)` in which one of
 * the two day fields is `?`. A one-time `at(...)` is not a schedule for a release signal.
 */
function scheduleExpression(expression: string): string {
  const rate = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/.exec(expression);
  if (rate) {
    const value = Number(rate[1]);
    const plural = rate[2]!.endsWith('s');
    if (value >= 1 && plural === value > 1) return expression;
    throw new DeploymentOptionsError(
      'schedule',
      `Context "schedule" ${JSON.stringify(expression)}: the rate must be at least 1, with a singular unit for 1 and a plural one otherwise, e.g. rate(1 hour) or rate(15 minutes).`,
    );
  }
  const cron = /^cron\((.*)\)$/.exec(expression);
  if (cron) {
    const fields = cron[1]!.trim().split(/\s+/);
    if (fields.length === 6 && (fields[2] === '?') !== (fields[4] === '?')) return expression;
    throw new DeploymentOptionsError(
      'schedule',
      `Context "schedule" ${JSON.stringify(expression)}: a cron expression has six fields (minutes hours day-of-month month day-of-week year) and exactly one of day-of-month and day-of-week is "?", e.g. cron(0 6 * * ? *).`,
    );
  }
  throw new DeploymentOptionsError(
    'schedule',
    `Context "schedule" must be rate(...) or cron(...), e.g. rate(15 minutes) or cron(0 6 * * ? *), got ${JSON.stringify(expression)}.`,
  );
}

/** The schedule's intervals; an expression that never recurs is a mistake in "schedule". */
function intervalsOf(schedule: string, zone: string): ScheduleIntervals {
  let intervals: ScheduleIntervals;
  try {
    intervals = scheduleIntervals(schedule, zone);
  } catch (error) {
    if (!(error instanceof ScheduleExpressionError)) throw error;
    throw new DeploymentOptionsError('schedule', `Context "schedule" ${error.message}.`);
  }
  if (intervals.longestSeconds > 302_400) {
    throw new DeploymentOptionsError(
      'schedule',
      `Context "schedule" ${schedule} leaves up to ${describeSeconds(intervals.longestSeconds)} between two cycles: the no-cycle alarm waits twice the longest interval, and CloudWatch evaluates an alarm over 7 days at most. Schedule a cycle at least every 3.5 days.`,
    );
  }
  return intervals;
}

/** "none", or a whole number of executions; undefined: the stack's default. */
function reservedConcurrencyOf(
  get: ContextGetter,
  read: ContextReader<ContextKey>,
): number | 'none' | undefined {
  if (get('reservedConcurrency') === 'none') return 'none';
  return read.optionalInteger(
    'reservedConcurrency',
    3,
    1000,
    'the fan-out workers, a cycle and a manual run; or "none"',
  );
}

/** Scheduler wants an IANA zone name; offsets such as +01:00 are not accepted there. */
function timeZone(zone: string): string {
  let known = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/.test(zone);
  if (known) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: zone });
    } catch {
      known = false;
    }
  }
  if (!known) {
    throw new DeploymentOptionsError(
      'scheduleTimeZone',
      `Context "scheduleTimeZone" must be an IANA time zone such as UTC or Europe/Berlin, got ${JSON.stringify(zone)}.`,
    );
  }
  return zone;
}
