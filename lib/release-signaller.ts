/**
 * ReleaseSignaller: everything dequeue needs in one construct that another CDK app can import.
 * A scheduled Lambda function tells mail providers to release held mail (ETRN/QSND/ATRN/FINGER),
 * counts cycles in DynamoDB, stores mail pulled with ATRN in S3, and raises alarms when mail may
 * stay held. Optionally it reaches the providers from one static address (see StaticEgress).
 */
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy, Stack, TimeZone } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { lambdaBundle, sideModuleBuildCommands } from './bundling';
import { ConsoleTestEvents } from './console-test-events';
import { MailReaderPolicy } from './mail-reader-policy';
import { DEFAULT_MAIL_EXPIRATION, MailStore } from './mail-store';
import { FailedCycleDestination, ReleaseSchedule } from './release-schedule';
import {
  checkReleaseSignallerProps,
  DEFAULT_SCHEDULE,
  DEFAULT_TIMEOUT,
} from './release-signaller-checks';
import type { ReleaseSignallerProps } from './release-signaller-props';
import {
  FAILING_AFTER_CYCLES_ENV,
  METRICS_NAMESPACE,
  SERVER_DOWN_AFTER_CYCLES_ENV,
  SignallerAlarms,
  STALE_AFTER_HOURS_ENV,
} from './signaller-alarms';
import { SignallerDashboard } from './signaller-dashboard';
import { StatusReaderPolicy } from './status-reader-policy';
import { COUNTER_TABLE_KEY, COUNTER_TABLE_TTL, STATUS_INDEX } from '../lambda/counter-table';
import {
  grantFailedCycleRecords,
  grantSignallerAccess,
  grantWorkQueueAccess,
} from './signaller-permissions';
import { defaultStaleAfterHours } from './schedule-intervals';
import { StaticEgress } from './static-egress';
import { DEFAULT_EGRESS_PORTS, limitFunctionEgress } from './function-egress';
import {
  DEFAULT_WORKER_BATCH_SIZE,
  DEFAULT_WORKER_MAX_CONCURRENCY,
  DEFAULT_WORKER_MAX_RECEIVE_COUNT,
  SignallerWorkQueue,
} from './signaller-work-queue';
import {
  DEFAULT_MAIL_PREFIX,
  DEFAULT_SECRET_PREFIX,
  DEFAULT_SSM_PREFIX,
} from '../lambda/default-prefixes';

export type { ReleaseSignallerProps } from './release-signaller-props';

/** The function code this package ships; its lock file decides what is bundled. */
const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEFAULT_ENTRY = fileURLToPath(new URL('../lambda/handler.ts', import.meta.url));

export class ReleaseSignaller extends Construct {
  readonly function: nodejs.NodejsFunction;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;
  readonly counterTable: dynamodb.Table;
  readonly mailBucket: s3.Bucket;
  readonly schedule: scheduler.Schedule;
  readonly deadLetterQueue: sqs.Queue;
  readonly alarms: SignallerAlarms;
  /** The console's shareable test events, unless `consoleTestEvents: false`. */
  readonly testEvents?: ConsoleTestEvents;
  /** For `dequeue deliver --bucket`: attach it to the machine that empties the store. */
  readonly mailReaderPolicy: iam.ManagedPolicy;
  /** For `dequeue status --table`: attach it to whoever looks at the targets' status. */
  readonly statusReaderPolicy: iam.ManagedPolicy;
  /** The dashboard and the saved Logs Insights queries. */
  readonly dashboard: SignallerDashboard;
  /** Present with `staticEgress`: the VPC, NAT gateway and Elastic IP. */
  readonly staticEgress?: StaticEgress;
  /** Present unless `fanOut: false`: the work queue, its dead-letter queue, the workers' mapping. */
  readonly workQueue?: SignallerWorkQueue;

  constructor(scope: Construct, id: string, props: ReleaseSignallerProps = {}) {
    super(scope, id);
    const { intervals } = checkReleaseSignallerProps(this.node.path, props);

    const ssmPrefix = props.ssmPrefix ?? DEFAULT_SSM_PREFIX;
    const secretPrefix = props.secretPrefix ?? DEFAULT_SECRET_PREFIX;
    const mailPrefix = props.mailPrefix ?? DEFAULT_MAIL_PREFIX;
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    const failingAfterCycles = props.failingAfterCycles ?? 3;
    const staleAfter = props.staleAfter ?? Duration.hours(defaultStaleAfterHours(intervals));
    const serverDownAfterCycles = props.serverDownAfterCycles ?? 4;
    const timeout = props.timeout ?? DEFAULT_TIMEOUT;
    const serviceName = props.serviceName ?? this.node.path;
    const fanOut = props.fanOut ?? true;
    const workerMaxConcurrency = props.workerMaxConcurrency ?? DEFAULT_WORKER_MAX_CONCURRENCY;
    // Nothing waits in Scheduler or in Lambda's queue for longer than one interval: a slot held
    // back longer is dropped into the dead-letter queue (and its alarm fires) instead of running
    // into the next cycle. Lambda's own bound is 60 s to 6 hours.
    const shortest = Duration.seconds(intervals.shortestSeconds);
    const lambdaMaxEventAge = Duration.seconds(
      Math.min(Math.max(intervals.shortestSeconds, 60), 21_600),
    );
    const scheduleMaxEventAge =
      props.scheduleMaxEventAge ?? (shortest.toSeconds() < 900 ? shortest : Duration.minutes(15));
    // One scheduled cycle (the timeout fits the interval, so never two), one manual invocation,
    // and the workers the event source mapping may run at once.
    const reservedConcurrency =
      props.reservedConcurrency === 'none'
        ? undefined
        : (props.reservedConcurrency ?? (fanOut ? workerMaxConcurrency : 0) + 2);
    const alarmPeriod = props.alarmPeriod ?? Duration.minutes(15);

    this.counterTable = new dynamodb.Table(this, 'CycleCounter', {
      partitionKey: { name: COUNTER_TABLE_KEY, type: dynamodb.AttributeType.STRING },
      // Per-slot and per-target claim items expire; the counter item itself has no expiresAt.
      timeToLiveAttribute: COUNTER_TABLE_TTL,
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      // Losing the counter would restart every-Nth-cycle counting: keep it, and refuse a delete
      // by hand or by a replacement until the protection is turned off.
      removalPolicy: RemovalPolicy.RETAIN,
      deletionProtection: true,
    });
    // Every target's status in one Query, never a Scan of the claims (lambda/adapters/dynamodb-status.ts):
    // only status items carry the index's partition key.
    this.counterTable.addGlobalSecondaryIndex({
      indexName: STATUS_INDEX.indexName,
      partitionKey: { name: STATUS_INDEX.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: STATUS_INDEX.sortKey, type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });

    this.statusReaderPolicy = new StatusReaderPolicy(this, 'StatusReader', {
      table: this.counterTable,
      statusIndex: STATUS_INDEX.indexName,
    }).policy;

    const mailStore = new MailStore(this, 'MailStore', {
      mailPrefix,
      encryption: props.mailEncryption ?? 'kms',
      expiration: props.mailExpiration ?? DEFAULT_MAIL_EXPIRATION,
      infrequentAccessAfter: props.mailInfrequentAccessAfter,
    });
    this.mailBucket = mailStore.bucket;

    this.mailReaderPolicy = new MailReaderPolicy(this, 'MailReader', {
      bucket: this.mailBucket,
      mailPrefix,
    }).policy;

    this.logGroup = new logs.LogGroup(this, 'Log', {
      retention: logRetention,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    if (props.staticEgress) {
      this.staticEgress = new StaticEgress(this, 'StaticEgress', {
        allocationId: props.egressAllocationId,
        flowLogRetention: logRetention,
      });
    }
    const vpc = this.staticEgress?.vpc ?? props.vpc;

    // A role of our own, not Lambda's default one: AWSLambdaBasicExecutionRole (and the VPC
    // variant) allows writing to every log group of the account.
    this.role = new iam.Role(this, 'FunctionRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'dequeue release signaller: reads its configuration, counts cycles, stores mail',
    });

    this.function = new nodejs.NodejsFunction(this, 'Function', {
      description: 'dequeue: signals mail providers to release held mail (ETRN/QSND/ATRN/FINGER)',
      entry: props.entry ?? DEFAULT_ENTRY,
      // dequeue's own lock file decides the bundle, wherever the importing app runs from.
      ...(props.entry === undefined
        ? { projectRoot: PACKAGE_ROOT, depsLockFilePath: `${PACKAGE_ROOT}package-lock.json` }
        : {}),
      handler: 'handler',
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      timeout,
      memorySize: props.memorySize ?? 256,
      role: this.role,
      logGroup: this.logGroup,
      environment: {
        DEQUEUE_SSM_PREFIX: ssmPrefix,
        DEQUEUE_SECRET_PREFIX: secretPrefix,
        DEQUEUE_COUNTER_TABLE: this.counterTable.tableName,
        DEQUEUE_MAIL_BUCKET: this.mailBucket.bucketName,
        DEQUEUE_MAIL_PREFIX: mailPrefix,
        // Outside a VPC, AWS blocks outbound port 25: the function says so when a relay times out.
        DEQUEUE_IN_VPC: vpc ? 'true' : 'false',
        [FAILING_AFTER_CYCLES_ENV]: String(failingAfterCycles),
        [STALE_AFTER_HOURS_ENV]: String(staleAfter.toHours()),
        [SERVER_DOWN_AFTER_CYCLES_ENV]: String(serverDownAfterCycles),
        POWERTOOLS_SERVICE_NAME: serviceName,
        POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
        NODE_OPTIONS: '--enable-source-maps',
      },
      reservedConcurrentExecutions: reservedConcurrency,
      ...(vpc
        ? {
            vpc,
            // Only the ports a release signal uses, and HTTPS (limitFunctionEgress below).
            allowAllOutbound: false,
            vpcSubnets: this.staticEgress?.subnets ??
              props.vpcSubnets ?? { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
          }
        : {}),
      bundling: {
        target: lambdaBundle.target,
        format: nodejs.OutputFormat.ESM,
        minify: lambdaBundle.minify,
        sourceMap: lambdaBundle.sourcemap,
        sourcesContent: lambdaBundle.sourcesContent,
        mainFields: [...lambdaBundle.mainFields],
        banner: lambdaBundle.banner,
        bundleAwsSDK: true,
        externalModules: [...lambdaBundle.external],
        logLevel: nodejs.LogLevel.WARNING,
        // dequeue's own handler loads the S3 mail store from a second file, built here beside it.
        ...(props.entry === undefined
          ? {
              commandHooks: {
                beforeBundling: () => [],
                beforeInstall: () => [],
                afterBundling: (inputDir: string, outputDir: string) =>
                  sideModuleBuildCommands(
                    `${inputDir}/node_modules/.bin/esbuild`,
                    inputDir,
                    outputDir,
                  ),
              },
            }
          : {}),
      },
    });

    if (vpc) limitFunctionEgress(this.function, props.egressPorts ?? DEFAULT_EGRESS_PORTS);

    grantSignallerAccess(this.role, {
      logGroup: this.logGroup,
      ssmPrefix,
      parametersKey: props.parametersKey,
      secretPrefix,
      secretsKey: props.secretsKey,
      counterTable: this.counterTable,
      statusIndex: STATUS_INDEX.indexName,
      mailBucket: this.mailBucket,
      mailPrefix,
      inVpc: vpc !== undefined,
    });

    const releaseSchedule = new ReleaseSchedule(this, 'Schedule', {
      function: this.function,
      schedule:
        props.schedule ??
        scheduler.ScheduleExpression.expression(DEFAULT_SCHEDULE, TimeZone.of('UTC')),
      retryAttempts: props.scheduleRetryAttempts ?? 3,
      maxEventAge: scheduleMaxEventAge,
    });
    this.schedule = releaseSchedule.schedule;
    this.deadLetterQueue = releaseSchedule.deadLetterQueue;

    // A cycle that failed is not re-run by Lambda: the next scheduled cycle is the retry, and the
    // function-error alarm says that one failed. What Lambda gives up on is recorded beside the
    // slots Scheduler could not deliver.
    this.function.configureAsyncInvoke({
      retryAttempts: 0,
      maxEventAge: lambdaMaxEventAge,
      onFailure: new FailedCycleDestination(this.deadLetterQueue),
    });
    grantFailedCycleRecords(this.role, this.deadLetterQueue);

    this.alarms = new SignallerAlarms(this, 'Alarms', {
      function: this.function,
      deadLetterQueue: this.deadLetterQueue,
      service: serviceName,
      intervals,
      failingAfterCycles,
      staleAfter,
      serverDownAfterCycles,
      period: alarmPeriod,
      email: props.alarmEmail,
      topic: props.alarmTopic,
    });

    if (props.consoleTestEvents ?? true) {
      this.testEvents = new ConsoleTestEvents(this, 'TestEvents', { function: this.function });
    }

    this.dashboard = new SignallerDashboard(this, 'Dashboard', {
      function: this.function,
      service: serviceName,
      timeout,
      logGroup: this.logGroup,
      dashboardName: props.dashboardName,
      queryFolder: props.queryFolder ?? props.dashboardName ?? Stack.of(this).stackName,
      period: alarmPeriod,
    });

    if (fanOut) {
      this.workQueue = new SignallerWorkQueue(this, 'WorkQueue', {
        function: this.function,
        functionTimeout: this.function.timeout ?? Duration.seconds(3),
        batchSize: props.workerBatchSize ?? DEFAULT_WORKER_BATCH_SIZE,
        maxConcurrency: workerMaxConcurrency,
        maxReceiveCount: props.workerMaxReceiveCount ?? DEFAULT_WORKER_MAX_RECEIVE_COUNT,
        oldestOrderAge: shortest,
        notify: (alarm) => this.alarms.notify(alarm),
      });
      this.function.addEnvironment('DEQUEUE_WORK_QUEUE_URL', this.workQueue.queue.queueUrl);
      grantWorkQueueAccess(this.role, this.workQueue.queue);
      // Lambda checks the role's permissions when it creates the mapping.
      this.workQueue.mapping.node.addDependency(this.role);
    }
  }
}
