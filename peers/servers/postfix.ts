/**
 * A private Postfix instance on loopback, as a real ETRN server for tests and benchmarks.
 *
 * Each startPostfix() builds its own instance in a fresh directory under `<tmpdir>/dequeue-postfix/`:
 *
 *   <dir>/owner        which process started it (pid and start time), for the stale sweep
 *   <dir>/etc/         main.cf, master.cf, transport (+ .db): `postfix -c <dir>/etc`
 *   <dir>/queue/       queue_directory (subdirectories made by `post-install create-missing`)
 *   <dir>/data/        data_directory (made by the same, owned by the postfix user)
 *   <dir>/postfix.log  maillog_file, written by postlogd
 *
 * The configuration (postfix-config.ts) is the verified recipe of docs/real-servers.md: mail for
 * the relay domains is routed to the `etrn-only` transport, which `defer_transports` holds until
 * someone asks with ETRN (or `postqueue -s`); the domains are `fast_flush_domains`, so ETRN for
 * them answers 250 and flushes, while ETRN for any other domain answers 459. Released mail goes to
 * 127.0.0.1:<customerMxPort>, where the test runs its own SMTP sink as the customer's MX. Postfix's
 * commands are found and run by postfix-tools.ts, its processes found and killed by
 * postfix-processes.ts; what an instance offers is in postfix-types.ts.
 *
 * Only the superuser can start Postfix (its master binds sockets and drops to the `postfix` user),
 * so a missing installation or a non-root user is reported the same way: in CI (`CI` set) the
 * suite FAILS with a plain message; elsewhere it is skipped and stderr says why.
 *
 * Robustness, because a crashed test run must not poison the next one:
 * - ports are picked free and a start that loses the race for its port is retried on another;
 * - every instance has its own queue, data and pid files, so there is no stale pid or lock file
 *   to trip over (Postfix's master.lock is an flock on an open file: it dies with its process);
 * - before starting, instances whose owning process is gone are swept: their master (found by
 *   its pid file and, independently, by `MAIL_CONFIG` in /proc/<pid>/environ) is killed with its
 *   whole process group and the directory removed;
 * - stop() runs `postfix stop`, then kills whatever of the instance is still alive, then removes
 *   the directory (set DEQUEUE_KEEP_POSTFIX=1 to keep it for a post-mortem);
 * - a process `exit` hook SIGKILLs the master group if the test never got to call stop().
 *
 * Nothing here blocks the event loop: the test's own SMTP sink runs in the same process, and
 * Postfix must be able to deliver to it while we wait.
 */ import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, sleep } from './harness';
import { mainCf, masterCf } from './postfix-config';
import {
  firstLine,
  killInstance,
  POSTFIX_BASE_DIR,
  readPid,
  sweepStalePostfix,
  waitGone,
} from './postfix-processes';
import { mustRun, postfixMissing, run } from './postfix-tools';
import type { PostfixInstance, PostfixOptions, QueueEntry } from './postfix-types';
import { forgetAtExit, killAtExit, signal, writeOwner } from './private-instances';

export { POSTFIX_BASE_DIR } from './postfix-processes';
export { postfixMissing } from './postfix-tools';
export type { HeldMessage, PostfixInstance, PostfixOptions, QueueEntry } from './postfix-types';
export { alive } from './private-instances';

/** Bounds: a slow CI machine gets far more than the fraction of a second these take here. */
const START_ATTEMPTS = 3;
const GREETING_TIMEOUT_MS = 15_000;
const DEFERRED_TIMEOUT_MS = 20_000;
const LOG_TIMEOUT_MS = 20_000;
const MASTER_EXIT_TIMEOUT_MS = 8_000;

// --- the instance ----------------------------------------------------------------------------------

/** Start a private Postfix instance and wait until its SMTP port greets. */
export async function startPostfix(options: PostfixOptions): Promise<PostfixInstance> {
  if (postfixMissing) throw new Error(postfixMissing);
  const domains = options.relayDomains ?? ['customer.test'];
  await sweepStalePostfix();
  await mkdir(POSTFIX_BASE_DIR, { recursive: true });
  // The postfix user must be able to walk down to its queue.
  await chmod(POSTFIX_BASE_DIR, 0o755);

  let lastError: Error | undefined;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    const dir = await mkdtemp(join(POSTFIX_BASE_DIR, 'i-'));
    try {
      return await startIn(dir, domains, options);
    } catch (e) {
      lastError = e as Error;
      const masterPid = readPid(join(dir, 'queue', 'pid', 'master.pid'));
      if (masterPid) forgetAtExit(masterPid);
      await killInstance(join(dir, 'etc'), masterPid);
      if (!process.env.DEQUEUE_KEEP_POSTFIX) await rm(dir, { recursive: true, force: true });
      // Only a lost race for the port is worth another try.
      if (!/address already in use/i.test(lastError.message)) break;
    }
  }
  throw lastError ?? new Error('Postfix did not start');
}

async function startIn(
  dir: string,
  domains: readonly string[],
  options: PostfixOptions,
): Promise<PostfixInstance> {
  await writeOwner(dir);
  await chmod(dir, 0o755);
  const configDir = join(dir, 'etc');
  const logFile = join(dir, 'postfix.log');
  await mkdir(configDir, { mode: 0o755 });
  await mkdir(join(dir, 'queue'), { mode: 0o755 });
  const port = await freePort();
  await writeFile(join(configDir, 'main.cf'), mainCf(dir, domains, options.mainCf ?? {}));
  await writeFile(join(configDir, 'master.cf'), masterCf(port));
  await writeFile(
    join(configDir, 'transport'),
    domains.map((d) => `${d} etrn-only:[127.0.0.1]:${options.customerMxPort}\n`).join(''),
  );
  await mustRun('postmap', ['-c', configDir, join(configDir, 'transport')]);

  const logTail = async () => {
    const text = await readFile(logFile, 'utf8').catch(() => '');
    return text.trim().split('\n').slice(-15).join('\n');
  };
  // `check` also creates the queue and data directories with Postfix's owners and modes.
  const check = await run('postfix', ['-c', configDir, 'check']);
  if (check.code !== 0)
    throw new Error(
      `postfix check failed: ${(check.stderr + check.stdout).trim()}\n${await logTail()}`,
    );
  const start = await run('postfix', ['-c', configDir, 'start']);
  if (start.code !== 0)
    throw new Error(
      `postfix start failed (exit ${start.code}): ${(start.stderr + start.stdout).trim()}\n${await logTail()}`,
    );

  const masterPid = readPid(join(dir, 'queue', 'pid', 'master.pid'));
  if (!masterPid) throw new Error(`postfix start left no master.pid\n${await logTail()}`);
  killAtExit(masterPid);

  // Wait until smtpd answers with its greeting (master binds at start; smtpd is spawned on demand).
  const until = Date.now() + GREETING_TIMEOUT_MS;
  let greeting = '';
  for (;;) {
    let why: string;
    try {
      greeting = await firstLine(port, Math.max(1, until - Date.now()));
      if (greeting.startsWith('220')) break;
      why = `it said "${greeting}"`;
    } catch (e) {
      why = (e as Error).message;
    }
    if (Date.now() > until) {
      forgetAtExit(masterPid);
      throw new Error(
        `Postfix on port ${port} did not greet with 220 within ${GREETING_TIMEOUT_MS} ms (${why})\n${await logTail()}`,
      );
    }
    await sleep(50);
  }

  let stopped = false;
  const instance: PostfixInstance = {
    host: '127.0.0.1',
    port,
    dir,
    configDir,
    logFile,
    masterPid,

    async inject({ to, from, subject, body }) {
      const sender = from ?? `sender-${randomBytes(4).toString('hex')}@sender.test`;
      const messageId = `<${randomUUID()}@sender.test>`;
      const title = subject ?? `held for ${to} ${randomBytes(4).toString('hex')}`;
      const text = [
        `From: ${sender}`,
        `To: ${to}`,
        `Subject: ${title}`,
        `Message-ID: ${messageId}`,
        `Date: ${new Date().toUTCString()}`,
        '',
        body ?? 'This message waited in the queue for an ETRN.',
        '',
      ].join('\n');
      // -i: a lone dot is not the end; -f: the envelope sender, by which the queue entry is found.
      await mustRun('sendmail', ['-C', configDir, '-i', '-f', sender, '--', to], text);
      const [entry] = await instance.waitForDeferred((e) => e.sender === sender, 1);
      return { queueId: entry!.queue_id, messageId, subject: title, from: sender, to };
    },

    async waitForDeferred(match, count) {
      const limit = Date.now() + DEFERRED_TIMEOUT_MS;
      for (;;) {
        const entries = (await instance.queue()).filter(match);
        const deferred = entries.filter((e) => e.queue_name === 'deferred');
        if (deferred.length >= count) return deferred;
        if (Date.now() > limit) {
          throw new Error(
            `${count} message(s) were not deferred within ${DEFERRED_TIMEOUT_MS} ms (queue: ${JSON.stringify(entries)})\n${await logTail()}`,
          );
        }
        await sleep(100);
      }
    },

    async queue() {
      const { stdout } = await mustRun('postqueue', ['-c', configDir, '-j']);
      return stdout
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as QueueEntry);
    },

    log: () => readFile(logFile, 'utf8').catch(() => ''),

    async waitForLog(pattern, timeoutMs = LOG_TIMEOUT_MS) {
      const limit = Date.now() + timeoutMs;
      for (;;) {
        const line = (await instance.log()).split('\n').find((l) => pattern.test(l));
        if (line) return line;
        if (Date.now() > limit)
          throw new Error(
            `no line matching ${pattern} in ${logFile} within ${timeoutMs} ms\n${await logTail()}`,
          );
        await sleep(50);
      }
    },

    async stop() {
      if (stopped) return;
      stopped = true;
      // postfix stop signals the master and waits up to 5 s, then kills its group itself.
      await run('postfix', ['-c', configDir, 'stop']).catch(() => undefined);
      if (!(await waitGone([masterPid], MASTER_EXIT_TIMEOUT_MS))) {
        signal(-masterPid, 'SIGKILL');
        signal(masterPid, 'SIGKILL');
      }
      // Children outlive their master briefly (an smtp client mid-delivery): none may linger.
      await killInstance(configDir);
      forgetAtExit(masterPid);
      if (!process.env.DEQUEUE_KEEP_POSTFIX) await rm(dir, { recursive: true, force: true });
    },
  };
  return instance;
}
