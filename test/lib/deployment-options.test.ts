import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { describe, expect, it } from 'vitest';
import {
  CONTEXT_KEYS,
  DeploymentOptionsError,
  deploymentOptionsFrom,
} from '../../lib/deployment-options';

const from = (context: Record<string, unknown>) =>
  deploymentOptionsFrom((key) => context[key], Object.keys(context));

/** The error a context produces, to assert its key and message. */
function rejection(context: Record<string, unknown>): DeploymentOptionsError {
  try {
    from(context);
  } catch (error) {
    if (error instanceof DeploymentOptionsError) return error;
    throw error;
  }
  throw new Error(`accepted ${JSON.stringify(context)}`);
}

describe('deployment options from CDK context', () => {
  it('defaults to a 15-minute UTC schedule, the /dequeue prefixes and no VPC', () => {
    expect(from({})).toEqual({
      stackName: 'Dequeue',
      schedule: 'rate(15 minutes)',
      scheduleTimeZone: 'UTC',
      ssmPrefix: '/dequeue',
      secretPrefix: 'dequeue/',
      mailPrefix: 'mail/',
      staticEgress: false,
      egressAllocationId: undefined,
      alarmEmail: undefined,
      timeoutSeconds: 900,
      memoryMiB: 256,
      logRetentionDays: RetentionDays.ONE_MONTH,
      mailExpirationDays: undefined,
      mailInfrequentAccessAfterDays: undefined,
      failingAfterCycles: 3,
      staleAfterHours: 24,
      consoleTestEvents: true,
      ssmKmsKeyArn: undefined,
      secretsKmsKeyArn: undefined,
    });
  });

  it('takes -c strings and cdk.json values alike', () => {
    const asStrings = from({
      staticEgress: 'true',
      timeoutSeconds: '600',
      memoryMiB: '512',
      mailExpirationDays: '365',
    });
    const typed = from({
      staticEgress: true,
      timeoutSeconds: 600,
      memoryMiB: 512,
      mailExpirationDays: 365,
    });
    expect(asStrings).toEqual(typed);
    expect(typed).toMatchObject({
      staticEgress: true,
      timeoutSeconds: 600,
      memoryMiB: 512,
      mailExpirationDays: 365,
    });
  });

  it('accepts every documented option', () => {
    const options = from({
      stackName: 'DequeueProd',
      schedule: 'cron(0 6 ? * MON-FRI *)',
      scheduleTimeZone: 'Europe/Berlin',
      ssmPrefix: '/prod/dequeue',
      secretPrefix: 'prod/dequeue/',
      mailPrefix: 'atrn/mail/',
      staticEgress: 'true',
      egressAllocationId: 'eipalloc-0123456789abcdef0',
      alarmEmail: 'ops@example.com',
      logRetentionDays: '90',
      mailInfrequentAccessAfterDays: 30,
      mailExpirationDays: 400,
      failingAfterCycles: '5',
      staleAfterHours: 48,
      ssmKmsKeyArn:
        'arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
      secretsKmsKeyArn:
        'arn:aws:kms:eu-central-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab',
    });
    expect(options).toMatchObject({
      stackName: 'DequeueProd',
      schedule: 'cron(0 6 ? * MON-FRI *)',
      scheduleTimeZone: 'Europe/Berlin',
      logRetentionDays: RetentionDays.THREE_MONTHS,
      failingAfterCycles: 5,
      staleAfterHours: 48,
    });
  });

  it.each([
    ['rate(1 minute)'],
    ['rate(2 hours)'],
    ['rate(1 day)'],
    ['cron(0/30 * * * ? *)'],
    ['cron(15 10 L * ? 2030)'],
  ])('accepts the schedule %s', (schedule) => {
    expect(from({ schedule }).schedule).toBe(schedule);
  });

  it.each([
    ['rate(1 minutes)', /singular unit for 1/],
    ['rate(15 minute)', /plural/],
    ['rate(0 minutes)', /at least 1/],
    ['cron(0 6 * * *)', /six fields/],
    ['cron(0 6 * * * *)', /exactly one of day-of-month and day-of-week is "\?"/],
    ['every 15 minutes', /must be rate\(\.\.\.\) or cron\(\.\.\.\)/],
    ['at(2030-01-01T00:00:00)', /must be rate\(\.\.\.\) or cron\(\.\.\.\)/],
  ])('rejects the schedule %s, naming the key', (schedule, why) => {
    const error = rejection({ schedule });
    expect(error.contextKey).toBe('schedule');
    expect(error.message).toMatch(/^Context "schedule"/);
    expect(error.message).toMatch(why);
  });

  it.each([['Mars/Olympus_Mons'], ['+01:00'], ['utc offset']])(
    'rejects the time zone %s',
    (zone) => {
      const error = rejection({ scheduleTimeZone: zone });
      expect(error.contextKey).toBe('scheduleTimeZone');
      expect(error.message).toContain('IANA time zone');
    },
  );

  it.each([
    ['ssmPrefix', '/'],
    ['ssmPrefix', 'dequeue'],
    ['ssmPrefix', '/dequeue/'],
    ['ssmPrefix', '/deq*'],
    ['secretPrefix', 'dequeue/*'],
    ['secretPrefix', 'de?ueue'],
    ['mailPrefix', 'mail'],
    ['mailPrefix', '/mail/'],
    ['mailPrefix', 'm*/'],
  ])('rejects %s=%s: a prefix becomes an IAM resource and must not widen it', (key, value) => {
    const error = rejection({ [key]: value });
    expect(error.contextKey).toBe(key);
    expect(error.message).toContain(`Context "${key}" must be`);
    expect(error.message).toContain(JSON.stringify(value));
  });

  it.each([
    ['timeoutSeconds', '901', /from 1 to 900 \(the Lambda maximum is 900 seconds\)/],
    ['timeoutSeconds', '0', /from 1 to 900/],
    ['timeoutSeconds', '2.5', /whole number/],
    ['memoryMiB', '64', /from 128 to 10240/],
    ['failingAfterCycles', '0', /whole number from 1 to 1000/],
    ['staleAfterHours', '1.5', /whole number from 1 to 8760/],
    ['mailExpirationDays', 'soon', /whole number/],
    ['mailInfrequentAccessAfterDays', '7', /30 days at the earliest/],
    ['staticEgress', 'yes', /must be true or false, got "yes"/],
    [
      'logRetentionDays',
      '45',
      /one of the retention periods CloudWatch Logs offers \(1, 3, 5, 7, 14, 30/,
    ],
    ['alarmEmail', 'ops', /must be an e-mail address/],
    ['egressAllocationId', 'eip-123', /Elastic IP allocation id/],
    ['ssmKmsKeyArn', 'alias/aws/ssm', /ARN of a KMS key/],
    ['stackName', '1-dequeue', /CloudFormation stack name/],
  ])('rejects %s=%s with a message naming it', (key, value, why) => {
    const context: Record<string, unknown> = { [key]: value };
    if (key === 'egressAllocationId') context.staticEgress = true;
    const error = rejection(context);
    expect(error.contextKey).toBe(key);
    expect(error.message).toContain(`Context "${key}"`);
    expect(error.message).toMatch(why);
  });

  it('rejects an Elastic IP without static egress: the address would be silently unused', () => {
    const error = rejection({ egressAllocationId: 'eipalloc-0123456789abcdef0' });
    expect(error.contextKey).toBe('egressAllocationId');
    expect(error.message).toContain('-c staticEgress=true');
  });

  it('accepts an expiry of old versions shorter than the move to Standard-IA: they concern different versions', () => {
    expect(from({ mailExpirationDays: 7, mailInfrequentAccessAfterDays: 30 })).toMatchObject({
      mailExpirationDays: 7,
      mailInfrequentAccessAfterDays: 30,
    });
  });

  it('rejects staleAfterHours shorter than the time between two cycles: every target would be stale', () => {
    const error = rejection({ schedule: 'rate(2 days)' });
    expect(error.contextKey).toBe('staleAfterHours');
    expect(error.message).toBe(
      'Context "staleAfterHours" (24) must not be shorter than the time between two cycles (rate(2 days)): every target would be stale before its next cycle.',
    );
    expect(from({ schedule: 'rate(2 days)', staleAfterHours: 72 }).staleAfterHours).toBe(72);
  });

  it('rejects the retired failureAlarmThreshold and names what replaced it', () => {
    const error = rejection({ failureAlarmThreshold: '1' });
    expect(error.contextKey).toBe('failureAlarmThreshold');
    expect(error.message).toContain(
      'Use "failingAfterCycles" (failed cycles in a row, default 3) and "staleAfterHours"',
    );
  });

  it.each([
    ['staticEgres', 'staticEgress'],
    ['staticegress', 'staticEgress'],
    ['sshPrefix', 'ssmPrefix'],
    ['alarmEmial', 'alarmEmail'],
  ])('rejects the misspelt key %s instead of ignoring it', (typo, meant) => {
    const error = rejection({ [typo]: 'true' });
    expect(error.contextKey).toBe(typo);
    expect(error.message).toBe(`Unknown context "${typo}": did you mean "${meant}"?`);
  });

  it("leaves CDK's own context keys alone", () => {
    expect(() =>
      from({
        notices: false,
        'cli-telemetry': false,
        '@aws-cdk/core:enablePartitionLiterals': true,
        'aws:cdk:version-reporting': false,
      }),
    ).not.toThrow();
  });

  it('documents every key it reads', async () => {
    const { readFile } = await import('node:fs/promises');
    const guide = await readFile(new URL('../../docs/deploy.md', import.meta.url), 'utf8');
    for (const key of CONTEXT_KEYS)
      expect(guide, `docs/deploy.md lacks ${key}`).toContain(`\`${key}\``);
  });
});
