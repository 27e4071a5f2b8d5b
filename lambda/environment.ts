/**
 * The function's environment contract: the CDK stack sets exactly these variables.
 *
 *   DEQUEUE_SSM_PREFIX            SSM path of the configuration            default /dequeue
 *   DEQUEUE_SECRET_PREFIX         secrets the function may read            default dequeue/
 *   DEQUEUE_COUNTER_TABLE         DynamoDB table of the cycle counter      required
 *   DEQUEUE_MAIL_BUCKET           S3 bucket for mail pulled with ATRN      optional (no ATRN without it)
 *   DEQUEUE_MAIL_PREFIX           key prefix in that bucket                default mail/
 *   POWERTOOLS_SERVICE_NAME       log and metric `service`                 dequeue
 *   POWERTOOLS_METRICS_NAMESPACE  CloudWatch namespace                     Dequeue
 *
 * Read once, when the handler is first called, never at import time: tests build the handler
 * with createHandler() and never need to patch process.env.
 */
import { ConfigError } from './core/errors';
import { normalisePrefix } from './adapters/ssm-config';
import { DEFAULT_MAIL_PREFIX, DEFAULT_SECRET_PREFIX, DEFAULT_SSM_PREFIX } from './resource-prefixes';

export interface LambdaEnvironment {
  readonly ssmPrefix: string;
  readonly secretPrefix: string;
  readonly counterTable: string;
  readonly mailBucket?: string;
  readonly mailPrefix: string;
}


export function readEnvironment(env: NodeJS.ProcessEnv): LambdaEnvironment {
  const counterTable = env.DEQUEUE_COUNTER_TABLE;
  if (!counterTable) throw new ConfigError('environment', 'DEQUEUE_COUNTER_TABLE', 'must name the DynamoDB table of the cycle counter');
  return {
    ssmPrefix: normalisePrefix(env.DEQUEUE_SSM_PREFIX || DEFAULT_SSM_PREFIX),
    secretPrefix: env.DEQUEUE_SECRET_PREFIX ?? DEFAULT_SECRET_PREFIX,
    counterTable,
    mailBucket: env.DEQUEUE_MAIL_BUCKET || undefined,
    mailPrefix: env.DEQUEUE_MAIL_PREFIX ?? DEFAULT_MAIL_PREFIX,
  };
}
