/**
 * The batch that decides a worker's memory: ten ATRN targets (the default `settings.concurrency`:
 * all of them at once), each provider holding one 30 MB message, queued as a cycle that fans out
 * queues them (one work order per message). Each message is a multipart upload of six 5 MiB parts,
 * so every session wants its upload buffers at the same time: the run's memory budget is spent
 * and the rest wait, which is where the function's peak comes from.
 */
import { randomBytes } from 'node:crypto';
import { parseSettings } from '../../lambda/core/config';
import { encodeWorkOrder, workOrderFor } from '../../lambda/core/fan-out';
import { AtrnProvider, stuff } from '../../peers/atrn-provider';
import type { QueueEventSource } from './cloud-assembly';
import type { Deployment } from './deployment';
import { sendMessages } from './queue-poller';

export const LARGE_BATCH_TARGETS = 10;
export const LARGE_MESSAGE_BYTES = 30 * 1000 * 1000;

export interface LargeBatch {
  /** The targets' names (`large-0` ...): their mail is under `<prefix><name>/`. */
  readonly names: readonly string[];
  /** The providers: each has delivered its message once `idle()` resolves. */
  readonly providers: readonly AtrnProvider[];
  stop(): Promise<void>;
}

/** A text of `bytes` bytes as mail carries a large attachment: 76-column base64 lines. */
function largeText(bytes: number): Buffer {
  const head = 'Message-ID: <large@provider.test>\r\nSubject: a large attachment\r\n\r\n';
  const body = randomBytes(Math.ceil((bytes - head.length) / 78) * 57);
  const lines: Buffer[] = [Buffer.from(head, 'latin1')];
  for (let i = 0; i < body.length; i += 57)
    lines.push(Buffer.from(`${body.subarray(i, i + 57).toString('base64')}\r\n`, 'latin1'));
  return Buffer.concat(lines);
}

/**
 * Start the providers, configure their targets and queue one work order per target in `source`'s
 * queue, for `cycle` (one the counter has reached: a worker refuses an order for a later one).
 */
export async function queueLargeBatch(
  deployment: Deployment,
  source: QueueEventSource,
  secretId: string,
  cycle: number,
): Promise<LargeBatch> {
  const text = largeText(LARGE_MESSAGE_BYTES);
  const wire = stuff(text);
  const providers: AtrnProvider[] = [];
  const stop = async () => {
    await Promise.all(providers.map((p) => p.stop()));
  };
  try {
    for (let i = 0; i < LARGE_BATCH_TARGETS; i++) {
      providers.push(
        await new AtrnProvider({
          queue: [{ from: `large${i}@origin.test`, to: [`user${i}@customer.test`], text, wire }],
        }).start(),
      );
    }
    // The targets are configuration (a worker reads what its orders name from SSM, never from
    // the order): one parameter each, then one order per target, as a cycle that fans out sends.
    const settings = parseSettings({ helloName: 'mx.customer.test' }, 'large batch');
    const names = providers.map((_, i) => `large-${i}`);
    for (const [i, p] of providers.entries()) {
      await deployment.putTarget({
        name: names[i]!,
        host: '127.0.0.1',
        port: p.port,
        tls: 'none',
        auth: { secretId },
        command: 'ATRN',
        mail: { domains: ['customer.test'] },
      });
    }
    const prefix = deployment.environment.DEQUEUE_SSM_PREFIX!;
    const orders = names.map((name) =>
      encodeWorkOrder(
        workOrderFor(
          { name },
          { cycle, claim: true, settings, now: Date.now(), parameter: `${prefix}/targets/${name}` },
        ),
      ),
    );
    await sendMessages(
      deployment.moto.clientConfig,
      deployment.resolver.physicalOf(source.queueId).ref,
      orders,
    );
    return { names, providers, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
