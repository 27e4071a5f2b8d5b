/**
 * Every context option reaches the resource it configures: `cdk deploy -c ...` as a user runs it.
 */
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cfnText,
  onlyResource,
  synthDequeue,
  SIGNALLER,
  signallerFunction,
  type SynthesisedDequeue,
} from './synth-dequeue';

const SSM_KEY = 'arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const SECRETS_KEY =
  'arn:aws:kms:eu-central-1:123456789012:key/5678abcd-12ab-34cd-56ef-1234567890ab';

let synth: SynthesisedDequeue;
let template: Template;

beforeAll(() => {
  synth = synthDequeue(
    {
      stackName: 'DequeueProd',
      schedule: 'cron(0 6 ? * MON-FRI *)',
      scheduleTimeZone: 'Europe/Berlin',
      ssmPrefix: '/prod/dequeue',
      secretPrefix: 'prod/dequeue/',
      mailPrefix: 'atrn/',
      timeoutSeconds: '900',
      memoryMiB: '512',
      logRetentionDays: '90',
      mailInfrequentAccessAfterDays: '30',
      mailExpirationDays: '400',
      mailEncryption: 's3',
      failingAfterCycles: '5',
      staleAfterHours: '200',
      reservedConcurrency: '30',
      alarmEmail: 'ops@example.com',
      consoleTestEvents: 'false',
      ssmKmsKeyArn: SSM_KEY,
      secretsKmsKeyArn: SECRETS_KEY,
    },
    { bundle: false },
  );
  template = synth.template;
});
afterAll(() => synth?.dispose());

function statements(): Map<string, any> {
  const fn = signallerFunction(template);
  const roleId = fn.resource.Properties.Role['Fn::GetAtt'][0];
  const policy = onlyResource(template, 'AWS::IAM::Policy', {
    Properties: { Roles: [{ Ref: roleId }] },
  });
  return new Map(policy.resource.Properties.PolicyDocument.Statement.map((s: any) => [s.Sid, s]));
}

describe('deployment options from context', () => {
  it("name the stack, the metrics' service dimension and the dashboard (with the region: dashboards are global)", () => {
    expect(synth.stack.stackName).toBe('DequeueProd');
    template.hasResourceProperties('AWS::Lambda::Function', {
      ...SIGNALLER,
      Environment: { Variables: Match.objectLike({ POWERTOOLS_SERVICE_NAME: 'DequeueProd' }) },
    });
    for (const metricName of ['FailingTargets', 'StaleTargets', 'ServerDownTargets']) {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: metricName,
        Dimensions: [{ Name: 'service', Value: 'DequeueProd' }],
      });
    }
    template.hasResourceProperties('AWS::CloudWatch::Dashboard', {
      DashboardName: { 'Fn::Join': ['', ['DequeueProd-', { Ref: 'AWS::Region' }]] },
    });
  });

  it('take the weekday cron for what it is: no cycle for 7 days (twice the weekend) pages, Lambda keeps an event at most 6 hours', () => {
    const fn = signallerFunction(template);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'Invocations',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: fn.id } }],
      // The longest gap is Friday 06:00 to Monday 06:00 Berlin time, 73 hours over a change of
      // daylight saving: periods of a day, 7 of them (CloudWatch's limit is 7 days).
      Period: 86_400,
      EvaluationPeriods: 7,
      DatapointsToAlarm: 7,
      TreatMissingData: 'breaching',
    });
    // The shortest gap (a night of daylight saving, 23 hours) is beyond Lambda's 6-hour bound.
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      MaximumEventAgeInSeconds: 21_600,
      MaximumRetryAttempts: 0,
    });
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      Target: { RetryPolicy: { MaximumEventAgeInSeconds: 900 } },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      ...SIGNALLER,
      ReservedConcurrentExecutions: 30,
    });
  });

  it('set the schedule and its time zone', () => {
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'cron(0 6 ? * MON-FRI *)',
      ScheduleExpressionTimezone: 'Europe/Berlin',
    });
  });

  it('leave out the console test events and their registry creator', () => {
    template.resourceCountIs('Custom::LambdaTestEventSchema', 0);
    template.resourceCountIs('Custom::LambdaTestEventRegistry', 0);
    template.resourceCountIs('AWS::Lambda::Function', 1);
  });

  it('set the timeout, memory and log retention', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      ...SIGNALLER,
      Timeout: 900,
      MemorySize: 512,
    });
    const fn = signallerFunction(template);
    const logGroupId = fn.resource.Properties.LoggingConfig.LogGroup.Ref;
    expect(template.toJSON().Resources[logGroupId].Properties.RetentionInDays).toBe(90);
  });

  it('move the prefixes in the environment and in the grants together', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      ...SIGNALLER,
      Environment: {
        Variables: {
          DEQUEUE_SSM_PREFIX: '/prod/dequeue',
          DEQUEUE_SECRET_PREFIX: 'prod/dequeue/',
          DEQUEUE_MAIL_PREFIX: 'atrn/',
        },
      },
    });
    const s = statements();
    expect(s.get('ReadConfiguration').Resource.map(cfnText)).toEqual([
      'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/prod/dequeue',
      'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/prod/dequeue/*',
    ]);
    expect(cfnText(s.get('ReadCredentials').Resource)).toBe(
      'arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:prod/dequeue/*',
    );
    expect(cfnText(s.get('StoreMail').Resource)).toMatch(/^\$\{[A-Za-z0-9]+\.Arn\}\/atrn\/\*$/);
  });

  it('grant kms:Decrypt on customer managed keys only through the service holding the values', () => {
    const s = statements();
    expect(s.get('DecryptConfiguration')).toEqual({
      Sid: 'DecryptConfiguration',
      Effect: 'Allow',
      Action: 'kms:Decrypt',
      Resource: SSM_KEY,
      Condition: {
        StringEquals: {
          'kms:ViaService': {
            'Fn::Join': ['', ['ssm.', { Ref: 'AWS::Region' }, '.amazonaws.com']],
          },
        },
      },
    });
    expect(s.get('DecryptCredentials')).toEqual({
      Sid: 'DecryptCredentials',
      Effect: 'Allow',
      Action: 'kms:Decrypt',
      Resource: SECRETS_KEY,
      Condition: {
        StringEquals: {
          'kms:ViaService': {
            'Fn::Join': ['', ['secretsmanager.', { Ref: 'AWS::Region' }, '.amazonaws.com']],
          },
        },
      },
    });
  });

  it('expire the old versions of the mail deliver took out, moving them to Standard-IA first, under its prefix only', () => {
    const bucket = onlyResource(template, 'AWS::S3::Bucket');
    expect(bucket.resource.Properties.LifecycleConfiguration.Rules).toContainEqual({
      Id: 'taken-out-mail',
      Prefix: 'atrn/',
      TagFilters: [{ Key: 'dequeue-expiry', Value: 'allowed' }],
      Status: 'Enabled',
      NoncurrentVersionExpiration: { NoncurrentDays: 400 },
      // The delivered bulk, not the mail waiting to be read.
      NoncurrentVersionTransitions: [{ StorageClass: 'STANDARD_IA', TransitionInDays: 30 }],
    });
    // Undelivered mail is current: no rule ever expires a current version.
    for (const rule of bucket.resource.Properties.LifecycleConfiguration.Rules) {
      expect(rule.ExpirationInDays, rule.Id).toBeUndefined();
      expect(rule.ExpirationDate, rule.Id).toBeUndefined();
    }
  });

  it('keep the mail with S3-managed keys when told: no key, no KMS grant', () => {
    const bucket = onlyResource(template, 'AWS::S3::Bucket');
    expect(bucket.resource.Properties.BucketEncryption).toEqual({
      ServerSideEncryptionConfiguration: [
        { ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } },
      ],
    });
    expect(statements().get('EncryptMail')).toBeUndefined();
  });

  it('give the mail reader policy the moved prefix', () => {
    const policy = onlyResource(template, 'AWS::IAM::ManagedPolicy', {
      Properties: {
        PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Sid: 'ListMail' })]) },
      },
    });
    const statements = policy.resource.Properties.PolicyDocument.Statement;
    expect(statements.find((st: any) => st.Sid === 'ListMail').Condition).toEqual({
      StringLike: { 's3:prefix': ['atrn/*'] },
    });
    expect(
      cfnText(statements.find((st: any) => st.Sid === 'SetAsideRefusedMail').Resource),
    ).toMatch(/\/atrn\/failed\/\*$/);
  });

  it('subscribe the alarm address, and hand the failing and stale thresholds to the function and the alarms', () => {
    const topic = onlyResource(template, 'AWS::SNS::Topic');
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
      TopicArn: { Ref: topic.id },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      ...SIGNALLER,
      Environment: {
        Variables: { DEQUEUE_FAILING_AFTER_CYCLES: '5', DEQUEUE_STALE_AFTER_HOURS: '200' },
      },
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'FailingTargets',
      AlarmDescription: Match.stringLikeRegexp('failed 5 cycles in a row'),
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'StaleTargets',
      AlarmDescription: Match.stringLikeRegexp('for more than 8 days 8 hours'),
    });
  });
});
