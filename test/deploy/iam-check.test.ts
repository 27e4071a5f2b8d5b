/**
 * The conformance check's own rules, without peers: how a recorded request becomes IAM
 * authorisations, and how statements decide them. The deployed-bundle test relies on both; a
 * check that allowed too much would pass a deployment that fails with AccessDenied.
 */
import { describe, expect, it } from 'vitest';
import { decodeCall } from './aws-calls';
import { decide, resourceMatches, type Policy, type Statement } from './iam-policy';
import type { RecordedExchange } from './recording-proxy';

const ACCOUNT = '123456789012';
const ROLE = `arn:aws:iam::${ACCOUNT}:role/Dequeue-FunctionRole-ABC`;
const env = { partition: 'aws', accountId: ACCOUNT, hashKeyOf: () => 'pk' };

function exchange(
  service: string,
  fields: Partial<RecordedExchange> & { target?: string; json?: unknown; response?: unknown },
): RecordedExchange {
  return {
    method: fields.method ?? 'POST',
    url: fields.url ?? '/',
    headers: {
      host: '127.0.0.1:4566',
      authorization: `AWS4-HMAC-SHA256 Credential=ASIATESTING/20260101/us-east-1/${service}/aws4_request, SignedHeaders=host, Signature=abc`,
      ...(fields.target
        ? { 'x-amz-target': fields.target, 'content-type': 'application/x-amz-json-1.1' }
        : {}),
      ...fields.headers,
    },
    body:
      fields.json !== undefined
        ? Buffer.from(JSON.stringify(fields.json))
        : (fields.body ?? Buffer.alloc(0)),
    bodyBytes: 0,
    status: fields.status ?? 200,
    responseHeaders: {},
    responseBody:
      fields.response !== undefined
        ? Buffer.from(JSON.stringify(fields.response))
        : Buffer.alloc(0),
  };
}

const s3 = (method: string, url: string, headers: Record<string, string> = {}) =>
  decodeCall(exchange('s3', { method, url, headers }), env);
const actions = (call: ReturnType<typeof decodeCall>) =>
  call.authorizations.map((a) => `${a.action} ${a.resource}`);

describe('decoding recorded requests into IAM authorisations', () => {
  it('S3 REST: the multipart calls are s3:PutObject, the abort and the delete their own actions, keys unescaped', () => {
    const object = 'arn:aws:s3:::mail-bucket/mail/odmr/a b.eml';
    expect(actions(s3('PUT', '/mail-bucket/mail/odmr/a%20b.eml?x-id=PutObject'))).toEqual([
      `s3:PutObject ${object}`,
    ]);
    expect(
      s3('POST', '/mail-bucket/mail/odmr/a%20b.eml?uploads&x-id=CreateMultipartUpload').operation,
    ).toBe('s3 CreateMultipartUpload');
    expect(
      actions(s3('POST', '/mail-bucket/mail/odmr/a%20b.eml?uploads&x-id=CreateMultipartUpload')),
    ).toEqual([`s3:PutObject ${object}`]);
    expect(
      actions(
        s3('PUT', '/mail-bucket/mail/odmr/a%20b.eml?x-id=UploadPart&partNumber=2&uploadId=u1'),
      ),
    ).toEqual([`s3:PutObject ${object}`]);
    expect(actions(s3('POST', '/mail-bucket/mail/odmr/a%20b.eml?uploadId=u1'))).toEqual([
      `s3:PutObject ${object}`,
    ]);
    expect(
      actions(
        s3('DELETE', '/mail-bucket/mail/odmr/a%20b.eml?x-id=AbortMultipartUpload&uploadId=u1'),
      ),
    ).toEqual([`s3:AbortMultipartUpload ${object}`]);
    expect(actions(s3('DELETE', '/mail-bucket/mail/odmr/a%20b.eml?x-id=DeleteObject'))).toEqual([
      `s3:DeleteObject ${object}`,
    ]);
    expect(actions(s3('DELETE', '/mail-bucket/mail/odmr/a%20b.eml?versionId=v1'))).toEqual([
      `s3:DeleteObjectVersion ${object}`,
    ]);
    expect(actions(s3('GET', '/mail-bucket/mail/x.eml?x-id=GetObject'))).toEqual([
      's3:GetObject arn:aws:s3:::mail-bucket/mail/x.eml',
    ]);
    expect(actions(s3('HEAD', '/mail-bucket/mail/x.eml'))).toEqual([
      's3:GetObject arn:aws:s3:::mail-bucket/mail/x.eml',
    ]);
    expect(actions(s3('GET', '/mail-bucket?list-type=2&prefix=mail%2F'))).toEqual([
      's3:ListBucket arn:aws:s3:::mail-bucket',
    ]);
    expect(
      actions(s3('PUT', '/mail-bucket/copy.eml', { 'x-amz-copy-source': '/other/src.eml' })),
    ).toEqual([
      's3:PutObject arn:aws:s3:::mail-bucket/copy.eml',
      's3:GetObject arn:aws:s3:::other/src.eml',
    ]);
  });

  it("an S3 request decoded otherwise than the SDK's x-id says, or not at all, is kept undecided", () => {
    expect(actions(s3('PUT', '/mail-bucket/k?x-id=PutObjectLockConfiguration'))[0]).toMatch(
      /^s3:\? /,
    );
    expect(actions(s3('PATCH', '/mail-bucket/k'))[0]).toMatch(/^s3:\? /);
  });

  it('DynamoDB: a transaction is authorised per item, with the partition key as dynamodb:LeadingKeys', () => {
    const call = decodeCall(
      exchange('dynamodb', {
        target: 'DynamoDB_20120810.TransactWriteItems',
        json: {
          TransactItems: [
            { Put: { TableName: 'T', Item: { pk: { S: 'slot#x' } } } },
            { Update: { TableName: 'T', Key: { pk: { S: 'counter' } } } },
          ],
        },
      }),
      env,
    );
    expect(actions(call)).toEqual([
      'dynamodb:PutItem arn:aws:dynamodb:us-east-1:123456789012:table/T',
      'dynamodb:UpdateItem arn:aws:dynamodb:us-east-1:123456789012:table/T',
    ]);
    expect(call.authorizations.map((a) => a.context['dynamodb:leadingkeys'])).toEqual([
      ['slot#x'],
      ['counter'],
    ]);
  });

  it("Secrets Manager: the secret's ARN with its random suffix, from the response", () => {
    const call = decodeCall(
      exchange('secretsmanager', {
        target: 'secretsmanager.GetSecretValue',
        json: { SecretId: 'dequeue/odmr' },
        response: {
          ARN: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:dequeue/odmr-Ab12Cd',
          Name: 'dequeue/odmr',
        },
      }),
      env,
    );
    expect(actions(call)).toEqual([
      'secretsmanager:GetSecretValue arn:aws:secretsmanager:us-east-1:123456789012:secret:dequeue/odmr-Ab12Cd',
    ]);
  });

  it('SSM: a path and each name of GetParameters are parameter ARNs', () => {
    const byPath = decodeCall(
      exchange('ssm', {
        target: 'AmazonSSM.GetParametersByPath',
        json: { Path: '/dequeue/targets', Recursive: true },
      }),
      env,
    );
    expect(actions(byPath)).toEqual([
      'ssm:GetParametersByPath arn:aws:ssm:us-east-1:123456789012:parameter/dequeue/targets',
    ]);
    expect(byPath.authorizations[0]!.context['ssm:recursive']).toBe('true');
    const names = decodeCall(
      exchange('ssm', { target: 'AmazonSSM.GetParameters', json: { Names: ['/a/b', 'c'] } }),
      env,
    );
    expect(actions(names)).toEqual([
      'ssm:GetParameters arn:aws:ssm:us-east-1:123456789012:parameter/a/b',
      'ssm:GetParameters arn:aws:ssm:us-east-1:123456789012:parameter/c',
    ]);
  });

  it('SQS JSON: the queue from its URL; the batch send is sqs:SendMessage', () => {
    const call = decodeCall(
      exchange('sqs', {
        target: 'AmazonSQS.SendMessageBatch',
        json: { QueueUrl: 'http://127.0.0.1:4566/123456789012/fan-out' },
      }),
      env,
    );
    expect(actions(call)).toEqual(['sqs:SendMessage arn:aws:sqs:us-east-1:123456789012:fan-out']);
  });
});

const identity = (...statements: Statement[]): Policy => ({
  name: 'RolePolicy',
  kind: 'identity',
  statements,
});
const auth = (action: string, resource: string, context: Record<string, string> = {}) => ({
  action,
  resource,
  context: { 'aws:securetransport': 'true', ...context },
  modelled: ['aws:securetransport', 's3:tlsversion'],
});

describe('deciding authorisations against statements', () => {
  it('resource wildcards stay inside an ARN segment unless they end it', () => {
    expect(
      resourceMatches(
        'arn:aws:secretsmanager:us-east-1:123456789012:secret:dequeue/*',
        'arn:aws:secretsmanager:us-east-1:123456789012:secret:dequeue/odmr-Ab12Cd',
      ),
    ).toBe(true);
    expect(
      resourceMatches(
        'arn:aws:secretsmanager:us-east-1:123456789012:secret:other/*',
        'arn:aws:secretsmanager:us-east-1:123456789012:secret:dequeue/odmr-Ab12Cd',
      ),
    ).toBe(false);
    expect(
      resourceMatches(
        'arn:aws:ssm:*:123456789012:parameter/dequeue/*',
        'arn:aws:ssm:us-east-1:123456789012:parameter/dequeue/targets/a',
      ),
    ).toBe(true);
    expect(
      resourceMatches(
        'arn:aws:ssm:us-*-1:123456789012:parameter/x',
        'arn:aws:ssm:us-east:x-1:123456789012:parameter/x',
      ),
    ).toBe(false);
    expect(
      resourceMatches('arn:aws:s3:::bucket/mail/*', 'arn:aws:s3:::bucket/mail/odmr/2026/a.eml'),
    ).toBe(true);
    expect(resourceMatches('arn:aws:s3:::bucket/mail/*', 'arn:aws:s3:::bucket/other/a.eml')).toBe(
      false,
    );
    // The parameter path itself is not under `<path>/*`: GetParametersByPath needs its own grant.
    expect(
      resourceMatches(
        'arn:aws:ssm:us-east-1:123456789012:parameter/dequeue/*',
        'arn:aws:ssm:us-east-1:123456789012:parameter/dequeue',
      ),
    ).toBe(false);
  });

  it('allows by the matching statement, names it, and denies implicitly otherwise', () => {
    const policy = identity({
      Sid: 'StoreMail',
      Effect: 'Allow',
      Action: ['s3:PutObject', 's3:AbortMultipartUpload'],
      Resource: 'arn:aws:s3:::b/mail/*',
    });
    expect(decide(auth('s3:PutObject', 'arn:aws:s3:::b/mail/x'), [policy], ROLE, ACCOUNT)).toEqual({
      verdict: 'allowed',
      by: { policy: 'RolePolicy', statement: 'StoreMail' },
    });
    expect(
      decide(auth('S3:putobject', 'arn:aws:s3:::b/mail/x'), [policy], ROLE, ACCOUNT).verdict,
    ).toBe('allowed');
    expect(
      decide(auth('s3:DeleteObject', 'arn:aws:s3:::b/mail/x'), [policy], ROLE, ACCOUNT).verdict,
    ).toBe('implicitly denied');
    expect(decide(auth('s3:PutObject', 'arn:aws:s3:::b/x'), [policy], ROLE, ACCOUNT).verdict).toBe(
      'implicitly denied',
    );
    expect(
      decide(
        auth('s3:PutObject', 'arn:aws:s3:::b/x'),
        [identity({ Effect: 'Allow', NotAction: 's3:Delete*', Resource: '*' })],
        ROLE,
        ACCOUNT,
      ).verdict,
    ).toBe('allowed');
  });

  it("an explicit Deny in a bucket policy wins, with its conditions evaluated (CDK's enforceSSL)", () => {
    const allow = identity({
      Sid: 'StoreMail',
      Effect: 'Allow',
      Action: 's3:PutObject',
      Resource: 'arn:aws:s3:::b/*',
    });
    const bucketPolicy: Policy = {
      name: 'BucketPolicy',
      kind: 'resource',
      attachedTo: ['arn:aws:s3:::b'],
      statements: [
        {
          Effect: 'Deny',
          Principal: { AWS: '*' },
          Action: 's3:*',
          Resource: ['arn:aws:s3:::b', 'arn:aws:s3:::b/*'],
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        },
        {
          Effect: 'Deny',
          Principal: { AWS: '*' },
          Action: 's3:*',
          Resource: ['arn:aws:s3:::b', 'arn:aws:s3:::b/*'],
          Condition: { NumericLessThan: { 's3:TlsVersion': 1.2 } },
        },
      ],
    };
    expect(
      decide(
        auth('s3:PutObject', 'arn:aws:s3:::b/k', { 's3:tlsversion': '1.2' }),
        [allow, bucketPolicy],
        ROLE,
        ACCOUNT,
      ).verdict,
    ).toBe('allowed');
    expect(
      decide(
        auth('s3:PutObject', 'arn:aws:s3:::b/k', {
          'aws:securetransport': 'false',
          's3:tlsversion': '1.2',
        }),
        [allow, bucketPolicy],
        ROLE,
        ACCOUNT,
      ),
    ).toEqual({
      verdict: 'denied',
      by: { policy: 'BucketPolicy', statement: '#0' },
    });
    expect(
      decide(
        auth('s3:PutObject', 'arn:aws:s3:::b/k', { 's3:tlsversion': '1.0' }),
        [allow, bucketPolicy],
        ROLE,
        ACCOUNT,
      ).verdict,
    ).toBe('denied');
  });

  it('a condition on a key the decoder does not model is undecided, never allowed', () => {
    const policy = identity({
      Effect: 'Allow',
      Action: 'kms:Decrypt',
      Resource: '*',
      Condition: { StringEquals: { 'kms:ViaService': 'ssm.us-east-1.amazonaws.com' } },
    });
    const d = decide(
      auth('kms:Decrypt', 'arn:aws:kms:us-east-1:123456789012:key/k'),
      [policy],
      ROLE,
      ACCOUNT,
    );
    expect(d.verdict).toBe('undecided');
    expect(d.verdict === 'undecided' && d.why).toMatch(/kms:ViaService/);
  });

  it('an undecoded resource is covered only by "*"', () => {
    const specific = identity({
      Effect: 'Allow',
      Action: 'cloudwatch:PutMetricData',
      Resource: 'arn:aws:cloudwatch:*',
    });
    const any = identity({ Effect: 'Allow', Action: 'cloudwatch:PutMetricData', Resource: '*' });
    const call = { ...auth('cloudwatch:PutMetricData', ''), resource: undefined };
    expect(decide(call, [specific], ROLE, ACCOUNT).verdict).toBe('implicitly denied');
    expect(decide(call, [any], ROLE, ACCOUNT).verdict).toBe('allowed');
  });
});
