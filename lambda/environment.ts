/**
 * The function's environment contract: the CDK stack sets exactly these variables.
 *
 *   DEQUEUE_SSM_PREFIX            SSM path of the configuration            default /dequeue
 *   DEQUEUE_SECRET_PREFIX         secrets the function may read            default dequeue/
 *   DEQUEUE_COUNTER_TABLE         DynamoDB table of the cycle counter      required
 *   DEQUEUE_MAIL_BUCKET           S3 bucket for mail pulled with ATRN      optional (no ATRN without it)
 *   DEQUEUE_MAIL_PREFIX           key prefix in that bucket                default mail/
 *   DEQUEUE_IN_VPC                "true" when the stack put it in a VPC     optional (unknown without it)
 *   DEQUEUE_FAILING_AFTER_CYCLES  failed cycles in a row: FailingTargets   default 3
 *   DEQUEUE_STALE_AFTER_HOURS     hours without success: StaleTargets      default 24
 *   DEQUEUE_SERVER_DOWN_AFTER_CYCLES  failed prechecks in a row: ServerDownTargets  default 4
 *   DEQUEUE_EGRESS_PORTS          TCP ports its security group allows      optional (any port without it)
 *   DEQUEUE_WORK_QUEUE_URL        SQS queue of the fan-out workers         optional (no fan-out without it)
 *   POWERTOOLS_SERVICE_NAME       log and metric `service`                 dequeue
 *   POWERTOOLS_METRICS_NAMESPACE  CloudWatch namespace                     Dequeue
 *
 * Read once, when the handler is first called, never at import time: tests build the handler
 * with createHandler() and never need to patch process.env.
 */
import { ConfigError } from './core/errors';
import { normalisePrefix } from './adapters/ssm-config';
import { DEFAULT_MAIL_PREFIX, DEFAULT_SECRET_PREFIX, DEFAULT_SSM_PREFIX } from './default-prefixes';

export interface LambdaEnvironment {
  readonly ssmPrefix: string;
  readonly secretPrefix: string;
  readonly counterTable: string;
  readonly mailBucket?: string;
  readonly mailPrefix: string;
  /** Whether the function runs in a VPC (outbound port 25 is blocked outside one); undefined: not said. */
  readonly inVpc?: boolean;
  /** A target that failed this many cycles in a row counts in FailingTargets. */
  readonly failingAfterCycles: number;
  /** A target not released (signalled, no-mail) for longer counts in StaleTargets. */
  readonly staleAfterHours: number;
  /** A target whose server failed this many prechecks in a row counts in ServerDownTargets. */
  readonly serverDownAfterCycles: number;
  readonly workQueueUrl?: string;
  /** In a VPC: the only TCP ports the function can connect to (lib/function-egress.ts). */
  readonly egressPorts?: readonly number[];
}

/** Set by the stack (lib/signaller-alarms.ts names them too; a test keeps the two in step). */
export const FAILING_AFTER_CYCLES_ENV = 'DEQUEUE_FAILING_AFTER_CYCLES';
export const STALE_AFTER_HOURS_ENV = 'DEQUEUE_STALE_AFTER_HOURS';
export const DEFAULT_FAILING_AFTER_CYCLES = 3;
export const DEFAULT_STALE_AFTER_HOURS = 24;
export const SERVER_DOWN_AFTER_CYCLES_ENV = 'DEQUEUE_SERVER_DOWN_AFTER_CYCLES';
/** Four cycles: an hour at the stack's default schedule (every 15 minutes). */
export const DEFAULT_SERVER_DOWN_AFTER_CYCLES = 4;

export function readEnvironment(env: NodeJS.ProcessEnv): LambdaEnvironment {
  const counterTable = env.DEQUEUE_COUNTER_TABLE;
  if (!counterTable)
    throw new ConfigError(
      'environment',
      'DEQUEUE_COUNTER_TABLE',
      'must name the DynamoDB table of the cycle counter',
    );
  return {
    ssmPrefix: normalisePrefix(env.DEQUEUE_SSM_PREFIX || DEFAULT_SSM_PREFIX),
    secretPrefix: env.DEQUEUE_SECRET_PREFIX ?? DEFAULT_SECRET_PREFIX,
    counterTable,
    mailBucket: env.DEQUEUE_MAIL_BUCKET || undefined,
    mailPrefix: env.DEQUEUE_MAIL_PREFIX ?? DEFAULT_MAIL_PREFIX,
    ...(env.DEQUEUE_IN_VPC === 'true' || env.DEQUEUE_IN_VPC === 'false'
      ? { inVpc: env.DEQUEUE_IN_VPC === 'true' }
      : {}),
    failingAfterCycles: positive(env, FAILING_AFTER_CYCLES_ENV, DEFAULT_FAILING_AFTER_CYCLES, true),
    staleAfterHours: positive(env, STALE_AFTER_HOURS_ENV, DEFAULT_STALE_AFTER_HOURS, false),
    serverDownAfterCycles: positive(
      env,
      SERVER_DOWN_AFTER_CYCLES_ENV,
      DEFAULT_SERVER_DOWN_AFTER_CYCLES,
      true,
    ),
    workQueueUrl: env.DEQUEUE_WORK_QUEUE_URL || undefined,
    ...(env.DEQUEUE_EGRESS_PORTS ? { egressPorts: ports(env.DEQUEUE_EGRESS_PORTS) } : {}),
  };
}

/** "25,79,443": whole numbers from 1 to 65535, comma-separated. */
function ports(text: string): number[] {
  const list = text.split(',').map((p) => Number(p.trim()));
  if (!list.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535)) {
    throw new ConfigError(
      'environment',
      'DEQUEUE_EGRESS_PORTS',
      `"${text}" must be TCP ports (1 to 65535), comma-separated`,
    );
  }
  return list;
}

function positive(env: NodeJS.ProcessEnv, name: string, fallback: number, whole: boolean): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!(value > 0) || !Number.isFinite(value) || (whole && !Number.isInteger(value))) {
    throw new ConfigError(
      'environment',
      name,
      `"${text}" must be a ${whole ? 'whole ' : ''}number greater than 0`,
    );
  }
  return value;
}
