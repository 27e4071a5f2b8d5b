/**
 * What Lambda itself does with the function's role, beside the calls of the code: the deployed
 * bundle test adds these to a run's calls, as it adds the event source mapping's polling
 * (queue-poller.ts), so that a statement only the platform needs is checked as well and counts
 * as used.
 *
 * - After every invocation Lambda writes the function's output to its log group (the function
 *   has a log group of its own: LoggingConfig), with the role: `logs:CreateLogStream` and
 *   `logs:PutLogEvents`, on the log stream.
 * - An asynchronous invocation Lambda gives up on (its cycle failed, with no retries; or it waited
 *   past MaximumEventAgeInSeconds) is sent to the on-failure destination, with the role:
 *   `sqs:SendMessage` on the destination queue.
 * https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html
 */
import type { AwsCall } from './aws-calls';

const context = (region: string) => ({
  'aws:securetransport': 'true',
  'aws:requestedregion': region,
  'aws:viaawsservice': 'true',
});
const modelled = [
  'aws:securetransport',
  'aws:requestedregion',
  'aws:viaawsservice',
  'aws:principalarn',
];

/** Lambda writing an invocation's output to the log group (ARN without the trailing `:*`). */
export function logDeliveryCall(logGroupArn: string, region: string, stream: string): AwsCall {
  const resource = `${logGroupArn.replace(/:\*$/, '')}:log-stream:${stream}`;
  return {
    operation: "Lambda writes the function's log (with its role)",
    subject: resource,
    status: 200,
    authorizations: ['logs:CreateLogStream', 'logs:PutLogEvents'].map((action) => ({
      action,
      resource,
      context: context(region),
      modelled,
    })),
  };
}

/** Lambda recording a failed asynchronous invocation in an SQS on-failure destination. */
export function failureDestinationCall(queueArn: string, region: string): AwsCall {
  return {
    operation:
      "Lambda sends the failed invocation to its on-failure destination (with the function's role)",
    subject: queueArn,
    status: 200,
    authorizations: [
      { action: 'sqs:SendMessage', resource: queueArn, context: context(region), modelled },
    ],
  };
}
