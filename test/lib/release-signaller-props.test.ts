/**
 * ReleaseSignaller as another CDK app would use it: its own VPC or topic, and conflicting or
 * impossible props rejected before anything is created. The templates are synthesised once, in
 * beforeAll.
 */
import { App, Duration, Stack, TimeZone } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sns from 'aws-cdk-lib/aws-sns';
import { beforeAll, describe, expect, it } from 'vitest';
import { MailReaderPolicy } from '../../lib/mail-reader-policy';
import type { CfnTemplate } from '../deploy/cloud-assembly';
import { alarmDelivery } from './alarm-delivery';
import { ReleaseSignaller, type ReleaseSignallerProps } from '../../lib/release-signaller';
import { ReleaseSignallerPropsError } from '../../lib/release-signaller-checks';
import {
  FIXTURE_ENTRY,
  cfnText,
  inAnotherApp,
  onlyResource,
  SIGNALLER,
  testApp,
} from './synth-dequeue';

function construct(props: (stack: Stack) => ReleaseSignallerProps): {
  stack: Stack;
  signaller: ReleaseSignaller;
} {
  const app = testApp({}, { bundle: false });
  const stack = new Stack(app, 'Host');
  const signaller = new ReleaseSignaller(stack, 'Dequeue', {
    entry: FIXTURE_ENTRY,
    ...props(stack),
  });
  return { stack, signaller };
}

function rejection(props: (stack: Stack) => ReleaseSignallerProps): string {
  try {
    construct(props);
  } catch (error) {
    expect(error).toBeInstanceOf(ReleaseSignallerPropsError);
    return (error as Error).message;
  }
  throw new Error('the props were accepted');
}

describe('conflicting or impossible props', () => {
  it.each<[string, (stack: Stack) => ReleaseSignallerProps, string]>([
    [
      'a VPC and static egress',
      (stack) => ({ staticEgress: true, vpc: new ec2.Vpc(stack, 'Vpc') }),
      'give either `vpc` (run in your VPC, egress is yours) or `staticEgress` (a new VPC with one fixed address), not both.',
    ],
    [
      'an Elastic IP without static egress',
      () => ({ egressAllocationId: 'eipalloc-0123456789abcdef0' }),
      '`egressAllocationId` names the Elastic IP of the static egress NAT gateway: it needs `staticEgress: true`.',
    ],
    [
      'egress ports without a VPC',
      () => ({ egressPorts: [25] }),
      '`egressPorts` sets the security group of a function in a VPC: it needs `staticEgress` or `vpc` (outside a VPC, Lambda has no security group).',
    ],
    [
      'an egress port that is no TCP port',
      () => ({ staticEgress: true, egressPorts: [25, 0] }),
      '`egressPorts` must be TCP ports from 1 to 65535, got 0.',
    ],
    [
      'subnets without a VPC',
      () => ({ vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED } }),
      '`vpcSubnets` selects subnets of `vpc`: give `vpc` too.',
    ],
    [
      'an alarm address and an alarm topic',
      (stack) => ({ alarmEmail: 'ops@example.com', alarmTopic: new sns.Topic(stack, 'Topic') }),
      '`alarmEmail` subscribes to the topic this construct creates; with your own `alarmTopic`, subscribe the address to that topic instead.',
    ],
    [
      'a wildcard in the SSM path',
      () => ({ ssmPrefix: '/dequeue*' }),
      '`ssmPrefix` must be an SSM parameter path such as /dequeue',
    ],
    [
      'a wildcard in the secret prefix',
      () => ({ secretPrefix: '*' }),
      '`secretPrefix` must be a Secrets Manager name prefix',
    ],
    [
      'a mail prefix without a slash',
      () => ({ mailPrefix: 'mail' }),
      '`mailPrefix` must be an S3 key prefix such as mail/',
    ],
    [
      'Standard-IA before 30 days',
      () => ({ mailInfrequentAccessAfter: Duration.days(7) }),
      '`mailInfrequentAccessAfter` must be at least 30 days',
    ],
    [
      'a timeout beyond 15 minutes',
      () => ({ timeout: Duration.minutes(16) }),
      '`timeout` must be from 1 second to 15 minutes (the Lambda maximum), got 16 minutes.',
    ],
    [
      'too little memory',
      () => ({ memorySize: 64 }),
      '`memorySize` must be a whole number from 128 to 10240, got 64.',
    ],
    [
      'a negative retry count',
      () => ({ scheduleRetryAttempts: -1 }),
      '`scheduleRetryAttempts` must be a whole number from 0 to 185, got -1.',
    ],
    [
      'a maximum event age under a minute',
      () => ({ scheduleMaxEventAge: Duration.seconds(30) }),
      "`scheduleMaxEventAge` must be from 60 seconds to 24 hours (EventBridge Scheduler's limits), got 30 seconds.",
    ],
    [
      'a dashboard name with a space',
      () => ({ dashboardName: 'my dashboard' }),
      '`dashboardName` must be 1 to 255 letters, digits, - or _ (CloudWatch\'s rule), got "my dashboard".',
    ],
    [
      'a failing threshold of 0 cycles',
      () => ({ failingAfterCycles: 0 }),
      '`failingAfterCycles` must be a whole number from 1 to 1000, got 0.',
    ],
    [
      'a stale time in part hours',
      () => ({ staleAfter: Duration.minutes(90) }),
      '`staleAfter` must be a whole number of hours from 1 hour to 365 days, got 1 hour 30 minutes.',
    ],
    [
      'a stale time over a year',
      () => ({ staleAfter: Duration.days(366) }),
      '`staleAfter` must be a whole number of hours from 1 hour to 365 days, got 366 days.',
    ],
    [
      'a timeout longer than the shortest interval of a cron schedule (two cycles would overlap)',
      () => ({
        schedule: scheduler.ScheduleExpression.expression(
          'cron(0,10 8 * * ? *)',
          TimeZone.of('Europe/Berlin'),
        ),
      }),
      '`timeout` (15 minutes) is longer than the shortest time between two cycles of `schedule` cron(0,10 8 * * ? *) (10 minutes): a cycle could still be talking to a provider when the next one starts.',
    ],
    [
      'a Scheduler event age longer than the interval',
      () => ({
        schedule: scheduler.ScheduleExpression.rate(Duration.minutes(10)),
        timeout: Duration.minutes(5),
        scheduleMaxEventAge: Duration.minutes(15),
      }),
      '`scheduleMaxEventAge` (15 minutes) is longer than the shortest time between two cycles (10 minutes): a late slot would run into the next cycle.',
    ],
    [
      'a stale bound shorter than the weekend of a weekday cron',
      () => ({
        schedule: scheduler.ScheduleExpression.expression('cron(0 6 ? * MON-FRI *)'),
        staleAfter: Duration.hours(48),
      }),
      '`staleAfter` (2 days) is shorter than the longest time between two cycles of `schedule` cron(0 6 ? * MON-FRI *) (3 days): every target would be stale before its next cycle.',
    ],
    [
      'a monthly schedule, which the no-cycle alarm cannot watch',
      () => ({ schedule: scheduler.ScheduleExpression.expression('cron(0 6 1 * ? *)') }),
      'leaves up to 31 days between two cycles: the no-cycle alarm waits twice the longest interval, and CloudWatch evaluates an alarm over 7 days at most.',
    ],
    [
      'a one-time schedule',
      () => ({ schedule: scheduler.ScheduleExpression.at(new Date(Date.UTC(2030, 0, 1))) }),
      '`schedule` at(2030-01-01T00:00:00): a recurring schedule is rate(...) or cron(...)',
    ],
    [
      'a reserved concurrency the workers would take whole',
      () => ({ workerMaxConcurrency: 20, reservedConcurrency: 20 }),
      "`reservedConcurrency` (20) leaves no room for a cycle beside the 20 fan-out workers (`workerMaxConcurrency`): give at least 21, or 'none'.",
    ],
  ])('rejects %s with a clear message', (_, props, message) => {
    const text = rejection(props);
    expect(text.startsWith('Host/Dequeue: ')).toBe(true);
    expect(text).toContain(message);
  });
});

let template: Template;
const policies: Record<'kms' | 's3', any[]> = { kms: [], s3: [] };
beforeAll(() => {
  template = Template.fromStack(construct(inAnotherApp).stack);
  policies.kms = policyStatements('kms');
  policies.s3 = policyStatements('s3');
});

describe('in another app', () => {
  it('runs in the VPC it is given and notifies the topic it is given', () => {
    const topic = onlyResource(template, 'AWS::SNS::Topic');
    expect(topic.id).toMatch(/^OpsTopic/);
    // Only the mail store's key: the topic (and its key) are the host app's.
    template.resourceCountIs('AWS::KMS::Key', 1);
    template.resourceCountIs('AWS::EC2::EIP', 1); // the host VPC's own NAT address, nothing of ours
    template.resourceCountIs('AWS::EC2::VPC', 1);
    template.allResourcesProperties('AWS::CloudWatch::Alarm', {
      AlarmActions: [{ Ref: topic.id }],
    });
    // A topic without a topic policy keeps SNS's default one, which lets the account's alarms
    // publish; the stack adds nothing to a topic it does not own.
    const delivery = alarmDelivery(template.toJSON() as CfnTemplate);
    expect(delivery.problems).toEqual([]);
    expect(delivery.routes.map((r) => r.allowedBy)).toEqual(
      delivery.routes.map(() => 'SNS default topic policy'),
    );
    expect(delivery.routes).toHaveLength(2 * delivery.alarms);
    template.hasResourceProperties('AWS::Lambda::Function', {
      ...SIGNALLER,
      VpcConfig: {
        SubnetIds: [
          { Ref: Match.stringLikeRegexp('^NetworkPrivateSubnet1') },
          { Ref: Match.stringLikeRegexp('^NetworkPrivateSubnet2') },
        ],
      },
    });
    // In the host's VPC too, the function reaches the mail ports and HTTPS, nothing else.
    const groupId = onlyResource(template, 'AWS::Lambda::Function', { Properties: SIGNALLER })
      .resource.Properties.VpcConfig.SecurityGroupIds[0]['Fn::GetAtt'][0];
    const egress = template.toJSON().Resources[groupId].Properties.SecurityGroupEgress;
    expect(egress.map((rule: any) => [rule.IpProtocol, rule.FromPort]).sort()).toEqual(
      [25, 366, 443, 465, 587, 79].map((port) => ['tcp', port]),
    );
  });
});

function policyStatements(encryption: 'kms' | 's3'): any[] {
  const stack = new Stack(new App({ builtinCloudFormationValidation: false }), 'Host');
  const bucket =
    encryption === 'kms'
      ? new s3.Bucket(stack, 'Mail', { encryptionKey: new kms.Key(stack, 'MailKey') })
      : new s3.Bucket(stack, 'Mail', { encryption: s3.BucketEncryption.S3_MANAGED });
  new MailReaderPolicy(stack, 'Reader', { bucket, mailPrefix: 'atrn/' });
  return onlyResource(Template.fromStack(stack), 'AWS::IAM::ManagedPolicy').resource.Properties
    .PolicyDocument.Statement;
}

describe("the mail reader policy on a bucket with a KMS key of its own (another app's bucket)", () => {
  it('may decrypt and encrypt with the bucket key, only through S3', () => {
    const statement = policies.kms.find((st) => st.Sid === 'UseMailKey');
    expect(statement.Action).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
    expect(statement.Resource).toEqual({
      'Fn::GetAtt': [expect.stringMatching(/^MailKey/), 'Arn'],
    });
    expect(cfnText(statement.Condition.StringEquals['kms:ViaService'])).toBe(
      's3.${AWS::Region}.amazonaws.com',
    );
  });

  it('needs no KMS permission with S3-managed encryption', () => {
    const actions = policies.s3.flatMap((st) => [st.Action].flat());
    expect(actions.filter((a: string) => a.startsWith('kms:'))).toEqual([]);
  });
});
