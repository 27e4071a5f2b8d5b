/**
 * The deployable stack: the deployment options (validated CDK context) mapped onto one
 * ReleaseSignaller, and the outputs an operator needs after `cdk deploy`.
 */
import {
  Aws,
  CfnCondition,
  CfnOutput,
  Duration,
  Fn,
  Stack,
  TimeZone,
  type StackProps,
} from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type { Construct } from 'constructs';
import type { DeploymentOptions } from './deployment-options';
import { ReleaseSignaller } from './release-signaller';

export interface DequeueStackProps extends StackProps {
  /** What to deploy; see `deploymentOptionsFrom`. */
  readonly options: DeploymentOptions;
  /**
   * TypeScript entry of the function (tests bundle a small fixture).
   *
   * @default - dequeue's own `lambda/handler.ts`
   */
  readonly entry?: string;
}

export class DequeueStack extends Stack {
  readonly signaller: ReleaseSignaller;

  constructor(scope: Construct, id: string, props: DequeueStackProps) {
    super(scope, id, {
      description: 'dequeue: scheduled mail-release signals (ETRN/QSND/ATRN/FINGER)',
      ...props,
    });
    const o = props.options;

    this.signaller = new ReleaseSignaller(this, 'ReleaseSignaller', {
      entry: props.entry,
      schedule: scheduler.ScheduleExpression.expression(
        o.schedule,
        TimeZone.of(o.scheduleTimeZone),
      ),
      ssmPrefix: o.ssmPrefix,
      parametersKey: o.ssmKmsKeyArn
        ? kms.Key.fromKeyArn(this, 'ParametersKey', o.ssmKmsKeyArn)
        : undefined,
      secretPrefix: o.secretPrefix,
      secretsKey: o.secretsKmsKeyArn
        ? kms.Key.fromKeyArn(this, 'SecretsKey', o.secretsKmsKeyArn)
        : undefined,
      mailPrefix: o.mailPrefix,
      mailEncryption: o.mailEncryption,
      mailExpiration: Duration.days(o.mailExpirationDays),
      mailInfrequentAccessAfter:
        o.mailInfrequentAccessAfterDays === undefined
          ? undefined
          : Duration.days(o.mailInfrequentAccessAfterDays),
      timeout: Duration.seconds(o.timeoutSeconds),
      memorySize: o.memoryMiB,
      logRetention: o.logRetentionDays,
      staticEgress: o.staticEgress,
      egressAllocationId: o.egressAllocationId,
      egressPorts: o.egressPorts,
      alarmEmail: o.alarmEmail,
      failingAfterCycles: o.failingAfterCycles,
      staleAfter: Duration.hours(o.staleAfterHours),
      serverDownAfterCycles: o.serverDownAfterCycles,
      reservedConcurrency: o.reservedConcurrency,
      // The stack's own value of the metrics' service dimension: two stacks in one account and
      // region (different names) never page on each other's targets.
      serviceName: o.stackName,
      // Dashboards are global to the account: the same stack name in two regions must not meet.
      dashboardName: `${o.stackName}-${Aws.REGION}`,
      queryFolder: o.stackName,
      consoleTestEvents: o.consoleTestEvents,
    });

    const s = this.signaller;
    new CfnOutput(this, 'FunctionName', {
      description: 'aws lambda invoke --function-name <this> for a manual cycle',
      value: s.function.functionName,
    });
    new CfnOutput(this, 'LogGroupName', {
      description: 'Where each target result is logged',
      value: s.logGroup.logGroupName,
    });
    new CfnOutput(this, 'CounterTableName', {
      description: 'DynamoDB table of the cycle counter',
      value: s.counterTable.tableName,
    });
    new CfnOutput(this, 'MailBucketName', {
      description: `Mail received after ATRN, under ${o.mailPrefix}`,
      value: s.mailBucket.bucketName,
    });
    new CfnOutput(this, 'MailReaderPolicyArn', {
      description: `Attach to the machine that runs dequeue deliver --bucket: list, read, tag and delete under ${o.mailPrefix}, write under ${o.mailPrefix}failed/ (and decrypt with the mail key)`,
      value: s.mailReaderPolicy.managedPolicyArn,
    });
    new CfnOutput(this, 'StatusReaderPolicyArn', {
      description:
        'Attach to whoever runs dequeue status --table: Query on the status index and GetItem on the counter table, no writes',
      value: s.statusReaderPolicy.managedPolicyArn,
    });
    new CfnOutput(this, 'AlarmTopicArn', {
      description: 'SNS topic of the alarms',
      value: s.alarms.topic.topicArn,
    });
    new CfnOutput(this, 'DashboardName', {
      description: 'CloudWatch dashboard of the cycles, targets and alarms',
      value: s.dashboard.dashboard.dashboardName,
    });
    this.dashboardUrlOutput(s.dashboard.dashboard.dashboardName);
    new CfnOutput(this, 'DeadLetterQueueUrl', {
      description: 'Scheduled invocations that could not be delivered',
      value: s.deadLetterQueue.queueUrl,
    });
    const egress = s.staticEgress;
    if (egress?.address) {
      new CfnOutput(this, 'EgressAddress', {
        description:
          'The static address providers see: allow it for ETRN, and name it when asking AWS to lift the port-25 limit',
        value: egress.address.attrPublicIp,
      });
    }
    if (egress) {
      new CfnOutput(this, 'EgressAllocationId', {
        description:
          'Allocation id of the egress Elastic IP (reuse it with -c egressAllocationId=...)',
        value: egress.allocationId,
      });
    }
  }
  /**
   * `DashboardUrl`: the dashboard in the console of the partition the stack is deployed in (the
   * partition is known only at deploy time: AWS::Partition). aws: the region's own console;
   * aws-cn: console.amazonaws.cn; aws-us-gov: console.amazonaws-us-gov.com; each with the region
   * in the query. In any other partition the output is left out rather than wrong:
   * `DashboardName` names the dashboard there.
   */
  private dashboardUrlOutput(dashboardName: string): void {
    const partitionIs = (partition: string) => Fn.conditionEquals(Aws.PARTITION, partition);
    const china = new CfnCondition(this, 'InChinaPartition', { expression: partitionIs('aws-cn') });
    const govCloud = new CfnCondition(this, 'InGovCloudPartition', {
      expression: partitionIs('aws-us-gov'),
    });
    const known = new CfnCondition(this, 'InPartitionWithKnownConsole', {
      expression: Fn.conditionOr(partitionIs('aws'), china, govCloud),
    });
    const consoleHome = Fn.conditionIf(
      china.logicalId,
      'https://console.amazonaws.cn',
      Fn.conditionIf(
        govCloud.logicalId,
        'https://console.amazonaws-us-gov.com',
        `https://${Aws.REGION}.console.aws.amazon.com`,
      ),
    );
    new CfnOutput(this, 'DashboardUrl', {
      description: 'The dashboard in the CloudWatch console',
      value: Fn.join('', [
        consoleHome.toString(),
        `/cloudwatch/home?region=${Aws.REGION}#dashboards/dashboard/${dashboardName}`,
      ]),
      condition: known,
    });
  }
}
