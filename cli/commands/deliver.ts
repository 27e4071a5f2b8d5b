/**
 * `dequeue deliver (--mail-dir DIR | --bucket NAME [--prefix mail/]) --to URL [--target NAME]...
 * [--dry-run] [--json] [--verbose]`: hands the mail that ATRN stored to a mail server, each
 * message with its own envelope (cli/delivery/deliver-run.ts). Exit status 0 when nothing failed
 * or was deferred, 1 otherwise, 2 for usage errors and a store that cannot be used.
 */
import { hostname } from 'node:os';
import { TARGET_NAME } from '../../lambda/core/config';
import { DequeueError } from '../../lambda/core/errors';
import type { Transcript } from '../../lambda/core/ports';
import { MailDirStore } from '../adapters/mail-dir-store';
import { parseDestination, type Destination } from '../delivery/destination';
import { deliverStored, type MessageReport } from '../delivery/deliver-run';
import type { MailStore } from '../delivery/mail-store';
import type { CliIo } from '../io';
import { parseFlags, UsageError, usageError } from '../usage';

export const DELIVER_USAGE = `Usage:
  dequeue deliver (--mail-dir DIR | --bucket NAME [--prefix mail/]) --to URL
                  [--target NAME]... [--dry-run] [--json] [--verbose]

Hands the mail that ATRN stored to your mail server, oldest first, each message with its own
envelope (MAIL FROM, every RCPT TO). A message leaves the store only once every recipient has a
final answer: all accepted, it moves to DIR/<target>/delivered/ (S3: it is deleted; the versioned
bucket keeps the old version); refused for good (5xx) for some, to DIR/<target>/failed/ (S3:
<prefix>failed/) with the server's replies beside it. A 4xx leaves it, or the recipients still
waiting, for the next run.

  --mail-dir DIR   the directory the CLI stored into (dequeue --mail-dir DIR)
  --bucket NAME    the S3 bucket the function stored into (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL)
  --prefix P       the key prefix in that bucket (default mail/)
  --to URL         smtp://host[:port] (STARTTLS when offered), smtps://host[:port],
                   lmtp://host:port, or lmtp:/path/to/socket (e.g. Dovecot's)
  --target NAME    only this target's mail (repeatable)
  --dry-run        list what would be delivered; connect to nothing, change nothing
  --json           one JSON object per message on stdout; logs on stderr
  --verbose        the SMTP transcript on stderr
  -h, --help       this text

Exit status: 0 nothing failed or was deferred; 1 something failed or was deferred; 2 a usage
error, or a store that cannot be used.`;

interface DeliverOptions {
  readonly mailDir?: string;
  readonly bucket?: string;
  readonly prefix: string;
  readonly destination: Destination;
  readonly targets?: readonly string[];
  readonly dryRun: boolean;
  readonly json: boolean;
  readonly verbose: boolean;
}

function parse(argv: readonly string[]): DeliverOptions | 'help' {
  const values = parseFlags(argv, {
    'mail-dir': { type: 'string' },
    bucket: { type: 'string' },
    prefix: { type: 'string' },
    to: { type: 'string' },
    target: { type: 'string', multiple: true },
    'dry-run': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) return 'help';
  if (!values['mail-dir'] === !values.bucket)
    throw new UsageError('give exactly one of --mail-dir DIR and --bucket NAME');
  if (values.prefix !== undefined && !values.bucket)
    throw new UsageError('--prefix goes with --bucket');
  if (!values.to) throw new UsageError('--to URL is required');
  for (const t of values.target ?? [])
    if (!TARGET_NAME.test(t)) throw new UsageError(`--target ${t}: not a target name`);
  let destination: Destination;
  try {
    destination = parseDestination(values.to);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const prefix = values.prefix ?? 'mail/';
  return {
    mailDir: values['mail-dir'],
    bucket: values.bucket,
    prefix: prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`,
    destination,
    targets: values.target,
    dryRun: values['dry-run'],
    json: values.json,
    verbose: values.verbose,
  };
}

/** Control characters as escapes, so that a server's text cannot drive the terminal. */
function visible(text: string): string {
  return text.replace(
    /[\x00-\x1f\x7f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

function line(r: MessageReport): string {
  const who = r.recipients
    .map(
      (p) =>
        `<${p.address}> ${p.code ?? '-'}${p.text ? ` ${visible(p.text.split('\n')[0]!)}` : ''}`,
    )
    .join('; ');
  return `${r.outcome.padEnd(9)} ${r.target}/${r.message}: ${who}${r.error ? ` (${visible(r.error)})` : ''}`;
}

/** Opens the S3 store reader; loaded only for --bucket (it pulls in the AWS SDK). */
async function s3Store(
  bucket: string,
  prefix: string,
  dryRun: boolean,
  notice: (text: string) => void,
): Promise<MailStore> {
  const { openS3MailStoreReader } = await import('../adapters/s3-mail-store-reader');
  return openS3MailStoreReader(bucket, prefix, { dryRun, notice });
}

export async function deliverCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const log = (text: string) => io.stderr.write(`dequeue deliver: ${text}\n`);
  let options: DeliverOptions;
  try {
    const parsed = parse(argv);
    if (parsed === 'help') {
      io.stdout.write(`${DELIVER_USAGE}\n`);
      return 0;
    }
    options = parsed;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    return usageError(io, 'dequeue deliver', e.message);
  }

  const transcript: Transcript = options.verbose
    ? {
        line: (label, direction, text) =>
          io.stderr.write(`[${label}] ${direction}: ${visible(text)}\n`),
      }
    : { line: () => undefined };
  const notice = (text: string) => log(visible(text));
  const store =
    io.openMailStore?.(options, notice) ??
    (options.mailDir
      ? new MailDirStore(options.mailDir)
      : await s3Store(options.bucket!, options.prefix, options.dryRun, notice));
  const tally = { delivered: 0, deferred: 0, failed: 0, pending: 0, skipped: 0 };
  try {
    await deliverStored(
      { targets: options.targets, dryRun: options.dryRun },
      {
        store,
        destination: options.destination,
        helloName: hostname(),
        tlsCa: io.tlsCa,
        transcript,
        onReport: (r) => {
          tally[r.outcome]++;
          io.stdout.write(options.json ? `${JSON.stringify(r)}\n` : `${line(r)}\n`);
          if (r.outcome === 'failed')
            log(`message ${r.message} (${r.target}) FAILED: ${visible(r.error ?? '')}`);
        },
        onNotice: notice,
        onSkipped: () => void tally.skipped++,
      },
    );
  } catch (e) {
    if (e instanceof DequeueError && e.kind === 'config') {
      log(e.message);
      return 2;
    }
    if (e instanceof DequeueError) {
      log(`${store.name}: ${e.message}`);
      return 1;
    }
    throw e;
  }
  const total = tally.delivered + tally.deferred + tally.failed + tally.pending;
  log(
    options.dryRun
      ? `dry run: ${tally.pending} message(s) would go to ${options.destination.display}`
      : `${total} message(s) from ${store.name} to ${options.destination.display}: ${tally.delivered} delivered, ${tally.deferred} deferred, ${tally.failed} failed${tally.skipped ? `; ${tally.skipped} left to another run` : ''}`,
  );
  return tally.deferred || tally.failed ? 1 : 0;
}
