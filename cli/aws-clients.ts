/**
 * AWS clients of the operating commands (`config`, `status`): the SDK's usual chain for
 * credentials, region and endpoint, with every wait bounded. SSM allows few PutParameter calls
 * per second (its default throughput), so throttling is expected when thousands of targets are
 * pushed: the adaptive retry mode slows the client down to what the service accepts, within a
 * bounded number of attempts per call.
 */
import type { CliIo } from './io';
import { awsClientComing } from './version';

export const MAX_ATTEMPTS = 8;

export function awsClientOptions(io: CliIo) {
  awsClientComing();
  return {
    maxAttempts: MAX_ATTEMPTS,
    retryMode: 'adaptive',
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 20_000 },
    ...io.aws,
  } as const;
}
