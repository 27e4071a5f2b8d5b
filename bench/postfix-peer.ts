/**
 * A private Postfix (peers/servers/postfix.ts) as the benchmarks' anchor: the server people would
 * run instead. bench/odmr-receive.ts has its smtpd take the same sessions as the mail directory;
 * bench/deliver.ts has it flush the same loads from its own queue to the same sink.
 *
 * The instance is the tests' recipe (mail for customer.test held by `defer_transports` until a
 * flush, then relayed to 127.0.0.1:<customerMxPort>) with Postfix's defaults otherwise, but for
 * the message size limit (50 MB messages; the default is 10 MB). Its CPU time is summed over all
 * of its processes (smtpd, cleanup, qmgr, smtp, ...), found by the MAIL_CONFIG they carry. Its
 * memory is not shown: some twenty processes share their libraries, and a sum of their peaks
 * would count those many times over.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { type PostfixInstance, postfixMissing, startPostfix } from '../peers/servers/postfix';

const run = promisify(execFile);
const TICKS_PER_SECOND = 100;

export { postfixMissing };

/** A Postfix holding mail for customer.test, released to `customerMxPort` by a flush. */
export function startBenchPostfix(
  customerMxPort: number,
  mainCf: Readonly<Record<string, string>> = {},
): Promise<PostfixInstance> {
  return startPostfix({
    customerMxPort,
    mainCf: { message_size_limit: String(100 * 1024 * 1024), mailbox_size_limit: '0', ...mainCf },
  });
}

/** The pids of every process of the instance (Postfix exports MAIL_CONFIG to all of them). */
function instancePids(postfix: PostfixInstance): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = readFileSync(`/proc/${entry}/environ`, 'latin1');
      if (environ.split('\0').includes(`MAIL_CONFIG=${postfix.configDir}`))
        pids.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

/**
 * CPU time (user + system, ms) of the instance's processes, each counted from `since` (pid ->
 * ms at the last sample; a process started since counts from 0). Returns the total and the new
 * sample. A process that ended between two samples is missed: Postfix's daemons live for
 * `max_idle` (100 s) after their last job, longer than a run.
 */
export function instanceCpu(
  postfix: PostfixInstance,
  since: ReadonlyMap<number, number> = new Map(),
): { ms: number; sample: Map<number, number> } {
  const sample = new Map<number, number>();
  let ms = 0;
  for (const pid of instancePids(postfix)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const used = ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
      sample.set(pid, used);
      ms += used - (since.get(pid) ?? 0);
    } catch {
      // gone
    }
  }
  return { ms, sample };
}

/** Messages in the queue, in any of its queues (`postqueue -j`). */
export async function queued(postfix: PostfixInstance): Promise<number> {
  return (await postfix.queue()).length;
}

/** Empty the queue: `postsuper -d ALL`. */
export async function purge(postfix: PostfixInstance): Promise<void> {
  await run('/usr/sbin/postsuper', ['-c', postfix.configDir, '-d', 'ALL'], { timeout: 60_000 });
}

/** `postqueue -f`: deliver everything queued now (defer_transports included). */
export async function flush(postfix: PostfixInstance): Promise<void> {
  await run('/usr/sbin/postqueue', ['-c', postfix.configDir, '-f'], { timeout: 60_000 });
}
