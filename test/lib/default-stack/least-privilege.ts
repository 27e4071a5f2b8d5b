/**
 * The default stack, synthesised once by test/lib/release-signaller.test.ts: the function role's
 * statements, the schedule's role and the two reader policies.
 */
import { Capture, Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  cfnText,
  functionStatements,
  onlyResource,
  scheduleDeadLetterQueue,
  signallerFunction,
  signallerLogGroup,
  type SynthesisedDequeue,
} from '../synth-dequeue';

export function leastPrivilegeTests(synthesised: () => SynthesisedDequeue): void {
  let template: Template;
  beforeAll(() => {
    template = synthesised().template;
  });

  describe('least privilege', () => {
    it('the function role has exactly these statements, and no managed policy', () => {
      expect([...functionStatements(template).keys()].sort()).toEqual(
        [
          'CountCycles',
          'EncryptMail',
          'HandBackWorkOrders',
          'QueueWorkOrders',
          'ReadConfiguration',
          'ReadCredentials',
          'ListTargetStatus',
          'ReceiveWorkOrders',
          'RecordFailedCycles',
          'StoreMail',
          'WriteOwnLog',
        ].sort(),
      );
      const fn = signallerFunction(template);
      const role = template.toJSON().Resources[fn.resource.Properties.Role['Fn::GetAtt'][0]];
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
      expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
        {
          Action: 'sts:AssumeRole',
          Effect: 'Allow',
          Principal: { Service: 'lambda.amazonaws.com' },
        },
      ]);
    });

    it('reads SSM parameters only under /dequeue', () => {
      const s = functionStatements(template).get('ReadConfiguration');
      expect(s.Effect).toBe('Allow');
      // GetParameter for settings, GetParametersByPath for the targets, GetParameters for the
      // targets a fan-out worker's orders name.
      expect(s.Action).toEqual([
        'ssm:GetParameter',
        'ssm:GetParameters',
        'ssm:GetParametersByPath',
      ]);
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

    it('needs no kms:Decrypt with the AWS managed aws/ssm and aws/secretsmanager keys; the mail key only through S3', () => {
      const statements = [...functionStatements(template).values()];
      const withKms = statements.filter((s) =>
        [s.Action].flat().some((a: string) => a.startsWith('kms:')),
      );
      const bucket = onlyResource(template, 'AWS::S3::Bucket');
      const keyId =
        bucket.resource.Properties.BucketEncryption.ServerSideEncryptionConfiguration[0]
          .ServerSideEncryptionByDefault.KMSMasterKeyID['Fn::GetAtt'][0];
      expect(withKms).toEqual([
        {
          Sid: 'EncryptMail',
          Effect: 'Allow',
          // A data key for each object, and for a multipart upload that data key again.
          Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
          Resource: { 'Fn::GetAtt': [keyId, 'Arn'] },
          Condition: {
            StringEquals: {
              'kms:ViaService': {
                'Fn::Join': ['', ['s3.', { Ref: 'AWS::Region' }, '.amazonaws.com']],
              },
            },
          },
        },
      ]);
    });

    it('uses exactly GetItem, PutItem and UpdateItem on the counter table (no ConditionCheck item is ever sent)', () => {
      const s = functionStatements(template).get('CountCycles');
      const table = onlyResource(template, 'AWS::DynamoDB::Table');
      expect(s.Action).toEqual(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem']);
      expect(s.Resource).toEqual({ 'Fn::GetAtt': [table.id, 'Arn'] });
    });

    it('keeps each target status beside the counter with what it already has: no Scan, no batch calls', () => {
      // status#<target>: one UpdateItem per target per cycle, GetItem to read one back; the
      // only Query is of the status index (below).
      const actions = [...functionStatements(template).values()].flatMap((st) =>
        [st.Action].flat(),
      );
      expect(actions.filter((a: string) => a.startsWith('dynamodb:'))).toEqual([
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:UpdateItem',
        'dynamodb:Query',
      ]);
    });

    it('gives dequeue status --table a policy of its own that queries the status index, reads one item and writes nothing', () => {
      const table = onlyResource(template, 'AWS::DynamoDB::Table');
      const policies = template.findResources('AWS::IAM::ManagedPolicy', {
        Properties: {
          PolicyDocument: {
            Statement: Match.arrayWith([Match.objectLike({ Sid: 'ReadTargetStatus' })]),
          },
        },
      });
      const [id, policy] = Object.entries<any>(policies)[0]!;
      expect(
        policy.Properties.PolicyDocument.Statement.map((st: any) => ({
          ...st,
          Resource: cfnText(st.Resource),
        })),
      ).toEqual([
        {
          Sid: 'ListTargetStatus',
          Effect: 'Allow',
          Action: 'dynamodb:Query',
          Resource: `\${${table.id}.Arn}/index/status`,
        },
        {
          Sid: 'ReadTargetStatus',
          Effect: 'Allow',
          Action: 'dynamodb:GetItem',
          Resource: `\${${table.id}.Arn}`,
        },
      ]);
      expect(JSON.stringify(template.toJSON())).not.toContain('dynamodb:Scan');
      template.hasOutput('StatusReaderPolicyArn', { Value: { Ref: id } });
    });

    it('lets a coordinator count the statuses of the targets it handed to workers with one Query of the status index, nothing more', () => {
      const table = onlyResource(template, 'AWS::DynamoDB::Table');
      const s = functionStatements(template).get('ListTargetStatus');
      expect(s.Action).toBe('dynamodb:Query');
      expect(cfnText(s.Resource)).toBe(`\${${table.id}.Arn}/index/status`);
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

    it('lets Lambda record a cycle it gave up on in the dead-letter queue, and nothing more there', () => {
      const queue = scheduleDeadLetterQueue(template);
      expect(functionStatements(template).get('RecordFailedCycles')).toEqual({
        Sid: 'RecordFailedCycles',
        Effect: 'Allow',
        Action: 'sqs:SendMessage',
        Resource: { 'Fn::GetAtt': [queue.id, 'Arn'] },
      });
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
        {
          Action: 'sqs:SendMessage',
          Effect: 'Allow',
          Resource: { 'Fn::GetAtt': [queue.id, 'Arn'] },
        },
      ]);
    });
  });

  describe('the mail reader policy (for dequeue deliver --bucket)', () => {
    it('lists, reads, tags for expiry and deletes under mail/, writes only claims and progress beside the mail and refused mail under mail/failed/, decrypts only through S3', () => {
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
        {
          Sid: 'LetTakenMailExpire',
          Effect: 'Allow',
          Action: 's3:PutObjectTagging',
          Resource: `\${${bucket.id}.Arn}/mail/*`,
          // That one tag and no other: tags the lifecycle does not read could only mislead.
          Condition: {
            'ForAllValues:StringEquals': { 's3:RequestObjectTagKeys': ['dequeue-expiry'] },
          },
        },
        { Sid: 'ClaimMail', Effect: 'Allow', Action: 's3:PutObject', Resource: expect.anything() },
        {
          Sid: 'SetAsideRefusedMail',
          Effect: 'Allow',
          Action: 's3:PutObject',
          Resource: `\${${bucket.id}.Arn}/mail/failed/*`,
        },
        {
          Sid: 'UseMailKey',
          Effect: 'Allow',
          Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
          Resource: expect.stringMatching(/^\$\{ReleaseSignallerMailStoreKey[0-9A-F]+\.Arn\}$/),
          Condition: expect.anything(),
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
      const actions = [...functionStatements(template).values()].flatMap((st) =>
        [st.Action].flat(),
      );
      expect(actions.filter((a: string) => /^s3:(Get|List)/.test(a))).toEqual([]);
    });
  });
}
