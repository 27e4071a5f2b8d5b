import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import { describe, expect, it } from 'vitest';
import {
  CONTEXT_KEYS,
  DeploymentOptionsError,
  deploymentOptionsFrom,
} from '../../lib/deployment-options';

/** The options of `context`, all of it committed to cdk.json. */
const from = (context: Record<string, unknown>) =>
  deploymentOptionsFrom(
    (key) => context[key],
    Object.keys(context),
    (key) => context[key],
  );

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
      egressPorts: undefined,
      alarmEmail: undefined,
      timeoutSeconds: 900,
      memoryMiB: 256,
      logRetentionDays: RetentionDays.ONE_MONTH,
      mailExpirationDays: 30,
      mailInfrequentAccessAfterDays: undefined,
      mailEncryption: 'kms',
      failingAfterCycles: 3,
      staleAfterHours: 24,
      serverDownAfterCycles: 4,
      reservedConcurrency: undefined,
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
      staleAfterHours: 200,
      reservedConcurrency: '20',
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
      staleAfterHours: 200,
      reservedConcurrency: 20,
    });
  });

  it.each([
    ['rate(15 minutes)', 24],
    ['rate(2 hours)', 24],
    ['rate(1 day)', 60],
    ['cron(0/30 * * * ? *)', 24],
    ['cron(15 10 ? * 2-6 2030)', 180],
  ])('accepts the schedule %s, stale after %i hours by default', (schedule, staleAfterHours) => {
    expect(from({ schedule })).toMatchObject({ schedule, staleAfterHours });
  });

  it('takes a daily cron for what it is: stale after two and a half days by default, not on the first failed day', () => {
    // Once a day at 06:00 Berlin time: 23 to 25 hours apart over the changes of daylight saving.
    expect(
      from({ schedule: 'cron(0 6 * * ? *)', scheduleTimeZone: 'Europe/Berlin' }).staleAfterHours,
    ).toBe(63);
    expect(from({ schedule: 'cron(0 6 * * ? *)' }).staleAfterHours).toBe(60);
  });

  it.each([
    ['rate(1 minute)', 900, '1 minute'],
    ['rate(10 minutes)', 900, '10 minutes'],
    ['cron(0,10 8 * * ? *)', 900, '10 minutes'],
    ['cron(0 9-17 ? * MON-FRI *)', 900, undefined],
    ['rate(5 minutes)', 300, undefined],
  ])(
    'rejects a schedule %s whose cycles could overlap with timeoutSeconds %i (shortest interval %s)',
    (schedule, timeoutSeconds, shortest) => {
      if (shortest === undefined) {
        expect(from({ schedule, timeoutSeconds }).timeoutSeconds).toBe(timeoutSeconds);
        return;
      }
      const error = rejection({ schedule, timeoutSeconds });
      expect(error.contextKey).toBe('timeoutSeconds');
      expect(error.message).toBe(
        `Context "timeoutSeconds" (${timeoutSeconds}) is longer than the shortest time between two cycles of "schedule" ${schedule} (${shortest}): a cycle could still be talking to a provider when the next one starts. Lengthen the interval or shorten the timeout.`,
      );
    },
  );

  it.each([
    ['cron(0 8 1 1 ? 2030)', /fires once between 2030 and 2033: a release signal recurs/],
    ['cron(0 8 1 * ? 1999)', /never fires from \d{4} on/],
    ['cron(0 25 * * ? *)', /hours: "25" is not 0 to 23/],
    ['cron(0 8 ? * MON#6 *)', /cannot read|is not 1 to 7/],
    [
      'rate(4 days)',
      /leaves up to 4 days between two cycles: .* Schedule a cycle at least every 3.5 days/,
    ],
  ])('rejects the schedule %s, which cannot be watched as it is', (schedule, why) => {
    const error = rejection({ schedule });
    expect(error.contextKey).toBe('schedule');
    expect(error.message).toMatch(why);
  });

  it.each([
    ['none', 'none'],
    ['12', 12],
    [40, 40],
  ] as const)('takes reservedConcurrency %j', (reservedConcurrency, expected) => {
    expect(from({ reservedConcurrency }).reservedConcurrency).toBe(expected);
  });

  it.each([['0'], ['2'], ['many'], [5000]])('rejects reservedConcurrency %j', (value) => {
    const error = rejection({ reservedConcurrency: value });
    expect(error.contextKey).toBe('reservedConcurrency');
    expect(error.message).toContain('"none"');
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
    expect(error.message).toContain('"staticEgress": true in cdk.json');
  });

  it('rejects a move to Standard-IA no sooner than the expiry: both concern the same old versions now', () => {
    const error = rejection({ mailInfrequentAccessAfterDays: 30 });
    expect(error.contextKey).toBe('mailInfrequentAccessAfterDays');
    expect(error.message).toBe(
      'Context "mailInfrequentAccessAfterDays" (30) must be fewer than "mailExpirationDays" (30): S3 moves an old version to Standard-IA only before it expires.',
    );
    expect(from({ mailExpirationDays: 90, mailInfrequentAccessAfterDays: 30 })).toMatchObject({
      mailExpirationDays: 90,
      mailInfrequentAccessAfterDays: 30,
    });
  });

  it.each([['kms'], ['s3']])('takes mailEncryption %s, nothing else', (mailEncryption) => {
    expect(from({ mailEncryption }).mailEncryption).toBe(mailEncryption);
    expect(rejection({ mailEncryption: 'aes' }).contextKey).toBe('mailEncryption');
  });

  it.each([
    ['rate(2 days)', 24, '2 days'],
    ['cron(0 6 ? * MON-FRI *)', 48, '3 days'],
  ])(
    'rejects staleAfterHours shorter than the longest time between two cycles of %s: every target would be stale',
    (schedule, staleAfterHours, longest) => {
      const error = rejection({ schedule, staleAfterHours });
      expect(error.contextKey).toBe('staleAfterHours');
      expect(error.message).toBe(
        `Context "staleAfterHours" (${staleAfterHours}) must not be shorter than the longest time between two cycles of "schedule" ${schedule} (${longest}): every target would be stale before its next cycle.`,
      );
      expect(from({ schedule, staleAfterHours: 72 }).staleAfterHours).toBe(72);
    },
  );

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
