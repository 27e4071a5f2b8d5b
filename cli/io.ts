/** What every CLI command writes to and may be given by a test: the streams and the local stores. */
import type { Settings } from '../lambda/core/config';
import type { MailReceiver } from '../lambda/core/ports';
import { openMailDir } from './adapters/mail-dir-sink';
import { mailReceiverFor } from '../lambda/mail-receiver';

export interface CliIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  /** Extra trusted CA (PEM) for provider certificates; tests use it. */
  readonly tlsCa?: string;
  /** Host resolution for --dry-run; default the system resolver (tests resolve example names). */
  readonly resolveHost?: (host: string) => Promise<void>;
  /** Opens the mail store for --mail-dir (ATRN), with the limits and relay of settings.mail. */
  readonly openMailDir?: (dir: string, settings: Settings) => Promise<MailReceiver>;
}

export const processIo: CliIo = {
  stdout: process.stdout,
  stderr: process.stderr,
  // docs/odmr.md: one file per message under DIR/<target>/, its envelope beside it.
  openMailDir: async (dir, settings) => mailReceiverFor(await openMailDir(dir), settings)!,
};
