/**
 * The resources a function's environment names, created in moto_server from their template
 * properties (the key schema and TTL of a table, a bucket's versioning, a queue's FIFO flag), so
 * that the bundle meets what CloudFormation would have created. Only what the environment refers
 * to is created; a type not handled here fails with its name, so that a new kind of resource in
 * the function's environment is added here rather than silently missing.
 */
import {
  CreateTableCommand,
  DynamoDBClient,
  UpdateTimeToLiveCommand,
  type CreateTableCommandInput,
} from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, PutBucketVersioningCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import type { CfnTemplate, CfnValue } from './cloud-assembly';
import type { CfnResolver } from './cfn-resolve';

export interface AwsClientConfig {
  readonly endpoint: string;
  readonly region: string;
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
}

/** Logical ids a value refers to with Ref, Fn::GetAtt or Fn::Sub (pseudo parameters left out). */
export function referencedResources(value: CfnValue, template: CfnTemplate): string[] {
  const found = new Set<string>();
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (!v || typeof v !== 'object') return;
    for (const [k, inner] of Object.entries(v)) {
      if (k === 'Ref' && typeof inner === 'string') found.add(inner);
      else if (k === 'Fn::GetAtt')
        found.add(String(Array.isArray(inner) ? inner[0] : String(inner).split('.')[0]));
      else if (k === 'Fn::Sub') {
        const text = Array.isArray(inner) ? inner[0] : inner;
        for (const m of String(text).matchAll(/\$\{([^}!.]+)[^}]*\}/g)) found.add(m[1]!);
        if (Array.isArray(inner)) walk(inner[1]);
      } else walk(inner);
    }
  };
  walk(value);
  return [...found].filter((id) => id in template.Resources);
}

/** Creates each referenced resource in moto and records its physical identity in the resolver. */
export async function createReferencedResources(
  template: CfnTemplate,
  ids: readonly string[],
  resolver: CfnResolver,
  aws: AwsClientConfig,
): Promise<string[]> {
  const created: string[] = [];
  for (const id of ids) {
    const resource = template.Resources[id]!;
    // Only the properties used below are resolved: the others may hold intrinsics of no interest here.
    const raw = resource.Properties ?? {};
    const p = new Proxy({} as Record<string, any>, {
      get: (_, name: string) => (raw[name] === undefined ? undefined : resolver.resolve(raw[name])),
    });
    const physical = resolver.physicalOf(id);
    switch (resource.Type) {
      case 'AWS::DynamoDB::Table': {
        const client = new DynamoDBClient(aws);
        try {
          const input: CreateTableCommandInput = {
            TableName: physical.ref,
            AttributeDefinitions: p.AttributeDefinitions,
            KeySchema: p.KeySchema,
            BillingMode: p.BillingMode ?? 'PROVISIONED',
            ProvisionedThroughput: p.ProvisionedThroughput,
            GlobalSecondaryIndexes: p.GlobalSecondaryIndexes,
            LocalSecondaryIndexes: p.LocalSecondaryIndexes,
            StreamSpecification: p.StreamSpecification
              ? { StreamEnabled: true, ...p.StreamSpecification }
              : undefined,
          };
          await client.send(new CreateTableCommand(input));
          if (p.TimeToLiveSpecification)
            await client.send(
              new UpdateTimeToLiveCommand({
                TableName: physical.ref,
                TimeToLiveSpecification: p.TimeToLiveSpecification,
              }),
            );
        } finally {
          client.destroy();
        }
        break;
      }
      case 'AWS::S3::Bucket': {
        const client = new S3Client({ ...aws, forcePathStyle: true });
        try {
          await client.send(new CreateBucketCommand({ Bucket: physical.ref }));
          if (p.VersioningConfiguration?.Status) {
            await client.send(
              new PutBucketVersioningCommand({
                Bucket: physical.ref,
                VersioningConfiguration: { Status: p.VersioningConfiguration.Status },
              }),
            );
          }
        } finally {
          client.destroy();
        }
        break;
      }
      case 'AWS::SQS::Queue': {
        // No SQS client among the dependencies: the JSON protocol by hand (moto reads the target).
        const attributes: Record<string, string> = {};
        if (physical.attributes.QueueName!.endsWith('.fifo')) attributes.FifoQueue = 'true';
        if (p.ContentBasedDeduplication !== undefined)
          attributes.ContentBasedDeduplication = String(p.ContentBasedDeduplication);
        if (p.VisibilityTimeout !== undefined)
          attributes.VisibilityTimeout = String(p.VisibilityTimeout);
        const answer = await jsonCall(aws, 'sqs', 'AmazonSQS.CreateQueue', {
          QueueName: physical.attributes.QueueName,
          Attributes: attributes,
        });
        resolver.setPhysical(id, {
          ref: answer.QueueUrl,
          attributes: { ...physical.attributes, QueueUrl: answer.QueueUrl },
        });
        break;
      }
      case 'AWS::SNS::Topic': {
        const body = new URLSearchParams({
          Action: 'CreateTopic',
          Version: '2010-03-31',
          Name: physical.attributes.TopicName!,
        });
        const response = await fetch(aws.endpoint, {
          method: 'POST',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            authorization: signature(aws, 'sns'),
          },
          body,
        });
        if (!response.ok)
          throw new Error(
            `moto CreateTopic answered ${response.status}: ${(await response.text()).slice(0, 300)}`,
          );
        await response.arrayBuffer();
        break;
      }
      case 'AWS::SSM::Parameter': {
        const client = new SSMClient(aws);
        try {
          await client.send(
            new PutParameterCommand({
              Name: physical.ref,
              Value: String(p.Value),
              Type: p.Type ?? 'String',
              Overwrite: true,
            }),
          );
        } finally {
          client.destroy();
        }
        break;
      }
      case 'AWS::SecretsManager::Secret': {
        const client = new SecretsManagerClient(aws);
        try {
          const out = await client.send(
            new CreateSecretCommand({
              Name: physical.attributes.Id!.replace(/^.*:secret:/, '').replace(/-.{6}$/, ''),
              SecretString: p.SecretString ?? '{}',
            }),
          );
          resolver.setPhysical(id, { ref: out.ARN!, attributes: { Id: out.ARN! } });
        } finally {
          client.destroy();
        }
        break;
      }
      case 'AWS::Logs::LogGroup':
      case 'AWS::IAM::Role':
      case 'AWS::KMS::Key':
        // Named, not called by the function's code: nothing to create.
        break;
      default:
        throw new Error(
          `the function's environment refers to ${id} (${resource.Type}), which test/deploy/moto-resources.ts does not create in moto: add it there`,
        );
    }
    created.push(`${resource.Type} ${resolver.physicalOf(id).ref}`);
  }
  return created;
}

/** A SigV4-looking Authorization header: moto routes by its credential scope and checks no signature. */
function signature(aws: AwsClientConfig, service: string): string {
  return `AWS4-HMAC-SHA256 Credential=${aws.credentials.accessKeyId}/20260101/${aws.region}/${service}/aws4_request, SignedHeaders=host, Signature=0`;
}

async function jsonCall(
  aws: AwsClientConfig,
  service: string,
  target: string,
  body: unknown,
): Promise<Record<string, any>> {
  const response = await fetch(aws.endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-amz-json-1.0',
      'x-amz-target': target,
      authorization: signature(aws, service),
    },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok)
    throw new Error(`moto ${target} answered ${response.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}
