/** The command line (README "Signal your provider from a laptop"): flags, usage, and usage errors (exit status 2). */
import { parseFlags, UsageError } from './usage';

export { UsageError } from './usage';

/** The whole run's bound without --max-run-seconds: the ATRN reply wait (600 s) and 20 minutes of mail. */
export const DEFAULT_MAX_RUN_SECONDS = 1800;
/** Mail in flight (inboxes past their floor), all ATRN sessions of a run together, without --mail-memory. */
export const DEFAULT_MAIL_MEMORY_MIB = 256;
/** Free space the mail directory's file system keeps without --min-free-mib (mail-dir-space.ts). */
export const DEFAULT_MIN_FREE_MIB = 100;

export const USAGE = `Usage:
  dequeue --config FILE [options]           signal each due target once (a release cycle)
  dequeue config push | pull | diff ...     the configuration in SSM (dequeue config --help)
  dequeue status ...                        what the runs recorded (dequeue status --help)
  dequeue deliver ...                       stored ATRN mail to your server (dequeue deliver --help)
  dequeue help [COMMAND]                    this text, or a command's
  dequeue --version

A release cycle signals each due target of the configuration once: connects, optionally says
EHLO, STARTTLS and AUTH, and sends its release command (ETRN, QSND, ATRN, a FINGER line, or
nothing):

  dequeue --config FILE [--secrets FILE] [--state FILE] [--mail-dir DIR]
          [--target NAME]... [--force] [--dry-run] [--json] [--verbose]
          [--max-run-seconds SECONDS] [--mail-memory MIB] [--min-free-mib MIB]

  --config FILE    the configuration document (JSON; see README)
  --secrets FILE   JSON object: each auth.secretId -> {"username": "...", "password": "..."}
  --state FILE     the cycle counter and each target's status between runs (dequeue status);
                   without it, every run is cycle 1
  --mail-dir DIR   where mail received after ATRN is stored, one file per message
  --target NAME    work only this target (repeatable)
  --force          signal whatever the cycle count says, without advancing it
  --dry-run        validate and resolve everything (secrets, DNS); send nothing, count nothing
  --json           one JSON result per target per line on stdout; logs on stderr
  --verbose        the SMTP transcript on stderr, credentials redacted
  --max-run-seconds SECONDS
                   the longest the whole run may take (default ${DEFAULT_MAX_RUN_SECONDS}, i.e. 30 minutes):
                   sessions still open then are ended and reported temporary-failure; at
                   least each target's reply wait (timeoutSeconds, at most 30)
  --mail-memory MIB
                   memory for ATRN mail in flight, all sessions together (default ${DEFAULT_MAIL_MEMORY_MIB}):
                   when it is spent, providers are slowed down (TCP), never refused
  --min-free-mib MIB
                   free space the --mail-dir file system keeps (default ${DEFAULT_MIN_FREE_MIB}; 0: none):
                   below it, new mail gets 452 4.3.1 and stays with the provider
  -h, --help       this text

Exit status: 0 every due target ended signalled, no-mail or skipped; 1 a target failed;
2 a usage or configuration error, or the --state file in use by another run (nothing was sent);
130 / 143 after SIGINT / SIGTERM (the sessions ended properly, what finished recorded).`;

export interface CliOptions {
  readonly config: string;
  readonly secrets?: string;
  readonly state?: string;
  readonly mailDir?: string;
  readonly targets?: readonly string[];
  readonly force: boolean;
  readonly dryRun: boolean;
  readonly json: boolean;
  readonly verbose: boolean;
  /** The bound on the whole run, in seconds. */
  readonly maxRunSeconds: number;
  /** The run's in-flight mail memory budget, in MiB (--mail-memory). */
  readonly mailMemoryMiB: number;
  /** Free space the mail directory's file system keeps, in MiB (--min-free-mib); 0: none. */
  readonly minFreeMiB: number;
}

/** Parse argv (without node and script). Returns 'help' for --help. */
export function parseCli(argv: readonly string[]): CliOptions | 'help' {
  const values = parseFlags(argv, {
    config: { type: 'string' },
    secrets: { type: 'string' },
    state: { type: 'string' },
    'mail-dir': { type: 'string' },
    target: { type: 'string', multiple: true },
    force: { type: 'boolean', default: false },
    'dry-run': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
    'max-run-seconds': { type: 'string' },
    'mail-memory': { type: 'string' },
    'min-free-mib': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) return 'help';
  if (!values.config) throw new UsageError('--config FILE is required');
  if (values.force && values['dry-run'])
    throw new UsageError('--force and --dry-run cannot be used together');
  const maxRun = values['max-run-seconds'];
  const maxRunSeconds = maxRun === undefined ? DEFAULT_MAX_RUN_SECONDS : Number(maxRun);
  if (!/^\d+(\.\d+)?$/.test(maxRun ?? '1') || !(maxRunSeconds > 0) || maxRunSeconds > 86_400) {
    throw new UsageError(
      `--max-run-seconds ${maxRun}: must be a number of seconds, more than 0 and at most 86400`,
    );
  }
  const mailMemory = values['mail-memory'];
  const mailMemoryMiB = mailMemory === undefined ? DEFAULT_MAIL_MEMORY_MIB : Number(mailMemory);
  if (!/^\d+$/.test(mailMemory ?? '1') || !(mailMemoryMiB >= 1) || mailMemoryMiB > 1_048_576) {
    throw new UsageError(`--mail-memory ${mailMemory}: must be a whole number of MiB, at least 1`);
  }
  const minFree = values['min-free-mib'];
  const minFreeMiB = minFree === undefined ? DEFAULT_MIN_FREE_MIB : Number(minFree);
  if (!/^\d+$/.test(minFree ?? '0') || minFreeMiB > 1_048_576 * 1024) {
    throw new UsageError(`--min-free-mib ${minFree}: must be a whole number of MiB (0: no bound)`);
  }
  return {
    config: values.config,
    secrets: values.secrets,
    state: values.state,
    mailDir: values['mail-dir'],
    targets: values.target,
    force: values.force,
    dryRun: values['dry-run'],
    json: values.json,
    verbose: values.verbose,
    maxRunSeconds,
    mailMemoryMiB,
    minFreeMiB,
  };
}
