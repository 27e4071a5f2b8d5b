/**
 * INetSim (Debian package `inetsim`) as a real ATRN provider: it requires AUTH (any
 * credentials), accepts a bare `ATRN`, answers 250, waits for our `220 `, delivers one canned
 * message and QUITs, with a stray empty line after the final dot. Two services of one instance:
 * SMTP offering STARTTLS, and SMTPS (implicit TLS), both with INetSim's own self-signed
 * certificate from its data folder.
 *
 * Each start runs its own instance: its own config, a copy of its data folder, logs and pid file
 * in a temporary folder (the default pid file is global and a stale one blocks the next start),
 * every folder readable by the `inetsim` user. It ignores signals for about 3 s after starting,
 * so we wait for "Simulation running" in its main log before using or stopping it, and stop its
 * whole process group. "Simulation running" is written 2 s after the services were forked,
 * whether or not they listen yet (a loaded machine takes longer to start a Perl service and load
 * its certificate): each service writes "<name> started" once it is bound and about to accept
 * (Net::Server's pre_loop_hook), so we wait for that line of both services as well.
 *
 * Absent: in CI (`CI` set) the suite fails with a plain message; elsewhere it is skipped and
 * stderr says so.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { chmod, chown, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { delimiter, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { exited, freePort, sleep } from './harness';

export interface InetSim {
  /** SMTP, offering STARTTLS with INetSim's own certificate (data/certs, self-signed). */
  readonly port: number;
  /** SMTPS: TLS from the first byte (`start_service smtps`), the same certificate. */
  readonly smtpsPort: number;
  /** INetSim's own log of the SMTP session (service.log), for assertions and diagnosis. */
  serviceLog(): Promise<string>;
  stop(): Promise<void>;
}

const DATA_DIR = '/var/lib/inetsim';
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;

export function findInetSim(): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/sbin']) {
    if (!dir) continue;
    try {
      accessSync(join(dir, 'inetsim'), constants.X_OK);
      accessSync(DATA_DIR, constants.R_OK);
      return join(dir, 'inetsim');
    } catch {
      // not here
    }
  }
  return undefined;
}

export const INETSIM_MISSING_MESSAGE =
  'inetsim is missing (Debian package "inetsim": apt-get install inetsim) or not usable here (it must run as root); ' +
  'the test against a real ATRN provider cannot run without it';

const usable = (): boolean => findInetSim() !== undefined && userInfo().uid === 0;
export const hasInetSim: boolean = usable();

export async function startInetSim(): Promise<InetSim> {
  const executable = findInetSim();
  if (!executable) throw new Error(INETSIM_MISSING_MESSAGE);
  const { uid, gid } = inetsimUser();
  const home = await mkdtemp(join(tmpdir(), 'dequeue-inetsim-'));
  // mkdtemp makes 0700; the services run as the inetsim user and must reach everything here.
  await chmod(home, 0o755);
  const data = join(home, 'data');
  const logs = join(home, 'log');
  const reports = join(home, 'report');
  await cp(DATA_DIR, data, { recursive: true, preserveTimestamps: true });
  await mkdir(logs);
  await mkdir(reports);
  for (const dir of [data, join(data, 'smtp'), logs, reports]) await chown(dir, uid, gid);
  // The copy is root's: its TLS key (0600) must be the inetsim user's to be read.
  const certs = join(data, 'certs');
  for (const name of ['', 'default_cert.pem', 'default_key.pem'])
    await chown(join(certs, name), uid, gid).catch(() => undefined);
  const port = await freePort();
  const smtpsPort = await freePort();
  const config = join(home, 'inetsim.conf');
  await writeFile(
    config,
    [
      'start_service smtp',
      'start_service smtps',
      'service_bind_address 127.0.0.1',
      ...['smtp', 'smtps'].flatMap((service) => [
        `${service}_bind_port ${service === 'smtp' ? port : smtpsPort}`,
        `${service}_fqdn_hostname provider.inetsim.test`,
        `${service}_extended_smtp yes`,
        `${service}_service_extension AUTH PLAIN LOGIN CRAM-MD5`,
        `${service}_service_extension ATRN`,
        `${service}_service_extension 8BITMIME`,
      ]),
      'smtp_service_extension STARTTLS',
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  const child = spawn(
    executable,
    [
      `--config=${config}`,
      `--log-dir=${logs}`,
      `--data-dir=${data}`,
      `--report-dir=${reports}`,
      `--pidfile=${join(home, 'inetsim.pid')}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // gone already
    }
  };
  const onExit = () => killGroup('SIGKILL');
  process.once('exit', onExit);

  const mainLog = join(logs, 'main.log');
  // INetSim's service names are <service>_<port>_tcp (INetSim::Config).
  const ready = [
    'Simulation running',
    `* smtp_${port}_tcp started`,
    `* smtps_${smtpsPort}_tcp started`,
  ];
  const started = Date.now();
  for (;;) {
    const log = await readFile(mainLog, 'utf8').catch(() => '');
    if (ready.every((line) => log.includes(line))) break;
    if (child.exitCode !== null || Date.now() - started > START_TIMEOUT_MS) {
      killGroup('SIGKILL');
      await exited(child);
      process.removeListener('exit', onExit);
      await rm(home, { recursive: true, force: true });
      const missing = ready
        .filter((line) => !log.includes(line))
        .map((line) => `"${line}"`)
        .join(', ');
      throw new Error(
        `inetsim did not report ${missing} within ${START_TIMEOUT_MS} ms (exit ${child.exitCode}): ${log.trim().slice(-600)} ${output.trim().slice(-400)}`,
      );
    }
    await sleep(100);
  }

  return {
    port,
    smtpsPort,
    serviceLog: () => readFile(join(logs, 'service.log'), 'utf8').catch(() => ''),
    async stop() {
      process.removeListener('exit', onExit);
      killGroup('SIGTERM');
      const timer = setTimeout(() => killGroup('SIGKILL'), STOP_TIMEOUT_MS);
      await exited(child);
      clearTimeout(timer);
      // The services are children in the same group: make sure none outlives the main process.
      killGroup('SIGKILL');
      await rm(home, { recursive: true, force: true });
    },
  };
}

function inetsimUser(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'inetsim'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'inetsim'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}
