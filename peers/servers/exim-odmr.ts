/**
 * A private Exim 4.99.1 on loopback as a real ODMR provider (RFC 2645): it holds mail for the
 * customer's domains, takes `ATRN` from an authenticated customer, turns the connection around
 * and delivers the held mail over it. 4.99.1 is the first Exim with ATRN; Debian 12 ships 4.96,
 * so .ci/run builds it from the release's source (scripts/build-exim.sh) into
 * EXIM_ODMR_BUILD_DIR. The binary is found at $DEQUEUE_EXIM_ODMR, or at
 * EXIM_ODMR_BUILD_DIR/current/bin/exim.
 *
 * Each startEximOdmr() runs its own daemon (`exim -C <dir>/exim.conf -bdf`, in the foreground,
 * its own process group) from a fresh folder under `<tmpdir>/dequeue-exim-odmr/`: exim.conf,
 * spool/, log/ (mainlog, rejectlog, paniclog), `accounts` (user: domains) and `passwords`
 * (user: password) for the CRAM-MD5 authenticator, and the TLS certificate (peers/tls).
 *
 * The provider's configuration, as its specification's ODMR section describes it:
 * - `acl_smtp_atrn`: the domains are the authenticated account's, narrowed to those named in the
 *   `ATRN` argument; none left is denied (Exim answers a denied ATRN with 450, RFC 2645's
 *   "ATRN request refused"); `atrn_domains` accepts when mail is held for one of them, and with
 *   nothing held the ACL defers with `453 You have no mail` (or, `checkSpool: false`, accepts
 *   anyway and turns the line with nothing to send);
 * - a `manualroute` router taken only in ATRN mode, sending to `$atrn_host` (the customer, on
 *   the turned connection), `self = send` because on loopback the customer is "the local host";
 * - any other time a `redirect` router defers the mail (`:defer:`), so that it waits;
 *   `queue_only`, and a retry rule (without one the first defer bounces);
 * - `exim_user = nobody`: root is in Exim's fixed never_users, and the smtp transport refuses to
 *   run as root; the spool is re-owned after each injection;
 * - the transport never downconverts an international message (`utf8_downconvert = 0`): a
 *   message with a UTF-8 address needs SMTPUTF8 at the customer.
 *
 * Root only (Exim takes -C from root only): a missing binary and a non-root user are reported
 * the same way: the tests fail in CI and skip loudly elsewhere (test/servers/exim-odmr.ts).
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { chown, copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './harness';
import { instanceDir, pollFor, removeInstanceDir, spawnDaemon, systemUser } from './private-daemon';

/** Where .ci/run builds Exim 4.99.1 (scripts/build-exim.sh): the binary is current/bin/exim. */
export const EXIM_ODMR_BUILD_DIR = '/var/cache/dequeue-exim-odmr';
/** An Exim 4.99 (or later) binary to use instead (a path). */
export const EXIM_ODMR_ENV = 'DEQUEUE_EXIM_ODMR';
const KEEP_ENV = 'DEQUEUE_KEEP_EXIM';
const BASE_DIR = join(tmpdir(), 'dequeue-exim-odmr');
const TLS_DIR = join(import.meta.dirname, '..', 'tls');
const START_TIMEOUT_MS = 20_000;
const WAIT_TIMEOUT_MS = 20_000;
const COMMAND_TIMEOUT_MS = 30_000;

const run = promisify(execFile);

export interface OdmrAccount {
  readonly username: string;
  readonly password: string;
  /** The domains ATRN may release for this account. */
  readonly domains: readonly string[];
  /**
   * Answer `453 You have no mail` when nothing is held for the domains (default). `false`: accept
   * ATRN anyway and turn the line with nothing to send (the queue run finds nothing and ends).
   */
  readonly checkSpool?: boolean;
}

export interface EximOdmrOptions {
  /** Default: one account, `customer` / `secret`, for `customer.test`. */
  readonly accounts?: readonly OdmrAccount[];
  /** Offer STARTTLS (peers/tls/localhost.pem: the test CA's certificate for 127.0.0.1). */
  readonly tls?: boolean;
}

/** A message to hold for the customer, injected as a local submission (`exim -odq -i`). */
export interface HeldMail {
  readonly from: string;
  readonly to: readonly string[];
  /** The message (header and body), LF or CRLF line ends; Exim adds Received, Message-ID, Date. */
  readonly data: string | Buffer;
}

export type EximOdmrLog = 'main' | 'reject' | 'panic';

export interface EximOdmr {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly dir: string;
  /** Put messages in the queue, held until the customer says ATRN. */
  hold(messages: readonly HeldMail[]): Promise<void>;
  /** How many messages the queue holds (`exim -bpc`). */
  queueCount(): Promise<number>;
  /**
   * Wait (bounded) until the queue holds `count` messages for `domain` (for any domain when
   * omitted): Exim removes a delivered message's files just after logging it, in the delivery
   * process. Resolves to `exim -bp`.
   */
  waitForQueue(count: number, domain?: string): Promise<string>;
  /** Exim's log so far ('' before its first line). */
  log(which?: EximOdmrLog): Promise<string>;
  /** Wait (bounded) until a mainlog line past character `from` matches; resolves to that line. */
  waitForLog(pattern: RegExp, from?: number): Promise<string>;
  /** Stop the daemon and whatever it forked, remove its folder (DEQUEUE_KEEP_EXIM=1 keeps it). */
  stop(): Promise<void>;
}

// --- availability ---------------------------------------------------------------------------

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function findBinary(): { path?: string; missing?: string } {
  const chosen = process.env[EXIM_ODMR_ENV];
  if (chosen)
    return executable(chosen)
      ? { path: chosen }
      : { missing: `${EXIM_ODMR_ENV}=${chosen} is not an executable file` };
  const built = join(EXIM_ODMR_BUILD_DIR, 'current', 'bin', 'exim');
  if (executable(built)) return { path: built };
  return {
    missing:
      `Exim 4.99.1 is missing (no ${built}, ${EXIM_ODMR_ENV} unset): run the Exim 4.99.1 step of .ci/run ` +
      '(scripts/build-exim.sh builds it from the release source, see docs/real-servers.md), or set ' +
      `${EXIM_ODMR_ENV} to an exim binary of 4.99 or later; the tests against a real ODMR provider cannot run without it`,
  };
}

const found = findBinary();

function missingReason(): string | undefined {
  if (found.missing) return found.missing;
  if (process.platform !== 'linux')
    return `the private Exim harness needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0)
    return 'a private Exim daemon can only be started by root (Exim takes -C from root only); run the tests as root, as CI does';
  return undefined;
}

/** Why Exim 4.99.1 cannot run here, or undefined when it can. */
export const eximOdmrMissing: string | undefined = missingReason();

// --- configuration ---------------------------------------------------------------------------

function eximConf(dir: string, binary: string, port: number, options: EximOdmrOptions): string {
  const accounts = join(dir, 'accounts');
  const passwords = join(dir, 'passwords');
  const turnAnyway = join(dir, 'turn-anyway');
  return `# Written by peers/servers/exim-odmr.ts for one test run.
primary_hostname = provider.exim.test
exim_path = ${binary}
spool_directory = ${join(dir, 'spool')}
log_file_path = ${join(dir, 'log')}/%slog
pid_file_path = ${join(dir, 'exim.pid')}
local_interfaces = 127.0.0.1
daemon_smtp_ports = ${port}
daemon_startup_retries = 0
keep_environment =
host_lookup =
rfc1413_hosts =
exim_user = nobody
exim_group = nogroup
queue_only
log_selector = +smtp_connection +tls_cipher +received_recipients +smtp_protocol_error +smtp_syntax_error
${options.tls ? `tls_advertise_hosts = *\ntls_certificate = ${join(dir, 'cert.pem')}\ntls_privatekey = ${join(dir, 'key.pem')}` : 'tls_advertise_hosts ='}
acl_smtp_atrn = check_atrn

begin acl

# The account's domains (our file: untainted), narrowed to those the ATRN argument names.
check_atrn:
  warn   set acl_m_mine = \${lookup{$authenticated_id}lsearch{${accounts}}{$value}{}}
  warn   set acl_m_domains = \${if def:smtp_command_argument \\
           {\${filter{<, $acl_m_mine}{inlist{$item}{<, $smtp_command_argument}}}}{$acl_m_mine}}
  deny   condition = \${if eq{$acl_m_domains}{}}
         message = ATRN request refused
  accept atrn_domains = <, $acl_m_domains
  accept condition = \${lookup{$authenticated_id}lsearch{${turnAnyway}}{yes}{no}}
  defer  message = 453 You have no mail

begin routers

odmr:
  driver = manualroute
  condition = \${if eq {$atrn_mode}{P}}
  route_data = <;$atrn_host
  self = send
  transport = odmr_smtp

held:
  driver = redirect
  allow_defer
  data = :defer: held until the customer says ATRN

begin transports

odmr_smtp:
  driver = smtp
  # An international message needs SMTPUTF8 (RFC 6531) at the customer: never "downconverted"
  # (Exim's default, -1, would rewrite a UTF-8 local part as punycode when it is not offered).
  utf8_downconvert = 0

begin retry

*  *  F,1d,1m

begin authenticators

cram:
  driver = cram_md5
  public_name = CRAM-MD5
  server_secret = \${lookup{$auth1}lsearch{${passwords}}{$value}fail}
  server_set_id = $auth1
`;
}

// --- the instance ------------------------------------------------------------------------------

const DEFAULT_ACCOUNTS: readonly OdmrAccount[] = [
  { username: 'customer', password: 'secret', domains: ['customer.test'] },
];

/** Start a private Exim ODMR provider and wait until it listens. */
export async function startEximOdmr(options: EximOdmrOptions = {}): Promise<EximOdmr> {
  if (eximOdmrMissing || !found.path) throw new Error(eximOdmrMissing ?? 'Exim is missing');
  const binary = found.path;
  const { uid, gid } = systemUser('nobody');
  const dir = await instanceDir(BASE_DIR);
  try {
    for (const sub of ['spool', 'log']) {
      await mkdir(join(dir, sub), { mode: 0o750 });
      await chown(join(dir, sub), uid, gid);
    }
    const accounts = options.accounts ?? DEFAULT_ACCOUNTS;
    await writeFile(
      join(dir, 'accounts'),
      accounts.map((a) => `${a.username}: ${a.domains.join(', ')}\n`).join(''),
      { mode: 0o644 },
    );
    await writeFile(
      join(dir, 'passwords'),
      accounts.map((a) => `${a.username}: ${a.password}\n`).join(''),
      { mode: 0o640 },
    );
    await chown(join(dir, 'passwords'), 0, gid);
    await writeFile(
      join(dir, 'turn-anyway'),
      accounts
        .filter((a) => a.checkSpool === false)
        .map((a) => `${a.username}: yes\n`)
        .join(''),
      { mode: 0o644 },
    );
    if (options.tls) {
      await copyFile(join(TLS_DIR, 'localhost.pem'), join(dir, 'cert.pem'));
      await copyFile(join(TLS_DIR, 'localhost.key'), join(dir, 'key.pem'));
      // Read by the session process, which runs as the Exim user.
      await chown(join(dir, 'key.pem'), uid, gid);
    }
    return await startIn(dir, binary, options);
  } catch (e) {
    await removeInstanceDir(dir, KEEP_ENV);
    throw e;
  }
}

async function startIn(dir: string, binary: string, options: EximOdmrOptions): Promise<EximOdmr> {
  const config = join(dir, 'exim.conf');
  const readLog = (which: EximOdmrLog = 'main') =>
    readFile(join(dir, 'log', `${which}log`), 'utf8').catch(() => '');
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    await writeFile(config, eximConf(dir, binary, port, options), { mode: 0o644 });
    const daemon = await spawnDaemon(dir, binary, ['-C', config, '-bdf']);
    try {
      // "daemon started" is written once the listening socket is bound.
      await pollFor(
        async () =>
          (await readLog()).includes(`daemon started: pid=${daemon.pid},`) ||
          (daemon.exited() ? false : undefined),
        START_TIMEOUT_MS,
        async () => `Exim did not start within ${START_TIMEOUT_MS} ms`,
      ).then(async (ok) => {
        if (!ok)
          throw new Error(`Exim exited at start: ${await startFailure(dir, daemon.output())}`);
      });
    } catch (e) {
      await daemon.stop('SIGKILL');
      lastError = e as Error;
      // Only a port lost to a race is worth another try.
      if (!/address already in use/i.test(lastError.message)) break;
      continue;
    }

    const exim = async (args: readonly string[], input?: string | Buffer) => {
      const pending = run(binary, ['-C', config, ...args], {
        timeout: COMMAND_TIMEOUT_MS,
        env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' },
        maxBuffer: 1 << 20,
      });
      // Exim may exit before reading stdin (a listing reads none): a broken pipe is no news.
      pending.child.stdin?.on('error', () => undefined);
      pending.child.stdin?.end(input ?? '');
      return pending;
    };
    let stopped = false;
    return {
      host: '127.0.0.1',
      port,
      dir,
      async hold(messages) {
        // Exim remembers, per host address, the messages a delivery deferred (the transport's
        // wait- hints), and after delivering one message on a connection it sends those too:
        // on loopback every customer is 127.0.0.1, so mail another test left deferred would
        // ride along in this test's session (another account's mail, on a real provider
        // whose customers share an address). Each test starts from no such hints.
        await rm(join(dir, 'spool', 'db'), { recursive: true, force: true });
        for (const message of messages) {
          // -odq: queue only; -i: a line with a lone dot is text, not the end.
          await exim(['-odq', '-i', '-f', message.from, '--', ...message.to], message.data);
        }
        // Root injected them: the queue runs as the Exim user.
        await run('chown', ['-R', 'nobody:nogroup', join(dir, 'spool')]);
      },
      async queueCount() {
        return Number((await exim(['-bpc'])).stdout.trim());
      },
      async waitForQueue(count, domain) {
        // One entry per message: a line with its age, size and id, then its recipients.
        const held = (listing: string) =>
          listing
            .split(/\n\s*\n/)
            .filter((entry) => /\S+-\S+-\S+/.test(entry))
            .filter((entry) => domain === undefined || entry.includes(`@${domain}`)).length;
        return pollFor(
          async () => {
            const listing = (await exim(['-bp'])).stdout;
            return held(listing) === count ? listing : undefined;
          },
          WAIT_TIMEOUT_MS,
          async () =>
            `Exim's queue did not come to ${count} message(s)${domain ? ` for ${domain}` : ''} within ${WAIT_TIMEOUT_MS} ms:\n${(await exim(['-bp'])).stdout}`,
        );
      },
      log: readLog,
      waitForLog(pattern, from = 0) {
        return pollFor(
          async () =>
            (await readLog())
              .slice(from)
              .split('\n')
              .find((l) => pattern.test(l)),
          WAIT_TIMEOUT_MS,
          async () =>
            `no line matching ${pattern} in Exim's mainlog within ${WAIT_TIMEOUT_MS} ms:\n${(await readLog()).slice(from).trim().split('\n').slice(-15).join('\n')}`,
        );
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await daemon.stop();
        await removeInstanceDir(dir, KEEP_ENV);
      },
    };
  }
  throw lastError ?? new Error('Exim did not start');
}

async function startFailure(dir: string, output: string): Promise<string> {
  const panic = await readFile(join(dir, 'log', 'paniclog'), 'utf8').catch(() => '');
  return `${output.trim().slice(-600)} ${panic.trim().slice(-600)}`.trim();
}
