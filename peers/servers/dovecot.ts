/**
 * A private Dovecot 2.3 (Debian's `dovecot-core` and `dovecot-lmtpd`, which install beside
 * Postfix) on loopback as the customer's mailbox server: LMTP (RFC 2033) on a unix socket and on
 * TCP, `deliver`'s target.
 *
 * Each startDovecot() runs its own master (`dovecot -F -c <dir>/dovecot.conf`, in the foreground,
 * its own process group) from a fresh folder under `<tmpdir>/dequeue-dovecot/`: base_dir run/
 * (its sockets; the LMTP socket is run/lmtp), state/, log/dovecot.log, a passwd-file of the
 * users, and each user's Maildir under home/<user>/Maildir. Every user's mail is owned by
 * `nobody`. `mail_save_crlf = yes` keeps each message as it came over LMTP, so a test can compare
 * a Maildir file byte for byte with what was sent.
 *
 * What it answers: each recipient after the final dot (RFC 2033 4.2), 550 for an unknown user,
 * 552 for a user over quota (the `quota` plugin, a per-user storage rule).
 *
 * Root only (the master starts its services as other users); without the package the tests fail
 * in CI and skip loudly elsewhere (test/servers/dovecot.ts).
 */
import { accessSync, constants } from 'node:fs';
import { chown, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './harness';
import { instanceDir, pollFor, removeInstanceDir, spawnDaemon, systemUser } from './private-daemon';

const KEEP_ENV = 'DEQUEUE_KEEP_DOVECOT';
const BASE_DIR = join(tmpdir(), 'dequeue-dovecot');
const START_TIMEOUT_MS = 20_000;
const BINARY_DIRS = ['/usr/sbin', '/usr/bin', '/usr/local/sbin'];

export interface MailboxUser {
  readonly name: string;
  /** Storage quota in bytes (Dovecot's `*:storage=`); no quota without it. */
  readonly quotaBytes?: number;
}

export interface DovecotOptions {
  /** The users (local parts) who have a mailbox; any other recipient is unknown (550). */
  readonly users: readonly MailboxUser[];
}

export interface Dovecot {
  readonly host: '127.0.0.1';
  /** LMTP over TCP. */
  readonly port: number;
  /** LMTP over a unix socket. */
  readonly socketPath: string;
  readonly dir: string;
  /** The messages in a user's Maildir (new/ and cur/), each file's bytes, in name order. */
  maildir(user: string): Promise<Buffer[]>;
  /** Dovecot's log so far. */
  log(): Promise<string>;
  /** Stop the master and its services, remove the folder (DEQUEUE_KEEP_DOVECOT=1 keeps it). */
  stop(): Promise<void>;
}

function findDovecot(): string | undefined {
  for (const dir of BINARY_DIRS) {
    try {
      accessSync(join(dir, 'dovecot'), constants.X_OK);
      accessSync('/usr/lib/dovecot/lmtp', constants.X_OK);
      return join(dir, 'dovecot');
    } catch {
      // not here
    }
  }
  return undefined;
}

const binary = findDovecot();

function missingReason(): string | undefined {
  if (!binary)
    return (
      'Dovecot is missing (no dovecot binary or /usr/lib/dovecot/lmtp): apt-get install dovecot-core dovecot-lmtpd ' +
      '(they install beside Postfix; .ci/run does it); the tests against a real LMTP server cannot run without it'
    );
  if (process.platform !== 'linux' || process.getuid?.() !== 0)
    return 'a private Dovecot master starts its services as other users: run the tests as root, as CI does';
  return undefined;
}

/** Why Dovecot cannot run here, or undefined when it can. */
export const dovecotMissing: string | undefined = missingReason();

function dovecotConf(dir: string, port: number): string {
  const users = join(dir, 'users');
  return `# Written by peers/servers/dovecot.ts for one test run.
base_dir = ${join(dir, 'run')}
state_dir = ${join(dir, 'state')}
log_path = ${join(dir, 'log', 'dovecot.log')}
protocols = lmtp
listen = 127.0.0.1
ssl = no
# Every user's mail is nobody's (uid 65534 on Debian); Dovecot refuses uids below this.
first_valid_uid = 1
mail_location = maildir:~/Maildir
# Each message as it came over LMTP, CRLF and all, for a byte-for-byte comparison.
mail_save_crlf = yes
mail_fsync = always
passdb {
  driver = passwd-file
  args = username_format=%n ${users}
}
# The local part names the user (alice@customer.test is alice).
userdb {
  driver = passwd-file
  args = username_format=%n ${users}
}
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${port}
  }
}
protocol lmtp {
  mail_plugins = quota
}
plugin {
  quota = maildir:User quota
}
`;
}

/** Start a private Dovecot and wait until its LMTP listeners are there. */
export async function startDovecot(options: DovecotOptions): Promise<Dovecot> {
  if (dovecotMissing || !binary) throw new Error(dovecotMissing ?? 'Dovecot is missing');
  const { uid, gid } = systemUser('nobody');
  const dir = await instanceDir(BASE_DIR);
  try {
    for (const sub of ['run', 'state', 'log', 'home']) await mkdir(join(dir, sub));
    await chown(join(dir, 'home'), uid, gid);
    await writeFile(
      join(dir, 'users'),
      options.users
        .map((u) => {
          const quota =
            u.quotaBytes === undefined ? '' : `userdb_quota_rule=*:storage=${u.quotaBytes}B`;
          return `${u.name}::${uid}:${gid}::${join(dir, 'home', u.name)}::${quota}\n`;
        })
        .join(''),
    );
    return await startIn(dir, binary);
  } catch (e) {
    await removeInstanceDir(dir, KEEP_ENV);
    throw e;
  }
}

async function startIn(dir: string, binary: string): Promise<Dovecot> {
  const config = join(dir, 'dovecot.conf');
  const logFile = join(dir, 'log', 'dovecot.log');
  const readLog = () => readFile(logFile, 'utf8').catch(() => '');
  const socketPath = join(dir, 'run', 'lmtp');
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    await writeFile(config, dovecotConf(dir, port));
    const daemon = await spawnDaemon(dir, binary, ['-F', '-c', config]);
    try {
      // The master writes "starting up" once every listener is bound (or exits when one cannot be).
      await pollFor(
        async () =>
          (await readLog()).includes('starting up') &&
          (await readdir(join(dir, 'run')).catch(() => [] as string[])).includes('lmtp')
            ? true
            : daemon.exited()
              ? false
              : undefined,
        START_TIMEOUT_MS,
        async () => `Dovecot did not start within ${START_TIMEOUT_MS} ms: ${await readLog()}`,
      ).then(async (ok) => {
        if (!ok)
          throw new Error(
            `Dovecot exited at start: ${daemon.output()} ${(await readLog()).slice(-600)}`,
          );
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
      socketPath,
      dir,
      async maildir(user) {
        const files: { name: string; path: string }[] = [];
        for (const sub of ['new', 'cur']) {
          const folder = join(dir, 'home', user, 'Maildir', sub);
          for (const name of await readdir(folder).catch(() => [] as string[]))
            files.push({ name, path: join(folder, name) });
        }
        files.sort((a, b) => a.name.localeCompare(b.name));
        return Promise.all(files.map((f) => readFile(f.path)));
      },
      log: readLog,
      async stop() {
        if (stopped) return;
        stopped = true;
        await daemon.stop();
        await removeInstanceDir(dir, KEEP_ENV);
      },
    };
  }
  throw lastError ?? new Error('Dovecot did not start');
}
