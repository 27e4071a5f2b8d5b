/** What every CLI command writes to and may be given by a test: the streams and the local stores. */
import type { ConfigDocument } from '../lambda/core/config';
import type { MemoryBudget } from '../lambda/core/memory-budget';
import type { MailReceiver } from '../lambda/core/ports';
import type { MxResolver } from '../lambda/core/precheck/mx-servers';
import type { MailStore } from './delivery/mail-store';
import type { AwsClientSettings } from '../lambda/deployed-adapters';
import { type CommandStop, watchStopSignals } from './stop-signals';

export interface CliIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  /** Extra trusted CA (PEM) for provider certificates; tests use it. */
  readonly tlsCa?: string;
  /** Host resolution for --dry-run; default the system resolver (tests resolve example names). */
  readonly resolveHost?: (host: string) => Promise<void>;
  /** MX lookups for `"precheck": "mx"`; default the system resolver (tests give their own). */
  readonly resolveMx?: MxResolver;
  /**
   * Opens the mail store for --mail-dir (ATRN), with each target's mail settings. With `dryRun`
   * it only checks that the directory could be used (writable, or creatable) and changes nothing.
   * `memory` is the run's budget for mail in flight (--mail-memory).
   */
  readonly openMailDir?: (
    dir: string,
    config: ConfigDocument,
    dryRun: boolean,
    memory?: MemoryBudget,
    /** The free space its file system keeps (--min-free-mib; cli/adapters/mail-dir-space.ts). */
    space?: { readonly minFreeBytes: number },
  ) => Promise<MailReceiver>;
  /**
   * `deliver`: the store to read instead of the one the flags name (tests: S3 on moto_server).
   * `notice` writes one line for the operator on stderr (an orphan removed, a claim lost).
   */
  readonly openMailStore?: (
    from: {
      readonly mailDir?: string;
      readonly bucket?: string;
      readonly prefix: string;
      readonly dryRun: boolean;
    },
    notice: (text: string) => void,
  ) => MailStore | undefined;
  /**
   * Merged into every AWS SDK client of `config` and `status --table` (tests: moto_server's
   * endpoint, region and dummy credentials). Absent: the SDK's usual chain (AWS_PROFILE,
   * AWS_REGION, AWS_ENDPOINT_URL, ...).
   */
  readonly aws?: AwsClientSettings;
  /**
   * SIGINT/SIGTERM for the duration of a run or a `deliver` (cli/stop-signals.ts); `say` writes the
   * operator's line. Absent (tests in the test's own process): no signal is watched.
   */
  readonly watchStop?: (say: (line: string) => void) => CommandStop;
  /** `deliver`'s clock for the give-up time (tests: a clock days ahead); default the system's. */
  readonly now?: () => Date;
  /** How long a run waits for another run's lock on its --state file (default 15 s; tests: less). */
  readonly stateLockWaitMs?: number;
}

export const processIo: CliIo = {
  stdout: process.stdout,
  stderr: process.stderr,
  watchStop: (say) => watchStopSignals(say),
  // docs/odmr.md: one file per message under DIR/<target>/, its envelope beside it.
  // The receiving side (the session, the sink, node:tls) is loaded when a run opens the mail
  // directory, not for every command: `deliver` and `status` never receive (bin/dequeue.js bundles
  // each dynamic import as a chunk of its own).
  openMailDir: async (dir, config, dryRun, memory, space) => {
    const [{ checkMailDir, openMailDir }, { createMailDirSink }, { mailReceiverFor }] =
      await Promise.all([
        import('./adapters/mail-dir-root'),
        import('./adapters/mail-dir-sink'),
        import('../lambda/mail-receiver'),
      ]);
    if (dryRun) await checkMailDir(dir);
    const sink = dryRun ? createMailDirSink(dir, space) : await openMailDir(dir, space);
    return mailReceiverFor(sink, config.settings, undefined, memory, config.targets)!;
  },
};
