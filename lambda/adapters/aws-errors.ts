/**
 * How an AWS SDK v3 error becomes an error kind, in one place for every adapter.
 *
 * - temporary: throttling, the service's own faults (5xx) and the network: the next cycle (or the
 *   SDK's own retries) may succeed.
 * - config: every other client fault (access denied, a missing resource, a KMS key the function
 *   may not use): the deployment is wrong and retrying will not help until someone fixes it.
 *
 * SDK v3 errors carry `name`, `$fault` ('client' | 'server') and `$metadata.httpStatusCode`:
 * https://docs.aws.amazon.com/sdk-for-javascript/v3/developer-guide/handling-exceptions.html
 */
import type { ErrorKind } from '../core/errors';

interface AwsErrorShape {
  readonly name?: string;
  readonly message?: string;
  readonly $fault?: 'client' | 'server';
  readonly $metadata?: { readonly httpStatusCode?: number };
}

/** Throttling error names across the services used here (and the SDK's own retry table). */
const THROTTLING = new Set([
  'ThrottlingException',
  'Throttling',
  'TooManyRequestsException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'ThrottledException',
  'LimitExceededException',
  'RequestThrottledException',
  'SlowDown',
]);

export function awsErrorKind(e: unknown): ErrorKind {
  const error = (e ?? {}) as AwsErrorShape;
  const status = error.$metadata?.httpStatusCode;
  if (THROTTLING.has(error.name ?? '') || status === 429) return 'temporary';
  if (error.$fault === 'client' || (status !== undefined && status >= 400 && status < 500))
    return 'config';
  return 'temporary';
}

/** `Name: message` of an AWS error; these carry ARNs and reasons, never a secret value. */
export function describeAwsError(e: unknown): string {
  const error = (e ?? {}) as AwsErrorShape;
  // The run's abort signal (lambda/handler.ts) fired: say so rather than the SDK's "Request aborted".
  if (error.name === 'AbortError')
    return "abandoned at the run's deadline (the request and its retries were stopped so that the results are reported in time)";
  // The SDK's usual chain found nothing: say where it looks (a person at a terminal, mostly).
  if (error.message === 'Region is missing')
    return 'no AWS region: set AWS_REGION, or AWS_PROFILE naming a profile with a region';
  if (error.name === 'CredentialsProviderError')
    return "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (the SDK's usual chain)";
  const name = error.name && error.name !== 'Error' ? `${error.name}: ` : '';
  return `${name}${error.message ?? String(e)}`;
}
