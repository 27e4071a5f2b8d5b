/**
 * The stack as deployed without static egress (the default): what a user gets from `cdk deploy`.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Capture, Match, type Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ESM_REQUIRE_BANNER, LAMBDA_NODE_MAJOR } from '../../lib/bundling';
import { FAILING_TARGETS_METRIC, STALE_TARGETS_METRIC } from '../../lib/signaller-alarms';
import type { CfnTemplate } from '../deploy/cloud-assembly';
import { CfnResolver } from '../deploy/cfn-resolve';
import {
  cfnText,
  onlyResource,
  synthDequeue,
  SIGNALLER,
  signallerFunction,
  signallerLogGroup,
  type SynthesisedDequeue,
} from './synth-dequeue';

let synth: SynthesisedDequeue;
let template: Template;

beforeAll(() => {
  synth = synthDequeue();
  template = synth.template;
});
afterAll(() => synth?.dispose());

/** The schedule's dead-letter queue (the fan-out work queue and its own DLQ are the other two). */
function scheduleDeadLetterQueue(t: Template): { id: string; resource: any } {
  const schedule = onlyResource(t, 'AWS::Scheduler::Schedule');
  const id = schedule.resource.Properties.Target.DeadLetterConfig.Arn['Fn::GetAtt'][0];
  return { id, resource: t.toJSON().Resources[id] };
}

/** The statements of the function role's inline policy, by Sid. */
function functionStatements(t: Template): Map<string, any> {
  const fn = signallerFunction(t);
  const roleId = fn.resource.Properties.Role['Fn::GetAtt'][0];
  const policy = onlyResource(t, 'AWS::IAM::Policy', { Properties: { Roles: [{ Ref: roleId }] } });
  return new Map(policy.resource.Properties.PolicyDocument.Statement.map((s: any) => [s.Sid, s]));
}

describe('the function', () => {
  it(`runs on Node.js ${LAMBDA_NODE_MAJOR} on arm64, with the default timeout and memory`, () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      ...SIGNALLER,
      Runtime: `nodejs${LAMBDA_NODE_MAJOR}.x`,
      Architectures: ['arm64'],
      // Lambda's maximum: an ATRN reply alone may take 600 s (the default ATRN reply wait).
      Timeout: 900,
      MemorySize: 256,
    });
  });

  it('gets exactly the environment the handler reads', () => {
    const environment = new Capture();
    template.hasResourceProperties('AWS::Lambda::Function', {
      ...SIGNALLER,
      Environment: { Variables: environment },
    });
    const table = onlyResource(template, 'AWS::DynamoDB::Table');
    const bucket = onlyResource(template, 'AWS::S3::Bucket');
    const workQueue = onlyResource(template, 'AWS::SQS::Queue', {
      Properties: { RedrivePolicy: Match.anyValue() },
    });
    expect(environment.asObject()).toEqual({
      DEQUEUE_SSM_PREFIX: '/dequeue',
      DEQUEUE_SECRET_PREFIX: 'dequeue/',
      DEQUEUE_COUNTER_TABLE: { Ref: table.id },
      DEQUEUE_MAIL_BUCKET: { Ref: bucket.id },
      DEQUEUE_MAIL_PREFIX: 'mail/',
      DEQUEUE_WORK_QUEUE_URL: { Ref: workQueue.id },
      DEQUEUE_IN_VPC: 'false',
      DEQUEUE_FAILING_AFTER_CYCLES: '3',
      DEQUEUE_STALE_AFTER_HOURS: '24',
      POWERTOOLS_SERVICE_NAME: 'dequeue',
      POWERTOOLS_METRICS_NAMESPACE: 'Dequeue',
      NODE_OPTIONS: '--enable-source-maps',
    });
  });

  it('logs to a log group of its own, kept 30 days', () => {
    const logGroup = new Capture();
    template.hasResourceProperties('AWS::Lambda::Function', {
      ...SIGNALLER,
      LoggingConfig: { LogGroup: { Ref: logGroup } },
    });
    expect(template.toJSON().Resources[logGroup.asString()]).toMatchObject({
      Type: 'AWS::Logs::LogGroup',
      Properties: { RetentionInDays: 30 },
    });
  });

  it('is not re-run by Lambda after a failure: the next cycle is the retry', () => {
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', { MaximumRetryAttempts: 0 });
  });

  it('is bundled as minified ESM with a source map and a require() banner', () => {
    const assetDir = readdirSync(synth.outdir).find(
      (name) => name.startsWith('asset.') && existsSync(join(synth.outdir, name, 'index.mjs')),
    );
    expect(assetDir, 'bundled asset with index.mjs').toBeDefined();
    const code = readFileSync(join(synth.outdir, assetDir!, 'index.mjs'), 'utf8');
    expect(code.startsWith(ESM_REQUIRE_BANNER)).toBe(true);
    expect(code).toMatch(/export\s*\{[^}]*\bas handler\b|export\s*\{\s*handler\s*\}/);
    expect(code).toContain('//# sourceMappingURL=index.mjs.map');
    expect(existsSync(join(synth.outdir, assetDir!, 'index.mjs.map'))).toBe(true);
    // Minified: the fixture's comment and line structure are gone.
    expect(code).not.toContain('stand-in entry');
  });

  it('has no VPC without static egress', () => {
    template.resourceCountIs('AWS::EC2::VPC', 0);
    template.resourceCountIs('AWS::EC2::EIP', 0);
    template.hasResourceProperties('AWS::Lambda::Function', {
      ...SIGNALLER,
      VpcConfig: Match.absent(),
    });
    expect(template.findOutputs('EgressAddress')).toEqual({});
  });
});

describe('least privilege', () => {
  it('the function role has exactly these statements, and no managed policy', () => {
    expect([...functionStatements(template).keys()].sort()).toEqual(
      [
        'CountCycles',
        'QueueWorkOrders',
        'ReadConfiguration',
        'ReadCredentials',
        'ReceiveWorkOrders',
        'StoreMail',
        'WriteOwnLog',
      ].sort(),
    );
    const fn = signallerFunction(template);
    const role = template.toJSON().Resources[fn.resource.Properties.Role['Fn::GetAtt'][0]];
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
      { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
    ]);
  });

  it('reads SSM parameters only under /dequeue', () => {
    const s = functionStatements(template).get('ReadConfiguration');
    expect(s.Effect).toBe('Allow');
    // GetParameter for settings, GetParametersByPath for the targets; nothing calls GetParameters.
    expect(s.Action).toEqual(['ssm:GetParameter', 'ssm:GetParametersByPath']);
    expect(s.Resource.map(cfnText)).toEqual([
      'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/dequeue',
      'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/dequeue/*',
    ]);
  });

  it('reads secrets only under dequeue/', () => {
    const s = functionStatements(template).get('ReadCredentials');
    expect(s.Action).toBe('secretsmanager:GetSecretValue');
    expect(cfnText(s.Resource)).toBe(
      'arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:dequeue/*',
    );
  });

  it('needs no kms:Decrypt with the AWS managed aws/ssm and aws/secretsmanager keys', () => {
    const actions = [...functionStatements(template).values()].flatMap((s) => [s.Action].flat());
    expect(actions.filter((a: string) => a.startsWith('kms:'))).toEqual([]);
  });

  it('uses exactly GetItem, PutItem and UpdateItem on the counter table (no ConditionCheck item is ever sent)', () => {
    const s = functionStatements(template).get('CountCycles');
    const table = onlyResource(template, 'AWS::DynamoDB::Table');
    expect(s.Action).toEqual(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem']);
    expect(s.Resource).toEqual({ 'Fn::GetAtt': [table.id, 'Arn'] });
  });

  it('keeps each target status beside the counter with what it already has: no Query, no Scan, no batch calls', () => {
    // status#<target>: one UpdateItem per target per cycle, GetItem to read one back.
    const actions = [...functionStatements(template).values()].flatMap((st) => [st.Action].flat());
    expect(actions.filter((a: string) => a.startsWith('dynamodb:'))).toEqual([
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
    ]);
  });

  it('gives dequeue status --table a policy of its own that reads the table and writes nothing', () => {
    const table = onlyResource(template, 'AWS::DynamoDB::Table');
    const policies = template.findResources('AWS::IAM::ManagedPolicy', {
      Properties: {
        PolicyDocument: { Statement: [Match.objectLike({ Sid: 'ReadTargetStatus' })] },
      },
    });
    const [id, policy] = Object.entries<any>(policies)[0]!;
    expect(policy.Properties.PolicyDocument.Statement).toEqual([
      {
        Sid: 'ReadTargetStatus',
        Effect: 'Allow',
        Action: ['dynamodb:GetItem', 'dynamodb:Scan'],
        Resource: { 'Fn::GetAtt': [table.id, 'Arn'] },
      },
    ]);
    template.hasOutput('StatusReaderPolicyArn', { Value: { Ref: id } });
  });

  it('may only put (and withdraw) objects under mail/ in the mail bucket, never destroy a version', () => {
    const s = functionStatements(template).get('StoreMail');
    const bucket = onlyResource(template, 'AWS::S3::Bucket');
    expect(s.Action).toEqual(['s3:AbortMultipartUpload', 's3:DeleteObject', 's3:PutObject']);
    expect(JSON.stringify(template.toJSON())).not.toContain('s3:DeleteObjectVersion');
    expect(bucket.resource.Properties.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(cfnText(s.Resource)).toBe(`\${${bucket.id}.Arn}/mail/*`);
  });

  it('writes only to its own log group', () => {
    const s = functionStatements(template).get('WriteOwnLog');
    const logGroup = signallerLogGroup(template);
    expect(s.Action).toEqual(['logs:CreateLogStream', 'logs:PutLogEvents']);
    expect(s.Resource).toEqual({ 'Fn::GetAtt': [logGroup.id, 'Arn'] });
  });

  it('grants no cloudwatch:PutMetricData (metrics go through EMF in the log) and no wildcard action', () => {
    const actions = Object.values(template.findResources('AWS::IAM::Policy')).flatMap(
      (policy: any) =>
        policy.Properties.PolicyDocument.Statement.flatMap((s: any) => [s.Action].flat()),
    );
    expect(actions).not.toContain('cloudwatch:PutMetricData');
    expect(actions.filter((action: string) => action.includes('*'))).toEqual([]);
  });

  it('lets the schedule invoke only the unqualified function and write only to its dead-letter queue', () => {
    const roleArn = new Capture();
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      Target: { RoleArn: { 'Fn::GetAtt': [roleArn, 'Arn'] } },
    });
    const policy = onlyResource(template, 'AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: roleArn.asString() }] },
    });
    const fn = signallerFunction(template);
    const queue = scheduleDeadLetterQueue(template);
    expect(policy.resource.Properties.PolicyDocument.Statement).toEqual([
      {
        Action: 'lambda:InvokeFunction',
        Effect: 'Allow',
        Resource: { 'Fn::GetAtt': [fn.id, 'Arn'] },
      },
      { Action: 'sqs:SendMessage', Effect: 'Allow', Resource: { 'Fn::GetAtt': [queue.id, 'Arn'] } },
    ]);
  });
});

describe('the mail reader policy (for dequeue deliver --bucket)', () => {
  it('lists, reads and deletes under mail/, writes only claims and progress beside the mail and refused mail under mail/failed/', () => {
    const bucket = onlyResource(template, 'AWS::S3::Bucket');
    const policy = onlyResource(template, 'AWS::IAM::ManagedPolicy', {
      Properties: {
        PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Sid: 'ListMail' })]) },
      },
    });
    const statements = policy.resource.Properties.PolicyDocument.Statement.map((st: any) => ({
      ...st,
      Resource: Array.isArray(st.Resource) ? st.Resource.map(cfnText) : cfnText(st.Resource),
    }));
    expect(statements).toEqual([
      {
        Sid: 'ListMail',
        Effect: 'Allow',
        Action: 's3:ListBucket',
        Resource: `\${${bucket.id}.Arn}`,
        Condition: { StringLike: { 's3:prefix': ['mail/*'] } },
      },
      {
        Sid: 'TakeMail',
        Effect: 'Allow',
        Action: ['s3:DeleteObject', 's3:GetObject'],
        Resource: `\${${bucket.id}.Arn}/mail/*`,
      },
      { Sid: 'ClaimMail', Effect: 'Allow', Action: 's3:PutObject', Resource: expect.anything() },
      {
        Sid: 'SetAsideRefusedMail',
        Effect: 'Allow',
        Action: 's3:PutObject',
        Resource: `\${${bucket.id}.Arn}/mail/failed/*`,
      },
    ]);
    expect(statements.find((st: any) => st.Sid === 'ClaimMail').Resource).toEqual([
      `\${${bucket.id}.Arn}/mail/*.claim`,
      `\${${bucket.id}.Arn}/mail/*.progress`,
    ]);
    // The operator attaches it; the stack attaches it to nothing.
    expect(policy.resource.Properties.Roles).toBeUndefined();
    expect(policy.resource.Properties.Users).toBeUndefined();
    template.hasOutput('MailReaderPolicyArn', { Value: { Ref: policy.id } });
  });

  it('leaves the function itself unable to read or list stored mail', () => {
    const actions = [...functionStatements(template).values()].flatMap((st) => [st.Action].flat());
    expect(actions.filter((a: string) => /^s3:(Get|List)/.test(a))).toEqual([]);
  });
});

describe('the schedule', () => {
  it('runs every 15 minutes in UTC and sends the Scheduler context attributes', () => {
    const input = new Capture();
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'rate(15 minutes)',
      ScheduleExpressionTimezone: 'UTC',
      State: 'ENABLED',
      Target: { Input: input },
    });
    // Exactly this text: the attributes are substituted inside the quotes, so attemptNumber is a string.
    expect(input.asString()).toBe(
      '{"source":"schedule","scheduleArn":"<aws.scheduler.schedule-arn>","scheduledTime":"<aws.scheduler.scheduled-time>","executionId":"<aws.scheduler.execution-id>","attemptNumber":"<aws.scheduler.attempt-number>"}',
    );
  });

  it('targets the function with a retry policy and an encrypted dead-letter queue', () => {
    const fn = signallerFunction(template);
    const queue = scheduleDeadLetterQueue(template);
    template.hasResourceProperties('AWS::Scheduler::Schedule', {
      Target: {
        Arn: { 'Fn::GetAtt': [fn.id, 'Arn'] },
        RetryPolicy: { MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: 900 },
        DeadLetterConfig: { Arn: { 'Fn::GetAtt': [queue.id, 'Arn'] } },
      },
    });
    expect(queue.resource.Properties).toMatchObject({
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 1_209_600,
    });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });
});

describe('state and mail', () => {
  it('keeps the counter in an on-demand table keyed by pk, with TTL on expiresAt and PITR, retained', () => {
    template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: {
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
        BillingMode: 'PAY_PER_REQUEST',
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      },
    });
  });

  it('stores mail in a private, encrypted, versioned, retained bucket that refuses plain HTTP', () => {
    const bucket = onlyResource(template, 'AWS::S3::Bucket');
    expect(bucket.resource).toMatchObject({
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    expect(bucket.resource.Properties).toMatchObject({
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          { ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } },
        ],
      },
      VersioningConfiguration: { Status: 'Enabled' },
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: bucket.id },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Condition: { NumericLessThan: { 's3:TlsVersion': 1.2 } },
          }),
        ]),
      },
    });
  });

  it('keeps mail and its old versions until deleted by hand, but aborts abandoned multipart uploads', () => {
    const bucket = onlyResource(template, 'AWS::S3::Bucket');
    expect(bucket.resource.Properties.LifecycleConfiguration.Rules).toEqual([
      {
        Id: 'abort-incomplete-uploads',
        AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
        Status: 'Enabled',
      },
    ]);
  });
});

describe('alarms', () => {
  it('notify an SNS topic encrypted with a rotated key that CloudWatch may use', () => {
    const key = onlyResource(template, 'AWS::KMS::Key');
    expect(key.resource.Properties.EnableKeyRotation).toBe(true);
    expect(key.resource.Properties.KeyPolicy.Statement).toContainEqual({
      Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
      Effect: 'Allow',
      Principal: { Service: 'cloudwatch.amazonaws.com' },
      Resource: '*',
    });
    template.hasResourceProperties('AWS::SNS::Topic', {
      KmsMasterKeyId: { 'Fn::GetAtt': [key.id, 'Arn'] },
    });
    template.resourceCountIs('AWS::SNS::Subscription', 0);
  });

  it('watch function errors', () => {
    const fn = signallerFunction(template);
    const topic = onlyResource(template, 'AWS::SNS::Topic');
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: fn.id } }],
      Statistic: 'Sum',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: topic.id }],
      OKActions: [{ Ref: topic.id }],
    });
  });

  it.each([
    [
      'a target failing 3 cycles in a row',
      FAILING_TARGETS_METRIC.metricName,
      'failed 3 cycles in a row',
    ],
    ['a target without success for a day', STALE_TARGETS_METRIC.metricName, 'for more than 1 day'],
  ])(
    'page for %s, from the count the handler publishes once per cycle',
    (_, metricName, description) => {
      const topic = onlyResource(template, 'AWS::SNS::Topic');
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'Dequeue',
        MetricName: metricName,
        Dimensions: [{ Name: 'service', Value: 'dequeue' }],
        Statistic: 'Maximum',
        Period: 900,
        EvaluationPeriods: 1,
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        // A period without a cycle keeps the state: only the next cycle's count can clear it.
        TreatMissingData: 'ignore',
        AlarmDescription: Match.stringLikeRegexp(description),
        AlarmActions: [{ Ref: topic.id }],
        OKActions: [{ Ref: topic.id }],
      });
    },
  );

  it('do not page for a single failed target', () => {
    expect(
      template.findResources('AWS::CloudWatch::Alarm', {
        Properties: { MetricName: 'TargetFailures' },
      }),
    ).toEqual({});
  });

  it('watch the dead-letter queue', () => {
    const queue = scheduleDeadLetterQueue(template);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queue.id, 'QueueName'] } }],
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
    // Four of SignallerAlarms, and the fan-out work queue's dead-letter alarm (test/lib/work-queue.test.ts).
    template.resourceCountIs('AWS::CloudWatch::Alarm', 5);
  });
});

describe('the dashboard and saved queries', () => {
  /** The dashboard body as JSON, references rendered as `${LogicalId}`. */
  function dashboardBody(): any {
    const dashboard = onlyResource(template, 'AWS::CloudWatch::Dashboard');
    return JSON.parse(cfnText(dashboard.resource.Properties.DashboardBody));
  }
  const widget = (title: string) =>
    dashboardBody().widgets.find((w: any) => w.properties.title === title)?.properties;

  it('is named after the stack and opens on the last day', () => {
    template.hasResourceProperties('AWS::CloudWatch::Dashboard', { DashboardName: 'Dequeue' });
    expect(dashboardBody().start).toBe('-P1D');
  });

  it('graphs cycles, errors, targets by every outcome, failing and stale targets and stored mail', () => {
    const fn = signallerFunction(template);
    const cycles = widget('Cycles (function invocations) and failed ones');
    expect(cycles.metrics.map((m: any[]) => m.slice(0, 4))).toEqual([
      ['AWS/Lambda', 'Invocations', 'FunctionName', `\${${fn.id}}`],
      ['AWS/Lambda', 'Errors', 'FunctionName', `\${${fn.id}}`],
      ['AWS/Lambda', 'Throttles', 'FunctionName', `\${${fn.id}}`],
    ]);
    const outcomes = widget('Targets by outcome');
    expect(outcomes.stacked).toBe(true);
    expect(outcomes.metrics.map((m: any[]) => m.slice(0, 6))).toEqual(
      [
        'signalled',
        'no-mail',
        'skipped',
        'temporary-failure',
        'permanent-failure',
        'config-error',
      ].map((o) => ['Dequeue', 'Targets', 'outcome', o, 'service', 'dequeue']),
    );
    const failing = widget('Failing and stale targets (the alarms watch these)');
    expect(failing.metrics).toContainEqual([
      'Dequeue',
      'FailingTargets',
      'service',
      'dequeue',
      expect.objectContaining({ stat: 'Maximum' }),
    ]);
    expect(failing.metrics).toContainEqual([
      'Dequeue',
      'StaleTargets',
      'service',
      'dequeue',
      expect.objectContaining({ stat: 'Maximum' }),
    ]);
    expect(widget('Messages stored after ATRN').metrics).toEqual([
      ['Dequeue', 'MessagesStored', 'service', 'dequeue', expect.objectContaining({ stat: 'Sum' })],
    ]);
  });

  it('graphs the cycle duration against the function timeout', () => {
    const duration = widget('Cycle duration (function duration)');
    expect(duration.metrics.map((m: any[]) => m[1])).toEqual(['Duration', 'Duration']);
    expect(duration.annotations.horizontal).toEqual([
      expect.objectContaining({ value: 900_000, label: 'timeout' }),
    ]);
  });

  it('saves a Logs Insights query for the last result of every target, over the function log', () => {
    const logGroup = signallerLogGroup(template);
    const query = new Capture();
    template.hasResourceProperties('AWS::Logs::QueryDefinition', {
      Name: 'Dequeue/last result per target',
      LogGroupNames: [{ Ref: logGroup.id }],
      QueryString: query,
    });
    expect(query.asString()).toContain('filter message = "target result"');
    expect(query.asString()).toMatch(
      /stats latest\(outcome\) as lastOutcome, .*latest\(error\) as lastError by target/,
    );
  });

  it('saves a query for failed results and shows the last day of them on the dashboard', () => {
    const logGroup = signallerLogGroup(template);
    const query = new Capture();
    template.hasResourceProperties('AWS::Logs::QueryDefinition', {
      Name: Match.stringLikeRegexp('^Dequeue/failures'),
      LogGroupNames: [{ Ref: logGroup.id }],
      QueryString: query,
    });
    expect(query.asString()).toContain(
      'filter outcome in ["temporary-failure", "permanent-failure", "config-error"]',
    );
    const table = widget('Failed target results');
    expect(table.view).toBe('table');
    expect(table.query).toBe(`SOURCE '\${${logGroup.id}}' | ${query.asString()}`);
  });
});

describe('console test events', () => {
  it('are the shareable events of the function: dry run, ordinary cycle, force, one target', () => {
    const fn = signallerFunction(template);
    const content = new Capture();
    template.hasResourceProperties('AWS::EventSchemas::Schema', {
      RegistryName: 'lambda-testevent-schemas',
      SchemaName: { 'Fn::Join': ['', ['_', { Ref: fn.id }, '-schema']] },
      Type: 'OpenApi3',
      Content: content,
    });
    const document = JSON.parse(content.asString());
    expect(document.openapi).toBe('3.0.0');
    expect(document.components.examples).toEqual({
      'dry-run': { value: { dryRun: true } },
      'ordinary-cycle': { value: {} },
      force: { value: { force: true } },
      'one-target': { value: { targets: ['isp-etrn'] } },
    });
    expect(Object.keys(document.components.schemas.Event.properties).sort()).toEqual([
      'dryRun',
      'force',
      'targets',
    ]);
  });

  it('create the registry only where the account lacks it, and never delete it', () => {
    const registry = onlyResource(template, 'Custom::LambdaTestEventRegistry');
    const create = JSON.parse(registry.resource.Properties.Create);
    expect(create).toMatchObject({
      service: 'schemas',
      action: 'CreateRegistry',
      parameters: { RegistryName: 'lambda-testevent-schemas' },
      ignoreErrorCodesMatching: 'ConflictException',
    });
    expect(registry.resource.Properties.Update).toBeUndefined();
    expect(registry.resource.Properties.Delete).toBeUndefined();
    const schema = onlyResource(template, 'AWS::EventSchemas::Schema');
    expect(schema.resource.DependsOn).toContain(registry.id);
  });

  it('give the registry creator a role that may create that one registry and write its own log', () => {
    const registry = onlyResource(template, 'Custom::LambdaTestEventRegistry');
    const creatorId = registry.resource.Properties.ServiceToken['Fn::GetAtt'][0];
    const creator = template.toJSON().Resources[creatorId];
    const roleId = creator.Properties.Role['Fn::GetAtt'][0];
    expect(template.toJSON().Resources[roleId].Properties.ManagedPolicyArns).toBeUndefined();
    const statements = Object.values(
      template.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: roleId }] } }),
    ).flatMap((p: any) => p.Properties.PolicyDocument.Statement);
    expect(statements.map((st: any) => [st.Action, cfnText(st.Resource)]).sort()).toEqual(
      [
        [
          ['logs:CreateLogStream', 'logs:PutLogEvents'],
          `\${${creator.Properties.LoggingConfig.LogGroup.Ref}.Arn}`,
        ],
        [
          'schemas:CreateRegistry',
          'arn:${AWS::Partition}:schemas:${AWS::Region}:${AWS::AccountId}:registry/lambda-testevent-schemas',
        ],
      ].sort(),
    );
  });
});

describe('outputs', () => {
  it('name what an operator needs after deploying', () => {
    const fn = signallerFunction(template);
    template.hasOutput('FunctionName', { Value: { Ref: fn.id } });
    for (const name of [
      'LogGroupName',
      'CounterTableName',
      'MailBucketName',
      'AlarmTopicArn',
      'DeadLetterQueueUrl',
    ]) {
      expect(Object.keys(template.findOutputs(name)), name).toEqual([name]);
    }
  });

  it.each([
    [
      'aws',
      'eu-central-1',
      'https://eu-central-1.console.aws.amazon.com/cloudwatch/home?region=eu-central-1',
    ],
    ['aws-cn', 'cn-north-1', 'https://console.amazonaws.cn/cloudwatch/home?region=cn-north-1'],
    [
      'aws-us-gov',
      'us-gov-west-1',
      'https://console.amazonaws-us-gov.com/cloudwatch/home?region=us-gov-west-1',
    ],
  ])(
    'name the dashboard and link to it in the console of the partition (%s)',
    (partition, region, consoleHome) => {
      const dashboard = onlyResource(template, 'AWS::CloudWatch::Dashboard');
      template.hasOutput('DashboardName', { Value: { Ref: dashboard.id } });
      const url = template.findOutputs('DashboardUrl').DashboardUrl;
      expect(url, 'the stack has a DashboardUrl output').toBeDefined();
      if (url === undefined) return;
      // As CloudFormation would resolve it, deployed in that partition and region.
      const resolver = new CfnResolver(template.toJSON() as CfnTemplate, {
        partition,
        region,
        accountId: '123456789012',
        stackName: 'Dequeue',
        urlSuffix: 'amazonaws.com',
      });
      const name = resolver.physicalOf(dashboard.id).ref;
      expect(resolver.condition(url.Condition)).toBe(true);
      expect(resolver.string(url.Value)).toBe(`${consoleHome}#dashboards/dashboard/${name}`);
    },
  );

  it('leave the dashboard link out in a partition whose console it does not know, rather than give a wrong one', () => {
    const url = template.findOutputs('DashboardUrl').DashboardUrl;
    expect(url, 'the stack has a DashboardUrl output').toBeDefined();
    if (url === undefined) return;
    const resolver = new CfnResolver(template.toJSON() as CfnTemplate, {
      partition: 'aws-iso',
      region: 'us-iso-east-1',
      accountId: '123456789012',
      stackName: 'Dequeue',
      urlSuffix: 'c2s.ic.gov',
    });
    expect(resolver.condition(url.Condition)).toBe(false);
  });
});
