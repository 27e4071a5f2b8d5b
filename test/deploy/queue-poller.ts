/**
 * What Lambda's event source mapping does with an SQS queue, for one function: receive a batch,
 * hand it to the function as an SQS event, delete the messages it did not report as failed. The
 * service does this with the function's own role, so the calls it needs are returned as well,
 * to be checked against the role like the function's own.
 * https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html
 */
import type { AwsCall } from './aws-calls';
import type { AwsClientConfig } from './moto-resources';

export interface QueueMessage {
  readonly MessageId: string;
  readonly ReceiptHandle: string;
  readonly Body: string;
  readonly MD5OfBody: string;
  readonly Attributes?: Record<string, string>;
  readonly MessageAttributes?: Record<
    string,
    { DataType: string; StringValue?: string; BinaryValue?: string }
  >;
}

/** The IAM permissions the mapping needs on its queue (Lambda Developer Guide, "Execution role permissions"). */
export function pollerCall(queueArn: string, region: string): AwsCall {
  const context = {
    'aws:securetransport': 'true',
    'aws:requestedregion': region,
    'aws:viaawsservice': 'true',
  };
  const modelled = [
    'aws:securetransport',
    'aws:requestedregion',
    'aws:viaawsservice',
    'aws:principalarn',
  ];
  return {
    operation: "Lambda event source mapping (polls with the function's role)",
    subject: queueArn,
    status: 200,
    authorizations: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'].map(
      (action) => ({ action, resource: queueArn, context, modelled }),
    ),
  };
}

async function sqs(
  aws: AwsClientConfig,
  operation: string,
  body: unknown,
): Promise<Record<string, any>> {
  const response = await fetch(aws.endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-amz-json-1.0',
      'x-amz-target': `AmazonSQS.${operation}`,
      authorization: `AWS4-HMAC-SHA256 Credential=${aws.credentials.accessKeyId}/20260101/${aws.region}/sqs/aws4_request, SignedHeaders=host, Signature=0`,
    },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  if (!response.ok)
    throw new Error(`moto ${operation} answered ${response.status}: ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : {};
}

/** What a cycle that fans out does (lambda/adapters/sqs-work-queue.ts): one message per work order. */
export async function sendMessages(
  aws: AwsClientConfig,
  queueUrl: string,
  bodies: readonly string[],
): Promise<void> {
  for (let i = 0; i < bodies.length; i += 10) {
    const entries = bodies
      .slice(i, i + 10)
      .map((MessageBody, n) => ({ Id: String(n), MessageBody }));
    const out = await sqs(aws, 'SendMessageBatch', { QueueUrl: queueUrl, Entries: entries });
    if (out.Failed?.length)
      throw new Error(`moto SendMessageBatch failed for ${JSON.stringify(out.Failed)}`);
  }
}

export async function receiveBatch(
  aws: AwsClientConfig,
  queueUrl: string,
  batchSize: number,
): Promise<QueueMessage[]> {
  const out = await sqs(aws, 'ReceiveMessage', {
    QueueUrl: queueUrl,
    MaxNumberOfMessages: Math.min(batchSize, 10),
    WaitTimeSeconds: 0,
    VisibilityTimeout: 60,
    MessageSystemAttributeNames: ['All'],
    MessageAttributeNames: ['All'],
  });
  return (out.Messages ?? []) as QueueMessage[];
}

export async function deleteMessages(
  aws: AwsClientConfig,
  queueUrl: string,
  messages: readonly QueueMessage[],
): Promise<void> {
  for (let i = 0; i < messages.length; i += 10) {
    const entries = messages
      .slice(i, i + 10)
      .map((m, n) => ({ Id: String(n), ReceiptHandle: m.ReceiptHandle }));
    const out = await sqs(aws, 'DeleteMessageBatch', { QueueUrl: queueUrl, Entries: entries });
    if (out.Failed?.length)
      throw new Error(`moto DeleteMessageBatch failed for ${JSON.stringify(out.Failed)}`);
  }
}

/** The event Lambda builds from a received batch. */
export function sqsEvent(
  messages: readonly QueueMessage[],
  queueArn: string,
  region: string,
): unknown {
  return {
    Records: messages.map((m) => ({
      messageId: m.MessageId,
      receiptHandle: m.ReceiptHandle,
      body: m.Body,
      attributes: m.Attributes ?? {},
      messageAttributes: Object.fromEntries(
        Object.entries(m.MessageAttributes ?? {}).map(([name, a]) => [
          name,
          {
            dataType: a.DataType,
            stringValue: a.StringValue,
            binaryValue: a.BinaryValue,
            stringListValues: [],
            binaryListValues: [],
          },
        ]),
      ),
      md5OfBody: m.MD5OfBody,
      eventSource: 'aws:sqs',
      eventSourceARN: queueArn,
      awsRegion: region,
    })),
  };
}
