/**
 * `dequeue deliver (--mail-dir DIR | --bucket NAME [--prefix mail/]) --to URL [--target NAME]...
 * [--dry-run] [--json] [--verbose] [--connections N] [--tls MODE] [--tls-verify |
 * --no-tls-verify] [--tls-ca FILE] ...`: hands the mail that ATRN stored to a mail server, each
 * message with its own envelope (cli/delivery/deliver-run.ts). Exit status 0 when nothing failed
 * or was deferred, 1 otherwise, 2 for usage errors and a store that cannot be used, 75 when
 * mail was left to another run and nothing else went wrong, 130 / 143
 * after SIGINT / SIGTERM (cli/stop-signals.ts: the messages on the wire finished, no further one
 * started, the locks removed).
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { TlsMode } from '../../lambda/core/config';
import { didYouMean } from '../../lambda/core/config-issues';
import { DequeueError } from '../../lambda/core/errors';
import { TARGET_NAME } from '../../lambda/core/config-names';
import type { Transcript } from '../../lambda/core/ports';
import { caBundleProblem, type TlsPolicy } from '../../lambda/core/smtp/tls-policy';
import { MailDirStore } from '../adapters/mail-dir-store';
import { unreadableBecause } from '../file-errors';
import type { DeliveryTimeouts } from '../delivery/delivery-options';
import { parseDestination, type Destination } from '../delivery/destination';
import { deliveryTls, TLS_MODES } from '../delivery/delivery-tls';
import { deliverStored } from '../delivery/deliver-run';
import type { MessageReport } from '../delivery/message-report';
import type { MailStore } from '../delivery/mail-store';
import { type DomainsOf, domainsFromConfig } from '../delivery/recipient-gate';
import { DEFAULT_CONNECTIONS, MAX_CONNECTIONS } from '../delivery/run-connection';
import type { CliIo } from '../io';
import { parseFlags, UsageError, usageError } from '../usage';
import { DELIVER_USAGE } from './deliver-usage';
import { awsClientComing } from '../version';
import { type BounceFlags, bounceFlags, bounceSettings, dsnWords } from './deliver-bounce';

export { DELIVER_USAGE } from './deliver-usage';

interface DeliverOptions {
  readonly mailDir?: string;
  readonly bucket?: string;
  readonly prefix: string;
  readonly destination: Destination;
  readonly targets?: readonly string[];
  readonly dryRun: boolean;
  readonly json: boolean;
  readonly verbose: boolean;
  readonly heloName: string;
  /** --timeout: every wait for the server, in ms; undefined: RFC 5321's. */
  readonly timeoutMs?: number;
  readonly connections: number;
  /** --tls, --tls-verify / --no-tls-verify, --tls-ca, with the destination's defaults. */
  readonly tls: TlsPolicy;
  /** --config: the targets' domains (cli/delivery/recipient-gate.ts). */
  readonly domainsOf?: DomainsOf;
  /** --bounce-via (default the --to server) and --give-up-after. */
  readonly bounce: BounceFlags;
}

/** A host name (letters, digits, hyphens, dots) or an address literal (RFC 5321 4.1.3). */
const HELO_NAME =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?|\[[0-9A-Fa-f:.]+\]|\[IPv6:[0-9A-Fa-f:.]+\])$/;

/** --tls-ca FILE: its certificates, or a usage error naming the file. */
async function readCa(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new UsageError(`--tls-ca ${file}: ${unreadableBecause(e)}`);
  }
  const problem = caBundleProblem(text);
  if (problem) throw new UsageError(`--tls-ca ${file}: ${problem}`);
  return text;
}

/** --config FILE: the targets' domains; an unreadable or invalid file is a usage error. */
async function configDomains(file: string): Promise<DomainsOf> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new UsageError(`--config ${file}: ${unreadableBecause(e)}`);
  }
  // Loaded only here: the configuration's schemas (valibot) cost a start without --config ~10 ms.
  const { parseConfigDocument, parseJsonText } = await import('../../lambda/core/config');
  try {
    return domainsFromConfig(parseConfigDocument(parseJsonText(text, file), file));
  } catch (e) {
    if (e instanceof DequeueError) throw new UsageError(e.message);
    throw e;
  }
}

/** The TLS flags, checked against each other and the destination (delivery-tls.ts). */
async function tlsPolicy(
  values: {
    readonly tls?: string;
    readonly 'tls-verify'?: boolean;
    readonly 'no-tls-verify'?: boolean;
    readonly 'tls-ca'?: string;
  },
  destination: Destination,
): Promise<TlsPolicy> {
  const mode = values.tls;
  if (mode !== undefined && !(TLS_MODES as readonly string[]).includes(mode))
    throw new UsageError(`--tls ${mode}: must be none, opportunistic, required or implicit`);
  if (values['tls-verify'] && values['no-tls-verify'])
    throw new UsageError('--tls-verify and --no-tls-verify: give one of them');
  const verify = values['tls-verify'] ? true : values['no-tls-verify'] ? false : undefined;
  const choice = { mode: mode as TlsMode | undefined, verify };
  const check = (ca?: string) => {
    try {
      return deliveryTls(destination, { ...choice, ...(ca !== undefined ? { ca } : {}) });
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  };
  const file = values['tls-ca'];
  if (file === undefined) return check();
  // The flags' consistency first: a file that need not be read is not asked for.
  check('');
  return check(await readCa(file));
}

async function parse(argv: readonly string[]): Promise<DeliverOptions | 'help'> {
  const values = parseFlags(argv, {
    'mail-dir': { type: 'string' },
    bucket: { type: 'string' },
    prefix: { type: 'string' },
    to: { type: 'string' },
    target: { type: 'string', multiple: true },
    'dry-run': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
    'helo-name': { type: 'string' },
    timeout: { type: 'string' },
    connections: { type: 'string' },
    tls: { type: 'string' },
    'tls-verify': { type: 'boolean' },
    'no-tls-verify': { type: 'boolean' },
    'tls-ca': { type: 'string' },
    config: { type: 'string' },
    'give-up-after': { type: 'string' },
    'bounce-via': { type: 'string' },
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
  const heloName = values['helo-name'] ?? hostname();
  if (values['helo-name'] !== undefined && !HELO_NAME.test(heloName))
    throw new UsageError(
      `--helo-name ${heloName}: must be a host name (mx.example.com) or an address literal ([192.0.2.1])`,
    );
  const timeout = values.timeout;
  if (timeout !== undefined && (!/^\d+(\.\d+)?$/.test(timeout) || !(Number(timeout) > 0)))
    throw new UsageError(`--timeout ${timeout}: must be a number of seconds, more than 0`);
  const connections = values.connections ?? String(DEFAULT_CONNECTIONS);
  if (
    !/^\d+$/.test(connections) ||
    Number(connections) < 1 ||
    Number(connections) > MAX_CONNECTIONS
  )
    throw new UsageError(
      `--connections ${connections}: must be a whole number from 1 to ${MAX_CONNECTIONS}`,
    );
  const tls = await tlsPolicy(values, destination);
  const domainsOf = values.config === undefined ? undefined : await configDomains(values.config);
  const bounce = bounceFlags(values, destination);
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
    heloName,
    timeoutMs: timeout === undefined ? undefined : Math.min(Number(timeout), 86_400) * 1000,
    connections: Number(connections),
    tls,
    ...(domainsOf ? { domainsOf } : {}),
    bounce,
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
        // A recipient that got no reply carries the run's error as its text: said once, at the end.
        `<${p.address}> ${p.code ?? '-'}${p.text && !(p.code === null && p.text === r.error) ? ` ${visible(p.text.split('\n')[0]!)}` : ''}`,
    )
    .join('; ');
  return `${r.outcome.padEnd(9)} ${r.target}/${r.message}: ${who}${r.error ? ` (${visible(r.error)})` : ''}${dsnWords(r.dsn, visible)}`;
}

/** --timeout: every wait for the server; QUIT keeps its own short bound. */
function waitsOf(ms: number): Partial<DeliveryTimeouts> {
  return {
    connect: ms,
    greeting: ms,
    command: ms,
    dataStart: ms,
    dataBlock: ms,
    finalDot: ms,
  };
}

/** Opens the S3 store reader; loaded only for --bucket (it pulls in the AWS SDK). */
async function s3Store(
  bucket: string,
  prefix: string,
  dryRun: boolean,
  notice: (text: string) => void,
): Promise<MailStore> {
  const { openS3MailStoreReader } = await import('../adapters/s3-mail-store-reader');
  awsClientComing();
  return openS3MailStoreReader(bucket, prefix, { dryRun, notice });
}

export async function deliverCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const log = (text: string) => io.stderr.write(`dequeue deliver: ${text}\n`);
  let options: DeliverOptions;
  try {
    const parsed = await parse(argv);
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
  /** Each line once: with several connections, each would say the same (cleartext, say). */
  const noticed = new Set<string>();
  const notice = (text: string) => {
    if (noticed.has(text)) return;
    noticed.add(text);
    log(visible(text));
  };
  const store =
    io.openMailStore?.(options, notice) ??
    (options.mailDir
      ? new MailDirStore(options.mailDir)
      : await s3Store(options.bucket!, options.prefix, options.dryRun, notice));
  // A mistyped --target would deliver nothing and look like success (the run command exits 2 for
  // the same mistake). A mail directory keeps a folder per target, so a name without one is a
  // typo (exit 2); in S3 a target whose mail was all delivered has nothing left: said, not refused.
  if (options.targets && store.storedTargets) {
    const stored = await store.storedTargets().catch(() => undefined);
    const missing = stored && options.targets.find((t) => !stored.names.includes(t));
    if (stored && missing !== undefined) {
      const meant = didYouMean(missing, stored.names);
      const known = `${meant ? `did you mean ${meant}? ` : ''}stored targets: ${stored.names.join(', ') || 'none'}`;
      if (stored.lasting) {
        await store.close();
        return usageError(
          io,
          'dequeue deliver',
          `--target ${missing}: no mail of that target was ever stored in ${options.mailDir ?? store.name} (${known})`,
        );
      }
      notice(
        `--target ${missing}: nothing of that target is stored in ${store.name} now (${known})`,
      );
    }
  }
  const tally = { delivered: 0, deferred: 0, failed: 0, pending: 0, skipped: 0, dsns: 0 };
  // SIGINT/SIGTERM from here on: no further message, the ones on the wire finished, the store
  // closed (its locks removed); a second one exits at once, the mail directory's locks removed.
  const stop = io.watchStop?.(log);
  const forgetLocks = store.releaseSync && stop?.onForcedExit(() => store.releaseSync!());
  let notStarted = 0;
  const timeouts = options.timeoutMs === undefined ? undefined : waitsOf(options.timeoutMs);
  try {
    await deliverStored(
      { targets: options.targets, dryRun: options.dryRun, stop: stop?.signal },
      {
        store,
        destination: options.destination,
        helloName: options.heloName,
        timeouts,
        tls: options.tls,
        tlsCa: io.tlsCa,
        transcript,
        connections: options.connections,
        domainsOf: options.domainsOf,
        onReport: (r) => {
          tally[r.outcome]++;
          io.stdout.write(options.json ? `${JSON.stringify(r)}\n` : `${line(r)}\n`);
          if (r.outcome === 'failed')
            log(`message ${r.message} (${r.target}) FAILED: ${visible(r.error ?? '')}`);
          if (r.dsn?.outcome === 'sent') tally.dsns++;
        },
        onNotice: notice,
        onSkipped: () => void tally.skipped++,
        onStopped: (n) => void (notStarted = n),
        bounce: bounceSettings(options.bounce, {
          to: options.destination,
          toTls: options.tls,
          connection: {
            helloName: options.heloName,
            tlsCa: io.tlsCa,
            transcript,
            timeouts,
            onNotice: notice,
          },
          now: io.now,
        }),
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
  } finally {
    forgetLocks?.();
    stop?.dispose();
  }
  const total = tally.delivered + tally.deferred + tally.failed + tally.pending;
  const stopped =
    stop?.exitStatus !== undefined
      ? `; stopped by ${String(stop.signal.reason)}: ${notStarted} message(s) not started, left for the next run`
      : '';
  log(
    options.dryRun
      ? `dry run: ${tally.pending} message(s) would go to ${options.destination.display}${stopped}`
      : `${total} message(s) from ${store.name} to ${options.destination.display}: ${tally.delivered} delivered, ${tally.deferred} deferred, ${tally.failed} failed${tally.dsns ? `; ${tally.dsns} DSN(s) sent` : ''}${tally.skipped ? `; ${tally.skipped} left to another run` : ''}${stopped}`,
  );
  if (stop?.exitStatus !== undefined) return stop.exitStatus;
  if (tally.deferred || tally.failed) return 1;
  // Mail left to another run was not delivered by this one: a run that only ever leaves it (a
  // lock that is never broken, a claim that stays) must not look like success.
  return tally.skipped ? EXIT_LEFT_TO_ANOTHER_RUN : 0;
}

/** Nothing failed, but mail was left to another run (sysexits.h EX_TEMPFAIL: try again later). */
export const EXIT_LEFT_TO_ANOTHER_RUN = 75;
