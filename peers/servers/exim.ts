/**
 * A private Exim daemon on loopback, as a real ETRN server for tests.
 *
 * Debian's Exim (exim4-daemon-light, 4.96) conflicts with Postfix as a package (each is the
 * system's mail transport agent), so it is not installed: .ci/run unpacks the package with
 * `dpkg -x` into EXIM_UNPACKED_ROOT (docs/real-servers.md says how to do the same by hand). The
 * binary is found, in this order, at $DEQUEUE_EXIM, in that unpacked tree, or as an installed
 * /usr/sbin/exim4.
 *
 * Each startExim() runs its own daemon (`exim4 -C <dir>/exim.conf -bdf`, in the foreground, its
 * own process group) from a fresh directory under `<tmpdir>/dequeue-exim/`:
 *
 *   <dir>/owner          which process started it (pid and start time), for the stale sweep
 *   <dir>/exim.conf      the configuration below (root's, as Exim wants it)
 *   <dir>/etrn-domains   the domains ETRN is allowed for, an lsearch file (`domain: domain`)
 *   <dir>/spool/ log/    spool_directory and log_file_path (mainlog, rejectlog, paniclog)
 *   <dir>/etrn/ran       one line per run of smtp_etrn_command: the domain it ran for
 *
 * The ETRN ACL accepts a domain listed in etrn-domains and denies any other (Exim answers that
 * with 458). For an accepted one, smtp_etrn_command appends the domain to etrn/ran; Exim hands
 * the command its argument only de-tainted, so the domain written is the lookup's value (from
 * our file), not the client's text. Nothing else is configured: no routers, no mail is taken.
 *
 * Only root can run it (Exim takes `-C` from root only, and drops to the Debian-exim user for
 * the command), so a missing binary and a non-root user are reported the same way: in CI (`CI`
 * set) the suite FAILS with a plain message; elsewhere it is skipped and stderr says why.
 *
 * Robustness, as with the Postfix harness: a port lost to a race is retried on another (Exim is
 * told not to wait and retry the bind itself); stop() kills the daemon's whole process group
 * (the session processes and the ETRN command are in it) and removes the directory (set
 * DEQUEUE_KEEP_EXIM=1 to keep it); an `exit` hook kills the group if stop() was never reached;
 * a start first sweeps away instances whose owning process is gone.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { exited, freePort, sleep } from './harness';
import {
  alive,
  forgetAtExit,
  killAtExit,
  killGroup,
  sweepStale,
  writeOwner,
} from './private-instances';

/** Where .ci/run unpacks Debian's exim4-daemon-light (`dpkg -x`): the binary is usr/sbin/exim4. */
export const EXIM_UNPACKED_ROOT = '/var/cache/dequeue-exim/root';
/** An exim4 binary to use instead (a path). */
export const EXIM_ENV = 'DEQUEUE_EXIM';
/** The user Debian's build of Exim drops to (compiled in). */
export const EXIM_USER = 'Debian-exim';

export interface EximOptions {
  /** Domains ETRN is accepted (and smtp_etrn_command run) for; any other is denied. Default `["customer.test"]`. */
  readonly etrnDomains?: readonly string[];
  /** Offer STARTTLS with a self-signed certificate made with openssl for this instance. */
  readonly tls?: boolean;
}

export type EximLog = 'main' | 'reject';

export interface EximInstance {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly dir: string;
  readonly pid: number;
  /** The domains smtp_etrn_command has run for so far, one entry per run, in the order written. */
  etrnRuns(): Promise<string[]>;
  /** Wait (bounded) until smtp_etrn_command has run `count` times in all; resolves to etrnRuns(). */
  waitForEtrnRuns(count: number): Promise<string[]>;
  /** Exim's mainlog or rejectlog so far ('' before the first line). */
  log(which?: EximLog): Promise<string>;
  /** Wait (bounded) until a line of the log, past character `from`, matches; resolves to that line. */
  waitForLog(
    pattern: RegExp,
    options?: { readonly which?: EximLog; readonly from?: number },
  ): Promise<string>;
  /** Stop the daemon, make sure nothing of it lives on, remove its directory. Safe to repeat. */
  stop(): Promise<void>;
}

const START_ATTEMPTS = 3;
const START_TIMEOUT_MS = 20_000;
const WAIT_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;
/** A directory without an owner file younger than this is still being set up by someone. */
const SETUP_GRACE_MS = 120_000;

export const EXIM_BASE_DIR = join(tmpdir(), 'dequeue-exim');

// --- availability ---------------------------------------------------------------------------

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function findExim(): { path?: string; missing?: string } {
  const chosen = process.env[EXIM_ENV];
  if (chosen)
    return executable(chosen)
      ? { path: chosen }
      : { missing: `${EXIM_ENV}=${chosen} is not an executable file` };
  for (const path of [join(EXIM_UNPACKED_ROOT, 'usr', 'sbin', 'exim4'), '/usr/sbin/exim4']) {
    if (executable(path)) return { path };
  }
  return {
    missing:
      `Exim is missing (no ${EXIM_UNPACKED_ROOT}/usr/sbin/exim4, no /usr/sbin/exim4, ${EXIM_ENV} unset): run the Exim ` +
      "steps of .ci/run (they unpack Debian's exim4-daemon-light beside Postfix, see docs/real-servers.md), or set " +
      `${EXIM_ENV} to an exim4 binary; the tests against a real Exim cannot run without it`,
  };
}

const found = findExim();
/** The exim4 binary in use, when there is one. */
export const eximBinary: string | undefined = found.path;

function missingReason(): string | undefined {
  if (found.missing) return found.missing;
  if (process.platform !== 'linux')
    return `the private Exim harness needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) {
    return 'a private Exim daemon can only be started by root (Exim takes -C from root only); run the tests as root, as CI does';
  }
  return undefined;
}

/** Why Exim cannot run here, or undefined when it can. */
export const eximMissing: string | undefined = missingReason();

// --- stale instances (private-instances.ts) ---------------------------------------------

/** Remove instances left behind by runs that died before their teardown. */
function sweepStaleExim(): Promise<void> {
  return sweepStale(EXIM_BASE_DIR, SETUP_GRACE_MS, async (dir) => {
    try {
      const pid = Number(readFileSync(join(dir, 'exim.pid'), 'utf8').trim());
      // Only the daemon of that very directory: its command line names the configuration.
      if (
        pid > 0 &&
        readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(join(dir, 'exim.conf'))
      ) {
        killGroup(pid);
        for (const until = Date.now() + STOP_TIMEOUT_MS; alive(pid) && Date.now() < until; )
          await sleep(20);
      }
    } catch {
      // no pid file, or no such process: nothing to kill
    }
  });
}

// --- configuration ---------------------------------------------------------------------------

function eximConf(dir: string, binary: string, port: number, tls: boolean): string {
  const domains = join(dir, 'etrn-domains');
  return `# Written by peers/servers/exim.ts for one test run.
primary_hostname = provider.exim.test
exim_path = ${binary}
spool_directory = ${join(dir, 'spool')}
log_file_path = ${join(dir, 'log')}/%slog
pid_file_path = ${join(dir, 'exim.pid')}
local_interfaces = 127.0.0.1
daemon_smtp_ports = ${port}
# A port taken meanwhile: fail now (the harness picks another) instead of retrying for minutes.
daemon_startup_retries = 0
keep_environment =
host_lookup =
rfc1413_hosts =
log_selector = +smtp_connection +tls_cipher
${tls ? `tls_advertise_hosts = *\ntls_certificate = ${join(dir, 'cert.pem')}\ntls_privatekey = ${join(dir, 'key.pem')}` : 'tls_advertise_hosts ='}
acl_smtp_etrn = acl_check_etrn
# $domain is the client's text (tainted): only a lookup's value may go into a command.
smtp_etrn_command = /bin/sh -c "echo \${lookup{$domain}lsearch{${domains}}} >> ${join(dir, 'etrn', 'ran')}"

begin acl

acl_check_etrn:
  accept condition = \${lookup{$smtp_command_argument}lsearch{${domains}}{yes}{no}}
  deny
`;
}

// --- the instance ------------------------------------------------------------------------------

/** Start a private Exim daemon and wait until it listens. */
export async function startExim(options: EximOptions = {}): Promise<EximInstance> {
  if (eximMissing || !eximBinary) throw new Error(eximMissing ?? 'Exim is missing');
  await sweepStaleExim();
  await mkdir(EXIM_BASE_DIR, { recursive: true });
  await chmod(EXIM_BASE_DIR, 0o755);
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    const dir = await mkdtemp(join(EXIM_BASE_DIR, 'i-'));
    try {
      return await startIn(dir, eximBinary, options);
    } catch (e) {
      lastError = e as Error;
      if (!process.env.DEQUEUE_KEEP_EXIM) await rm(dir, { recursive: true, force: true });
      // Only a lost race for the port is worth another try.
      if (!/address already in use/i.test(lastError.message)) break;
    }
  }
  throw lastError ?? new Error('Exim did not start');
}

function eximIds(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${EXIM_USER}:`));
  if (!line) {
    throw new Error(
      `there is no ${EXIM_USER} user, which Debian's Exim drops to: create it as .ci/run does ` +
        `(useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ${EXIM_USER})`,
    );
  }
  const fields = line.split(':');
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

async function startIn(dir: string, binary: string, options: EximOptions): Promise<EximInstance> {
  const { uid, gid } = eximIds();
  await writeOwner(dir);
  // mkdtemp makes 0700; the Exim user must reach its spool, its log and the ETRN command's file.
  await chmod(dir, 0o755);
  for (const sub of ['spool', 'log', 'etrn']) {
    await mkdir(join(dir, sub), { mode: 0o750 });
    await chown(join(dir, sub), uid, gid);
  }
  const domains = options.etrnDomains ?? ['customer.test'];
  await writeFile(join(dir, 'etrn-domains'), domains.map((d) => `${d}: ${d}\n`).join(''), {
    mode: 0o644,
  });
  if (options.tls) {
    const key = join(dir, 'key.pem');
    await promisify(execFile)(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=provider.exim.test',
        '-keyout',
        key,
        '-out',
        join(dir, 'cert.pem'),
      ],
      { timeout: 30_000 },
    );
    // Read by the session process, which runs as the Exim user.
    await chown(key, uid, gid);
    await chmod(key, 0o600);
  }
  const port = await freePort();
  const config = join(dir, 'exim.conf');
  await writeFile(config, eximConf(dir, binary, port, options.tls ?? false), { mode: 0o644 });

  const child: ChildProcess = spawn(binary, ['-C', config, '-bdf'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' },
  });
  let output = '';
  const keep = (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-4000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const pid = child.pid;
  if (pid === undefined) throw new Error(`exim4 did not start: ${(await spawnError).message}`);
  killAtExit(pid);

  const readLog = (which: EximLog = 'main') =>
    readFile(join(dir, 'log', `${which}log`), 'utf8').catch(() => '');
  const kill = async () => {
    killGroup(pid);
    await exited(child);
    forgetAtExit(pid);
  };
  // "daemon started" is written once the listening socket is bound.
  const until = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const log = await readLog();
    if (log.includes(`daemon started: pid=${pid},`)) break;
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > until) {
      await kill();
      const panic = await readFile(join(dir, 'log', 'paniclog'), 'utf8').catch(() => '');
      throw new Error(
        `Exim did not start on port ${port} within ${START_TIMEOUT_MS} ms (exit ${child.exitCode}): ` +
          `${output.trim().slice(-600)} ${panic.trim().slice(-600)} ${log.trim().slice(-600)}`,
      );
    }
    await sleep(50);
  }

  const etrnRuns = async () =>
    (await readFile(join(dir, 'etrn', 'ran'), 'utf8').catch(() => '')).split('\n').filter((l) => l);
  let stopped = false;
  const instance: EximInstance = {
    host: '127.0.0.1',
    port,
    dir,
    pid,
    etrnRuns,
    async waitForEtrnRuns(count) {
      const limit = Date.now() + WAIT_TIMEOUT_MS;
      for (;;) {
        const runs = await etrnRuns();
        if (runs.length >= count) return runs;
        if (Date.now() > limit)
          throw new Error(
            `smtp_etrn_command ran ${runs.length} time(s), not ${count}, within ${WAIT_TIMEOUT_MS} ms (${JSON.stringify(runs)})`,
          );
        await sleep(50);
      }
    },
    log: readLog,
    async waitForLog(pattern, { which = 'main', from = 0 } = {}) {
      const limit = Date.now() + WAIT_TIMEOUT_MS;
      for (;;) {
        const line = (await readLog(which))
          .slice(from)
          .split('\n')
          .find((l) => pattern.test(l));
        if (line) return line;
        if (Date.now() > limit) {
          const tail = (await readLog(which)).slice(from).trim().split('\n').slice(-15).join('\n');
          throw new Error(
            `no line matching ${pattern} in Exim's ${which}log within ${WAIT_TIMEOUT_MS} ms:\n${tail}`,
          );
        }
        await sleep(50);
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone already
      }
      const timer = setTimeout(() => killGroup(pid), STOP_TIMEOUT_MS);
      await exited(child);
      clearTimeout(timer);
      // Session processes and ETRN commands live in the daemon's group: none may outlive it.
      await kill();
      if (!process.env.DEQUEUE_KEEP_EXIM) await rm(dir, { recursive: true, force: true });
    },
  };
  return instance;
}
