/**
 * What each recorded HTTP exchange was as an AWS API call, and what IAM authorises it as.
 *
 * - The service is the SigV4 signing name of the credential scope (`.../us-east-1/dynamodb/aws4_request`),
 *   mapped to the IAM prefix where the two differ.
 * - The operation: the `X-Amz-Target` header (JSON protocols: DynamoDB, SSM, Secrets Manager,
 *   SQS, Logs, ...), the path of Smithy RPC v2 (`/service/<S>/operation/<Op>`), `Action=` of the
 *   query protocol (SNS, STS, ...), or method, path and query for S3's REST API.
 * - The authorisations: one (action, resource, condition context) per thing IAM checks. Usually
 *   one, named like the operation; but TransactWriteItems is authorised per item as PutItem,
 *   UpdateItem, DeleteItem or ConditionCheckItem, S3's multipart calls as s3:PutObject, a
 *   HeadObject as s3:GetObject, DeleteObjects per key.
 *   https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html
 * - Condition context: the global keys every call carries and the service keys modelled below.
 *   A key that is not modelled is `unmodelled` (the checker refuses to guess it), unlike a key
 *   that is modelled and simply absent from this request.
 *
 * A call this file cannot decode is kept with `action: '<service>:?'`, so the check fails and
 * names it instead of passing it silently.
 */
import type { RecordedExchange } from './recording-proxy';

export type ContextValue = string | readonly string[];

export interface Authorization {
  /** `service:Action` as IAM spells it. */
  readonly action: string;
  /** The resource ARN IAM evaluates; undefined when not decoded (then only `"*"` covers it). */
  readonly resource?: string;
  /** Condition keys known for this request (lower-cased names). */
  readonly context: Readonly<Record<string, ContextValue>>;
  /** Key prefixes modelled for this service: a key under one of these that is absent is absent. */
  readonly modelled: readonly string[];
}

export interface AwsCall {
  /** e.g. `dynamodb TransactWriteItems`, `s3 PutObject`. */
  readonly operation: string;
  /** What it was about, for the printed list (a table, a key, a parameter name). */
  readonly subject: string;
  readonly status: number;
  readonly authorizations: readonly Authorization[];
}

export interface CallEnvironment {
  readonly partition: string;
  readonly accountId: string;
  /** The partition key attribute of a table, for dynamodb:LeadingKeys. */
  readonly hashKeyOf?: (table: string) => string | undefined;
  /**
   * The ARN of the KMS key that encrypts a bucket by default (SSE-KMS), if any: S3 then asks KMS
   * with the caller's rights, and those authorisations are added to the S3 call's.
   */
  readonly bucketKeyOf?: (bucket: string) => string | undefined;
}

/** Signing names whose IAM prefix differs. */
const IAM_PREFIX: Record<string, string> = {
  monitoring: 'cloudwatch',
  email: 'ses',
  'execute-api': 'execute-api',
};

/** Global condition keys of every request the function makes from Lambda. */
const GLOBAL_MODELLED = [
  'aws:securetransport',
  'aws:requestedregion',
  'aws:principalarn',
  'aws:principalaccount',
  'aws:principaltype',
  'aws:viaawsservice',
  'aws:calledvia',
];

function header(exchange: RecordedExchange, name: string): string | undefined {
  const v = exchange.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function credentialScope(
  exchange: RecordedExchange,
): { region: string; service: string } | undefined {
  const auth = header(exchange, 'authorization') ?? '';
  const fromHeader = /Credential=[^/]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(auth);
  const query = new URL(exchange.url, 'http://x').searchParams.get('X-Amz-Credential') ?? '';
  const fromQuery = /^[^/]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request$/.exec(query);
  const m = fromHeader ?? fromQuery;
  return m ? { region: m[1]!, service: m[2]! } : undefined;
}

const json = (body: Buffer): Record<string, any> => {
  try {
    return JSON.parse(body.toString('utf8') || '{}');
  } catch {
    return {};
  }
};

export function decodeCall(exchange: RecordedExchange, env: CallEnvironment): AwsCall {
  const scope = credentialScope(exchange);
  if (!scope) {
    return {
      operation: `unsigned ${exchange.method} ${exchange.url}`,
      subject: '',
      status: exchange.status,
      authorizations: [{ action: '?:?', context: {}, modelled: [] }],
    };
  }
  const service = IAM_PREFIX[scope.service] ?? scope.service;
  const { partition: pa, accountId: a } = env;
  const r = scope.region;
  const global: Record<string, ContextValue> = {
    'aws:securetransport': 'true', // the SDK speaks HTTPS to AWS; only this test's proxy is plain HTTP
    'aws:requestedregion': r,
    'aws:principalaccount': a,
    'aws:principaltype': 'AssumedRole',
    'aws:viaawsservice': 'false',
  };
  const auth = (
    action: string,
    resource: string | undefined,
    context: Record<string, ContextValue> = {},
    modelled: string[] = [],
  ): Authorization => ({
    action: `${service}:${action}`,
    resource,
    context: { ...global, ...context },
    modelled: [...GLOBAL_MODELLED, ...modelled],
  });

  if (service === 's3') {
    const call = decodeS3(exchange, pa, auth);
    return withBucketKey(call, env.bucketKeyOf, r, { ...global });
  }

  const target = header(exchange, 'x-amz-target');
  const rpc = /^\/service\/[^/]+\/operation\/([^/?]+)/.exec(exchange.url);
  const form = (header(exchange, 'content-type') ?? '').startsWith(
    'application/x-www-form-urlencoded',
  )
    ? new URLSearchParams(exchange.body.toString('utf8'))
    : undefined;
  const operation = target
    ? target.slice(target.lastIndexOf('.') + 1)
    : rpc
      ? rpc[1]!
      : (form?.get('Action') ?? undefined);
  if (!operation) {
    return {
      operation: `${service} ${exchange.method} ${exchange.url}`,
      subject: '',
      status: exchange.status,
      authorizations: [auth('?', undefined)],
    };
  }
  const body = target ? json(exchange.body) : {};
  const call = (subject: string, authorizations: Authorization[]): AwsCall => ({
    operation: `${service} ${operation}`,
    subject,
    status: exchange.status,
    authorizations,
  });

  switch (service) {
    case 'dynamodb': {
      const table = (name: string) => `arn:${pa}:dynamodb:${r}:${a}:table/${name}`;
      const leading = (
        name: string,
        key: Record<string, any> | undefined,
      ): Record<string, ContextValue> => {
        const hash = env.hashKeyOf?.(name);
        const value =
          hash && key?.[hash] ? Object.values(key[hash] as Record<string, unknown>)[0] : undefined;
        return value === undefined ? {} : { 'dynamodb:leadingkeys': [String(value)] };
      };
      const item = (action: string, name: string, key: Record<string, any> | undefined) =>
        auth(action, table(name), leading(name, key), ['dynamodb:leadingkeys']);
      if (operation === 'TransactWriteItems' || operation === 'TransactGetItems') {
        const items = (body.TransactItems ?? []) as Record<string, any>[];
        const auths = items.map((entry) => {
          const [kind, spec] = Object.entries(entry)[0] ?? ['?', {}];
          const action =
            {
              Put: 'PutItem',
              Update: 'UpdateItem',
              Delete: 'DeleteItem',
              ConditionCheck: 'ConditionCheckItem',
              Get: 'GetItem',
            }[kind] ?? `?${kind}`;
          return item(action, spec.TableName, spec.Item ?? spec.Key);
        });
        const subjects = items.map((entry) => {
          const [kind, spec] = Object.entries(entry)[0] ?? ['?', {}];
          return `${kind} ${spec.TableName}`;
        });
        return call(subjects.join(', '), auths);
      }
      if (operation === 'BatchWriteItem' || operation === 'BatchGetItem') {
        const names = Object.keys(body.RequestItems ?? {});
        return call(
          names.join(', '),
          names.map((n) => auth(operation, table(n))),
        );
      }
      const name = String(body.TableName ?? body.TableArn ?? '?');
      const arn = name.startsWith('arn:') ? name : table(name);
      return call(
        name,
        [item(operation, name, body.Key ?? body.Item)].map((x) => ({
          ...x,
          resource: body.IndexName ? `${arn}/index/${body.IndexName}` : arn,
        })),
      );
    }
    case 'ssm': {
      const parameter = (name: string) =>
        name.startsWith('arn:')
          ? name
          : `arn:${pa}:ssm:${r}:${a}:parameter/${name.replace(/^\//, '')}`;
      const names: string[] =
        body.Names ??
        (body.Name !== undefined ? [body.Name] : body.Path !== undefined ? [body.Path] : []);
      const context: Record<string, ContextValue> = {};
      if (operation === 'GetParametersByPath')
        context['ssm:recursive'] = String(body.Recursive === true);
      if (operation === 'PutParameter') context['ssm:overwrite'] = String(body.Overwrite === true);
      const resources = names.length ? names.map(parameter) : [undefined];
      return call(
        names.join(', '),
        resources.map((res) => auth(operation, res, context, ['ssm:recursive', 'ssm:overwrite'])),
      );
    }
    case 'secretsmanager': {
      const ids: string[] =
        body.SecretIdList ??
        (body.SecretId !== undefined
          ? [body.SecretId]
          : body.Name !== undefined
            ? [body.Name]
            : []);
      // The response names the secret's full ARN (with its random six-character suffix); a call
      // that failed has none, and IAM then evaluates the name with some suffix.
      const answered = json(exchange.responseBody);
      const arnOf = (id: string) =>
        id.startsWith('arn:')
          ? id
          : typeof answered.ARN === 'string' && (answered.Name === id || ids.length === 1)
            ? answered.ARN
            : `arn:${pa}:secretsmanager:${r}:${a}:secret:${id}-??????`;
      const context = (id: string): Record<string, ContextValue> => ({
        'secretsmanager:secretid': id,
        ...(body.VersionStage ? { 'secretsmanager:versionstage': body.VersionStage } : {}),
        ...(body.VersionId ? { 'secretsmanager:versionid': body.VersionId } : {}),
      });
      return call(
        ids.join(', '),
        (ids.length ? ids : ['?']).map((id) =>
          auth(operation, arnOf(id), context(id), [
            'secretsmanager:secretid',
            'secretsmanager:versionstage',
            'secretsmanager:versionid',
          ]),
        ),
      );
    }
    case 'sqs': {
      const url: string | undefined = body.QueueUrl ?? (form?.get('QueueUrl') || undefined);
      const path = url ? new URL(url).pathname.split('/').filter(Boolean) : [];
      const queue =
        path.length >= 2
          ? `arn:${pa}:sqs:${r}:${path[0]}:${path[1]}`
          : body.QueueName
            ? `arn:${pa}:sqs:${r}:${body.QueueOwnerAWSAccountId ?? a}:${body.QueueName}`
            : undefined;
      // The batch operations are authorised as their single-message actions.
      const action = operation.replace(/Batch$/, '');
      return call(path[1] ?? body.QueueName ?? '', [auth(action, queue)]);
    }
    case 'sns': {
      const topic = form?.get('TopicArn') ?? form?.get('TargetArn') ?? undefined;
      return call(topic ?? '', [auth(operation === 'PublishBatch' ? 'Publish' : operation, topic)]);
    }
    case 'events': {
      const buses = new Set<string>(
        ((body.Entries ?? []) as { EventBusName?: string }[]).map(
          (e) => e.EventBusName ?? 'default',
        ),
      );
      const arn = (bus: string) =>
        bus.startsWith('arn:') ? bus : `arn:${pa}:events:${r}:${a}:event-bus/${bus}`;
      return call(
        [...buses].join(', '),
        (buses.size ? [...buses] : ['default']).map((b) => auth(operation, arn(b))),
      );
    }
    default:
      return call('', [auth(operation, undefined)]);
  }
}

type AuthFactory = (
  action: string,
  resource: string | undefined,
  context?: Record<string, ContextValue>,
  modelled?: string[],
) => Authorization;

/**
 * What S3 asks KMS for, with the caller's rights, when the bucket is encrypted with a KMS key by
 * default: a data key for an object written (PutObject, CopyObject's destination, the start of a
 * multipart upload), the data key decrypted again for each part and the completion of a
 * multipart upload, and for an object read. Only through S3 (`kms:ViaService`).
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html
 */
function withBucketKey(
  call: AwsCall,
  bucketKeyOf: CallEnvironment['bucketKeyOf'],
  region: string,
  global: Record<string, ContextValue>,
): AwsCall {
  if (!bucketKeyOf) return call;
  const kms: Authorization[] = [];
  const add = (action: string, objectArn: string | undefined) => {
    const bucket = /^arn:[^:]+:s3:::([^/]+)\//.exec(objectArn ?? '')?.[1];
    const key = bucket === undefined ? undefined : bucketKeyOf(bucket);
    if (key === undefined) return;
    kms.push({
      action,
      resource: key,
      context: { ...global, 'kms:viaservice': `s3.${region}.amazonaws.com` },
      modelled: [...GLOBAL_MODELLED, 'kms:viaservice'],
    });
  };
  const op = call.operation.replace(/^s3 /, '');
  for (const a of call.authorizations) {
    if (a.action === 's3:GetObject' && op !== 'HeadObject') add('kms:Decrypt', a.resource);
    if (a.action !== 's3:PutObject') continue;
    if (['PutObject', 'CopyObject', 'CreateMultipartUpload'].includes(op))
      add('kms:GenerateDataKey', a.resource);
    if (['UploadPart', 'UploadPartCopy', 'CompleteMultipartUpload'].includes(op))
      add('kms:Decrypt', a.resource);
  }
  return kms.length ? { ...call, authorizations: [...call.authorizations, ...kms] } : call;
}

/** S3's REST API: the operation from method, path and sub-resource; object ARNs without the key's URL encoding. */
function decodeS3(exchange: RecordedExchange, pa: string, auth: AuthFactory): AwsCall {
  const url = new URL(exchange.url, 'http://x');
  const host = (header(exchange, 'host') ?? '').replace(/:\d+$/, '');
  const pathStyle =
    /^[\d.]+$/.test(host) ||
    host === 'localhost' ||
    host.startsWith('s3.') ||
    host.startsWith('s3-');
  const parts = url.pathname.split('/').slice(1);
  const bucket = pathStyle ? decodeURIComponent(parts.shift() ?? '') : host.split('.')[0]!;
  // `/bucket/` (the SDK's path style for bucket operations such as ListObjectsV2) is the bucket:
  // an object key is never empty.
  const key =
    parts.length && parts.join('') !== '' ? parts.map(decodeURIComponent).join('/') : undefined;
  const q = url.searchParams;
  // The SDK adds `x-id=<Operation>` to some requests: a hint, not a sub-resource.
  const keys = [...q.keys()].filter((k) => k !== 'x-id');
  const has = (name: string) => q.has(name);
  const m = exchange.method;
  const bucketArn = `arn:${pa}:s3:::${bucket}`;
  const objectArn = key === undefined ? undefined : `${bucketArn}/${key}`;
  const s3Modelled = [
    's3:tlsversion',
    's3:signatureversion',
    's3:authtype',
    's3:x-amz-server-side-encryption',
    's3:x-amz-acl',
    's3:x-amz-storage-class',
    's3:versionid',
    's3:prefix',
    's3:delimiter',
    's3:max-keys',
    's3:x-amz-content-sha256',
    's3:requestobjecttagkeys',
    's3:requestobjecttag',
  ];
  const context: Record<string, ContextValue> = {
    // The SDK on Node 24 negotiates TLS 1.2 at least (Node's default minimum).
    's3:tlsversion': '1.2',
    's3:signatureversion': 'AWS4-HMAC-SHA256',
    's3:authtype': header(exchange, 'authorization') ? 'REST-HEADER' : 'REST-QUERY-STRING',
  };
  for (const h of [
    'x-amz-server-side-encryption',
    'x-amz-acl',
    'x-amz-storage-class',
    'x-amz-content-sha256',
  ]) {
    const v = header(exchange, h);
    if (v !== undefined) context[`s3:${h}`] = v;
  }
  if (q.has('versionId')) context['s3:versionid'] = q.get('versionId')!;
  // The tags a request sets: PutObjectTagging's TagSet, or PutObject's x-amz-tagging header.
  const tags: [string, string][] =
    m === 'PUT' && q.has('tagging')
      ? [
          ...exchange.body
            .toString('utf8')
            .matchAll(/<Tag>\s*<Key>([^<]*)<\/Key>\s*<Value>([^<]*)<\/Value>\s*<\/Tag>/g),
        ].map((t) => [t[1]!, t[2]!])
      : [...new URLSearchParams(header(exchange, 'x-amz-tagging') ?? '')];
  if (tags.length) {
    context['s3:requestobjecttagkeys'] = tags.map(([k]) => k);
    for (const [k, v] of tags) context[`s3:requestobjecttag/${k.toLowerCase()}`] = v;
  }
  for (const k of ['prefix', 'delimiter', 'max-keys']) if (q.has(k)) context[`s3:${k}`] = q.get(k)!;
  const a = (action: string, resource = objectArn) => auth(action, resource, context, s3Modelled);
  const hint = q.get('x-id');
  const call = (
    operation: string,
    authorizations: Authorization[],
    subject = key === undefined ? bucket : `${bucket}/${key}`,
  ): AwsCall => ({
    // An operation decoded otherwise than the SDK's own hint says would be authorised wrongly.
    operation:
      hint && hint !== operation
        ? `s3 ${operation} (x-id says ${hint}: decode it in test/deploy/aws-calls.ts)`
        : `s3 ${operation}`,
    subject,
    status: exchange.status,
    authorizations:
      hint && hint !== operation
        ? [auth('?', objectArn ?? bucketArn, context, s3Modelled)]
        : authorizations,
  });

  if (!bucket) return call('ListBuckets', [a('ListAllMyBuckets', '*')], '');
  if (key === undefined) {
    if (m === 'GET' && q.get('list-type') === '2')
      return call('ListObjectsV2', [a('ListBucket', bucketArn)]);
    if (m === 'GET' && has('uploads'))
      return call('ListMultipartUploads', [a('ListBucketMultipartUploads', bucketArn)]);
    if (m === 'GET' && has('versions'))
      return call('ListObjectVersions', [a('ListBucketVersions', bucketArn)]);
    if (m === 'GET' && has('location'))
      return call('GetBucketLocation', [a('GetBucketLocation', bucketArn)]);
    if (
      m === 'GET' &&
      keys.every((k) => ['prefix', 'delimiter', 'marker', 'max-keys', 'encoding-type'].includes(k))
    )
      return call('ListObjects', [a('ListBucket', bucketArn)]);
    if (m === 'HEAD') return call('HeadBucket', [a('ListBucket', bucketArn)]);
    if (m === 'POST' && has('delete')) {
      const body = exchange.body.toString('utf8');
      const objects = [...body.matchAll(/<Object>([\s\S]*?)<\/Object>/g)].map((o) => ({
        key: /<Key>([\s\S]*?)<\/Key>/.exec(o[1]!)?.[1] ?? '',
        version: /<VersionId>/.test(o[1]!),
      }));
      const xmlUnescape = (s: string) =>
        s
          .replace(/&lt;/g, '<')
          .replace(/&gt;/g, '>')
          .replace(/&quot;/g, '"')
          .replace(/&apos;/g, "'")
          .replace(/&amp;/g, '&');
      return call(
        'DeleteObjects',
        objects.map((o) =>
          a(
            o.version ? 'DeleteObjectVersion' : 'DeleteObject',
            `${bucketArn}/${xmlUnescape(o.key)}`,
          ),
        ),
      );
    }
    if (m === 'PUT' && keys.length === 0)
      return call('CreateBucket', [a('CreateBucket', bucketArn)]);
    return call(`${m} bucket ?${keys.join('&')}`, [a('?', bucketArn)]);
  }
  const copySource = header(exchange, 'x-amz-copy-source');
  const sourceArn = copySource
    ? `arn:${pa}:s3:::${decodeURIComponent(copySource.replace(/^\//, '').replace(/\?versionId=.*$/, ''))}`
    : undefined;
  switch (m) {
    case 'PUT':
      if (has('uploadId') && has('partNumber'))
        return call(copySource ? 'UploadPartCopy' : 'UploadPart', [
          a('PutObject'),
          ...(sourceArn ? [a('GetObject', sourceArn)] : []),
        ]);
      if (has('tagging')) return call('PutObjectTagging', [a('PutObjectTagging')]);
      if (has('acl')) return call('PutObjectAcl', [a('PutObjectAcl')]);
      if (has('retention')) return call('PutObjectRetention', [a('PutObjectRetention')]);
      if (has('legal-hold')) return call('PutObjectLegalHold', [a('PutObjectLegalHold')]);
      if (keys.length === 0) {
        return call(copySource ? 'CopyObject' : 'PutObject', [
          a('PutObject'),
          ...(sourceArn ? [a('GetObject', sourceArn)] : []),
          ...(header(exchange, 'x-amz-tagging') ? [a('PutObjectTagging')] : []),
          ...(header(exchange, 'x-amz-acl') ? [a('PutObjectAcl')] : []),
        ]);
      }
      break;
    case 'POST':
      if (has('uploads')) return call('CreateMultipartUpload', [a('PutObject')]);
      if (has('uploadId')) return call('CompleteMultipartUpload', [a('PutObject')]);
      if (has('restore')) return call('RestoreObject', [a('RestoreObject')]);
      break;
    case 'GET':
      if (has('uploadId')) return call('ListParts', [a('ListMultipartUploadParts')]);
      if (has('tagging'))
        return call('GetObjectTagging', [
          a(has('versionId') ? 'GetObjectVersionTagging' : 'GetObjectTagging'),
        ]);
      if (has('acl')) return call('GetObjectAcl', [a('GetObjectAcl')]);
      if (has('attributes')) return call('GetObjectAttributes', [a('GetObjectAttributes')]);
      return call('GetObject', [a(has('versionId') ? 'GetObjectVersion' : 'GetObject')]);
    case 'HEAD':
      return call('HeadObject', [a(has('versionId') ? 'GetObjectVersion' : 'GetObject')]);
    case 'DELETE':
      if (has('uploadId')) return call('AbortMultipartUpload', [a('AbortMultipartUpload')]);
      if (has('tagging')) return call('DeleteObjectTagging', [a('DeleteObjectTagging')]);
      return call('DeleteObject', [a(has('versionId') ? 'DeleteObjectVersion' : 'DeleteObject')]);
  }
  return call(`${m} object ?${keys.join('&')}`, [a('?')]);
}
