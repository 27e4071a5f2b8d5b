/**
 * A private sendmail 8.17 (Debian 12's) on loopback as a real ETRN provider (RFC 1985): it holds
 * mail for the customer's domains and, on `ETRN domain`, runs its queue for them, delivering to
 * the customer's server on loopback.
 *
 * Debian's sendmail packages conflict with Postfix (each is the system's mail transport agent), so
 * .ci/run unpacks sendmail-bin, sendmail-base and sendmail-cf with `dpkg-deb -x` into
 * SENDMAIL_UNPACKED_ROOT (and installs m4, which builds a `.cf` from an `.mc`). The binary is
 * found at $DEQUEUE_SENDMAIL_ROOT/usr/libexec/sendmail/sendmail, or in that unpacked tree.
 *
 * Each startSendmail() runs its own daemon (`sendmail -C <dir>/sendmail.cf -bD`, in the
 * foreground, its own process group) from a fresh folder under `<tmpdir>/dequeue-sendmail/`:
 * sendmail.mc and the sendmail.cf m4 makes of it, queue/, the mailertable (each customer domain
 * to the `customer` mailer, whose `A=TCP $h PORT` is the customer's server on 127.0.0.1) and the
 * TLS certificate (peers/tls).
 *
 * sendmail wants a fully qualified name for this host and, when the machine's host name has none
 * in /etc/hosts, sleeps 60 s at every start ("unqualified host name ... sleeping for retry"). The
 * system's file is never edited: every sendmail runs in a private mount namespace
 * (`unshare --mount`) in which a copy of /etc/hosts with a qualified name is bind-mounted over it.
 *
 * sendmail logs only to syslog, which a test machine may not run: what it did is seen where it
 * shows to a user, in its queue (`sendmail -bp`) and at the customer's server.
 *
 * Root only (binding the namespace's mount needs it); without the unpacked tree, m4 or unshare the
 * tests fail in CI and skip loudly elsewhere (test/servers/sendmail.ts).
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './harness';
import { instanceDir, pollFor, removeInstanceDir, spawnDaemon } from './private-daemon';

/** Where .ci/run unpacks Debian's sendmail-bin, sendmail-base and sendmail-cf (`dpkg-deb -x`). */
export const SENDMAIL_UNPACKED_ROOT = '/var/cache/dequeue-sendmail/root';
/** Another unpacked tree to use instead (a path holding usr/libexec/sendmail/sendmail). */
export const SENDMAIL_ENV = 'DEQUEUE_SENDMAIL_ROOT';
const KEEP_ENV = 'DEQUEUE_KEEP_SENDMAIL';
const BASE_DIR = join(tmpdir(), 'dequeue-sendmail');
const TLS_DIR = join(import.meta.dirname, '..', 'tls');
const START_TIMEOUT_MS = 20_000;
const WAIT_TIMEOUT_MS = 20_000;
const COMMAND_TIMEOUT_MS = 30_000;

const run = promisify(execFile);

export interface SendmailOptions {
  /** The customer's domains: held, and sent to `customerPort` when released. */
  readonly domains: readonly string[];
  /** The customer's SMTP server on 127.0.0.1, where released mail goes. */
  readonly customerPort: number;
  /** Offer STARTTLS (peers/tls/localhost.pem: the test CA's certificate for 127.0.0.1). */
  readonly tls?: boolean;
  /** sendmail's PrivacyOptions (e.g. `noetrn`, which answers ETRN with 502). */
  readonly privacyOptions?: string;
  /** Queue groups besides the default one, for `ETRN #group`; released mail is not put in them. */
  readonly queueGroups?: readonly string[];
}

/** A message to hold, injected as a local submission (`sendmail -odq -i`). */
export interface HeldMail {
  readonly from: string;
  readonly to: readonly string[];
  /** The message (header and body), LF line ends. */
  readonly data: string | Buffer;
}

export interface Sendmail {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly dir: string;
  /** Put messages in the queue, held until an ETRN for their domain. */
  hold(messages: readonly HeldMail[]): Promise<void>;
  /** How many messages the queue holds (`sendmail -bp`). */
  queueCount(): Promise<number>;
  /** Wait (bounded) until the queue holds `count` messages; resolves to the listing. */
  waitForQueue(count: number): Promise<string>;
  /** Stop the daemon and the queue runners it forked, remove its folder (DEQUEUE_KEEP_SENDMAIL=1 keeps it). */
  stop(): Promise<void>;
}

// --- availability ---------------------------------------------------------------------------

function usable(path: string, mode = constants.X_OK): boolean {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string): boolean {
  return ['/usr/bin', '/usr/sbin', '/bin', '/sbin'].some((dir) => usable(join(dir, name)));
}

const root = process.env[SENDMAIL_ENV] || SENDMAIL_UNPACKED_ROOT;
const binary = join(root, 'usr', 'libexec', 'sendmail', 'sendmail');
const cfDir = join(root, 'usr', 'share', 'sendmail', 'cf');

function missingReason(): string | undefined {
  if (!usable(binary) || !usable(join(cfDir, 'm4', 'cf.m4'), constants.R_OK)) {
    return (
      `sendmail is missing (no ${binary} or ${cfDir}/m4/cf.m4${process.env[SENDMAIL_ENV] ? `, from ${SENDMAIL_ENV}` : ''}): ` +
      "run the sendmail steps of .ci/run (they unpack Debian's sendmail-bin, sendmail-base and sendmail-cf beside " +
      'Postfix, see docs/real-servers.md); the tests against a real sendmail cannot run without it'
    );
  }
  if (!onPath('m4'))
    return 'm4 is missing (apt-get install m4): sendmail.cf is built from an .mc with it';
  if (!onPath('unshare'))
    return 'unshare (util-linux) is missing: sendmail runs in a private mount namespace';
  if (process.platform !== 'linux' || process.getuid?.() !== 0)
    return 'a private sendmail runs as root in a mount namespace of its own; run the tests as root, as CI does';
  return undefined;
}

/** Why sendmail cannot run here, or undefined when it can. */
export const sendmailMissing: string | undefined = missingReason();

// --- configuration ---------------------------------------------------------------------------

function sendmailMc(dir: string, port: number, options: SendmailOptions): string {
  const tls = options.tls
    ? [
        `define(\`confCACERT_PATH', \`${dir}')dnl`,
        `define(\`confCACERT', \`${join(dir, 'cert.pem')}')dnl`,
        `define(\`confSERVER_CERT', \`${join(dir, 'cert.pem')}')dnl`,
        `define(\`confSERVER_KEY', \`${join(dir, 'key.pem')}')dnl`,
      ].join('\n')
    : '';
  const groups = (options.queueGroups ?? [])
    .map((g) => `QUEUE_GROUP(\`${g}', \`P=${join(dir, 'queue', g)}')dnl`)
    .join('\n');
  return `divert(-1)
Written by peers/servers/sendmail.ts for one test run.
divert(0)dnl
OSTYPE(\`linux')dnl
define(\`confDOMAIN_NAME', \`provider.sendmail.test')dnl
define(\`confDONT_PROBE_INTERFACES', \`True')dnl
define(\`QUEUE_DIR', \`${join(dir, 'queue')}')dnl
define(\`confPID_FILE', \`${join(dir, 'sendmail.pid')}')dnl
define(\`STATUS_FILE', \`${join(dir, 'statistics')}')dnl
define(\`ALIAS_FILE', \`${join(dir, 'aliases')}')dnl
define(\`confHOST_STATUS_DIRECTORY', \`')dnl
define(\`confDEF_USER_ID', \`nobody:nogroup')dnl
define(\`confTO_IDENT', \`0')dnl
define(\`confTO_CONNECT', \`10s')dnl
define(\`confCONNECTION_RATE_THROTTLE', \`0')dnl
define(\`confPRIVACY_FLAGS', \`${options.privacyOptions ?? 'authwarnings'}')dnl
dnl /tmp is world-writable but sticky: trust it for the maps, the queue and the TLS key.
define(\`confDONT_BLAME_SENDMAIL', \`TrustStickyBit')dnl
${tls}
FEATURE(\`no_default_msa')dnl
DAEMON_OPTIONS(\`Family=inet, Name=MTA, Addr=127.0.0.1, Port=${port}')dnl
FEATURE(\`mailertable', \`hash ${join(dir, 'mailertable')}')dnl
${groups}
MAILER(\`smtp')dnl
MAILER_DEFINITIONS
Mcustomer, P=[IPC], F=mDFMuXa, S=EnvFromSMTP/HdrFromSMTP, R=EnvToSMTP, E=\\r\\n, L=990, T=DNS/RFC822/SMTP, A=TCP $h ${options.customerPort}
`;
}

/** /etc/hosts with a fully qualified name for this host, on IPv4 and IPv6 (see the top). */
function hostsFile(): string {
  const name = hostname();
  const system = readFileSync('/etc/hosts', 'utf8');
  return `${system.trimEnd()}\n127.0.0.1 ${name}.localdomain ${name}\n::1 ${name}.localdomain ${name}\n`;
}

// --- the instance ------------------------------------------------------------------------------

/** Start a private sendmail and wait until it greets. */
export async function startSendmail(options: SendmailOptions): Promise<Sendmail> {
  if (sendmailMissing) throw new Error(sendmailMissing);
  const dir = await instanceDir(BASE_DIR);
  try {
    await mkdir(join(dir, 'queue'), { mode: 0o700 });
    for (const group of options.queueGroups ?? [])
      await mkdir(join(dir, 'queue', group), { mode: 0o700 });
    await writeFile(join(dir, 'hosts'), hostsFile(), { mode: 0o644 });
    await writeFile(join(dir, 'aliases'), '');
    await writeFile(
      join(dir, 'mailertable'),
      options.domains.map((d) => `${d}\tcustomer:[127.0.0.1]\n`).join(''),
    );
    if (options.tls) {
      await copyFile(join(TLS_DIR, 'localhost.pem'), join(dir, 'cert.pem'));
      await copyFile(join(TLS_DIR, 'localhost.key'), join(dir, 'key.pem'));
      await chmod(join(dir, 'key.pem'), 0o600);
    }
    return await startIn(dir, options);
  } catch (e) {
    await removeInstanceDir(dir, KEEP_ENV);
    throw e;
  }
}

/** A sendmail command in the private mount namespace (see the top). */
function inNamespace(dir: string, args: readonly string[]): [string, string[]] {
  return [
    'unshare',
    [
      '--mount',
      'sh',
      '-c',
      'mount --bind "$0" /etc/hosts && exec "$@"',
      join(dir, 'hosts'),
      binary,
      ...args,
    ],
  ];
}

async function startIn(dir: string, options: SendmailOptions): Promise<Sendmail> {
  const mc = join(dir, 'sendmail.mc');
  const cf = join(dir, 'sendmail.cf');
  const sendmail = (args: readonly string[], input?: string | Buffer) =>
    runWithInput(...inNamespace(dir, ['-C', cf, ...args]), input);
  const listing = async () => (await sendmail(['-bp'])).stdout;
  const count = (text: string) => {
    if (/queue is empty/i.test(text)) return 0;
    const total = /Total requests: (\d+)/.exec(text);
    return total ? Number(total[1]) : (text.match(/^[0-9A-Za-z]{14,}\*?\s+\d+/gm) ?? []).length;
  };

  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    await writeFile(mc, sendmailMc(dir, port, options));
    const { stdout: cfText } = await run(
      'm4',
      [`-D_CF_DIR_=${cfDir}/`, join(cfDir, 'm4', 'cf.m4'), mc],
      {
        timeout: COMMAND_TIMEOUT_MS,
        maxBuffer: 4 << 20,
      },
    );
    await writeFile(cf, cfText, { mode: 0o644 });
    // makemap reads the table on stdin and writes mailertable.db beside it.
    await runWithInput(
      join(root, 'usr', 'libexec', 'sendmail', 'makemap'),
      ['-C', cf, 'hash', join(dir, 'mailertable')],
      await readFile(join(dir, 'mailertable')),
    );
    const [command, argv] = inNamespace(dir, ['-C', cf, '-bD']);
    const daemon = await spawnDaemon(dir, command, argv);
    try {
      await pollFor(
        async () => ((await greets(port)) ? true : daemon.exited() ? false : undefined),
        START_TIMEOUT_MS,
        async () =>
          `sendmail did not greet on port ${port} within ${START_TIMEOUT_MS} ms: ${daemon.output().trim().slice(-600)}`,
      ).then((ok) => {
        if (!ok) throw new Error(`sendmail exited at start: ${daemon.output().trim().slice(-600)}`);
      });
    } catch (e) {
      await daemon.stop('SIGKILL');
      lastError = e as Error;
      if (!/address already in use/i.test(lastError.message)) break;
      continue;
    }
    let stopped = false;
    return {
      host: '127.0.0.1',
      port,
      dir,
      async hold(messages) {
        // -odq: queue only; -i: a line with a lone dot is text, not the end.
        for (const m of messages)
          await sendmail(['-odq', '-i', '-f', m.from, '--', ...m.to], m.data);
      },
      async queueCount() {
        return count(await listing());
      },
      waitForQueue(wanted) {
        return pollFor(
          async () => {
            const text = await listing();
            return count(text) === wanted ? text : undefined;
          },
          WAIT_TIMEOUT_MS,
          async () =>
            `sendmail's queue did not come to ${wanted} message(s) within ${WAIT_TIMEOUT_MS} ms:\n${await listing()}`,
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
  throw lastError ?? new Error('sendmail did not start');
}

/** Run a command with `input` on its stdin, bounded; resolves to its output. */
function runWithInput(command: string, args: readonly string[], input?: string | Buffer) {
  const pending = run(command, args, {
    timeout: COMMAND_TIMEOUT_MS,
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' },
    maxBuffer: 1 << 20,
  });
  // The command may exit before reading stdin (a listing reads none): a broken pipe is no news.
  pending.child.stdin?.on('error', () => undefined);
  pending.child.stdin?.end(input ?? '');
  return pending;
}

/** Whether a server on 127.0.0.1:port answers with a 220 greeting. */
function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let text = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2_000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (text.includes('\n')) {
        if (text.startsWith('220')) socket.end('QUIT\r\n');
        done(text.startsWith('220'));
      }
    });
  });
}
