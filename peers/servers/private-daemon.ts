/**
 * The bookkeeping every private server instance needs (Exim 4.99.1, sendmail, Dovecot): a folder
 * of its own under the temporary directory, the daemon in the foreground in a process group of
 * its own, and no trace of it after the test run, even one that died before its teardown.
 *
 *   <base>/<i-XXXXXX>/owner       which process started it (pid and start time), for the sweep
 *   <base>/<i-XXXXXX>/daemon.pid  the daemon's pid as we spawned it, for the sweep
 *
 * A start first sweeps away the folders whose owner is gone (killing the daemon's group when its
 * command line still names the folder); an `exit` hook kills the groups of daemons whose stop()
 * was never reached (both from private-instances.ts, which the Postfix and Debian Exim harnesses
 * share). Nothing here imports the test runner.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exited, sleep } from './harness';
import {
  alive,
  forgetAtExit,
  killAtExit,
  killGroup,
  sweepStale,
  writeOwner,
} from './private-instances';

const STOP_TIMEOUT_MS = 5_000;
/** A folder without an owner file younger than this is still being set up by someone. */
const SETUP_GRACE_MS = 120_000;
const POLL_MS = 50;

/** Remove the instances under `base` left behind by runs that died before their teardown. */
function sweepStaleDaemons(base: string): Promise<void> {
  return sweepStale(base, SETUP_GRACE_MS, async (dir) => {
    try {
      const pid = Number(readFileSync(join(dir, 'daemon.pid'), 'utf8').trim());
      // Only the daemon of that very folder: its command line names it.
      if (pid > 0 && readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(dir)) {
        killGroup(pid);
        for (const until = Date.now() + STOP_TIMEOUT_MS; alive(pid) && Date.now() < until; )
          await sleep(20);
      }
    } catch {
      // no pid file, or no such process: nothing to kill
    }
  });
}

/** A system user's ids, from /etc/passwd (the daemons drop to their own users). */
export function systemUser(name: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`there is no "${name}" user on this machine`);
  const fields = line.split(':');
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

/** A fresh instance folder under `base` (0755: daemons drop to their own users and must reach it). */
export async function instanceDir(base: string): Promise<string> {
  await sweepStaleDaemons(base);
  await mkdir(base, { recursive: true });
  await chmod(base, 0o755);
  const dir = await mkdtemp(join(base, 'i-'));
  await chmod(dir, 0o755);
  await writeOwner(dir);
  return dir;
}

/** Remove an instance folder, unless `keepEnv` is set in the environment (to look at it after). */
export async function removeInstanceDir(dir: string, keepEnv: string): Promise<void> {
  if (!process.env[keepEnv]) await rm(dir, { recursive: true, force: true });
}

export interface Daemon {
  readonly pid: number;
  readonly child: ChildProcess;
  /** The last few KiB the daemon wrote to stdout and stderr. */
  output(): string;
  /** Whether it has exited (a daemon that exits during its start failed). */
  exited(): boolean;
  /** `signal` (default SIGTERM) to the daemon, SIGKILL to its whole group after a grace; safe to repeat. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Spawn a daemon that stays in the foreground, in a process group of its own, its pid recorded in
 * `dir` for the sweep. Its command line must name `dir` (a config file inside it will do).
 */
export async function spawnDaemon(
  dir: string,
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' },
): Promise<Daemon> {
  const child = spawn(command, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    env,
  });
  let output = '';
  const keep = (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-4000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${command} did not start: ${(await spawnError).message}`);
  killAtExit(pid);
  await writeFile(join(dir, 'daemon.pid'), `${pid}\n`);
  let stopping: Promise<void> | undefined;
  return {
    pid,
    child,
    output: () => output,
    exited: () => child.exitCode !== null || child.signalCode !== null,
    stop(signal = 'SIGTERM') {
      stopping ??= (async () => {
        try {
          process.kill(pid, signal);
        } catch {
          // gone already
        }
        const timer = setTimeout(() => killGroup(pid), STOP_TIMEOUT_MS);
        await exited(child);
        clearTimeout(timer);
        // Whatever it forked lives in its group: none may outlive it.
        killGroup(pid);
        forgetAtExit(pid);
      })();
      return stopping;
    },
  };
}

/**
 * Poll `probe` until it yields a value, or fail after `timeoutMs` with `describe()`'s account of
 * what was seen. Used for what a daemon writes to files (logs, queues, mailboxes): there is no
 * event to await across processes.
 */
export async function pollFor<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  describe: () => Promise<string>,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(await describe());
    await sleep(POLL_MS);
  }
}
