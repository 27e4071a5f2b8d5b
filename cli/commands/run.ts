/**
 * The local runner: the same core as the Lambda, with file adapters (README "Signal your provider from a laptop").
 * Everything is validated before anything is sent: the configuration file whole, the --target
 * names, every secret a due target needs, and a --mail-dir for ATRN targets.
 */
import { dnsMxResolver } from '../../lambda/adapters/dns-mx-resolver';
import { readFile } from 'node:fs/promises';
import {
  parseConfigDocument,
  parseJsonText,
  verbOf,
  type ConfigDocument,
  type Target,
} from '../../lambda/core/config';
import { ConfigError, ConfigErrors, DequeueError } from '../../lambda/core/errors';
import { didYouMean } from '../../lambda/core/config-issues';
import { MemoryBudget, MiB } from '../../lambda/core/memory-budget';
import type { CycleCounter, MailReceiver, Transcript } from '../../lambda/core/ports';
import { isFailure, type Outcome, type TargetResult } from '../../lambda/core/result';
import { runCycle } from '../../lambda/core/run-cycle';
import { DEFAULT_REPLY_TIMEOUT_MS, replyTimeoutMs } from '../../lambda/core/smtp/timeouts';
import { startsInTime } from '../../lambda/core/work-targets';
import type { CliIo } from '../io';
import type { CommandStop } from '../stop-signals';
import { SecretsFile } from '../adapters/secrets-file';
import { MemoryCounter, StateFile } from '../adapters/state-file';
import { mib, statfsFreeBytes } from '../adapters/mail-dir-space';
import { StateLock } from '../adapters/state-lock';
import { parseCli, UsageError, USAGE, type CliOptions } from '../args';
import { usageError } from '../usage';
import { resultBlock } from '../result-lines';
import { printable } from '../terminal-text';
import { unreadableBecause } from '../file-errors';

/**
 * A run's lock names the time it is bound to have ended (its deadline) plus this: the statuses
 * are written after the deadline, and past it the lock is stale for any run that finds it.
 */
const LOCK_MARGIN_MS = 5 * 60_000;

/** `dequeue --config FILE ...`: one release cycle; resolves to the exit status. */
export async function runCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const log = (line: string) => io.stderr.write(`dequeue: ${line}\n`);
  let options: CliOptions;
  try {
    const parsed = parseCli(argv);
    if (parsed === 'help') {
      io.stdout.write(`${USAGE}\n`);
      return 0;
    }
    options = parsed;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    return usageError(io, 'dequeue', e.message);
  }

  // The whole run's bound (--max-run-seconds): every session ends by then, whatever the peer does.
  const deadline = Date.now() + options.maxRunSeconds * 1000;
  let prepared: Awaited<ReturnType<typeof prepare>>;
  try {
    prepared = await prepare(options, io);
  } catch (e) {
    if (e instanceof DequeueError && e.kind === 'config') {
      // Every error of the file at once, one line each, each naming the file and the field.
      for (const error of e instanceof ConfigErrors ? e.errors : [e]) log(printable(error.message));
      if (e instanceof ConfigErrors)
        log(
          `${e.errors.length} errors${e.errors.every((x) => x.where === e.where) ? ` in ${e.where}` : ''}; nothing was sent`,
        );
      return 2;
    }
    throw e;
  }
  if (prepared.config.targets.length === 0) {
    log(`${options.config} has no targets: nothing to signal, no cycle counted`);
    return 0;
  }

  // One run per state file (state-lock.ts): taken before the count, held until the last status.
  let lock: StateLock | undefined;
  if (options.state && !options.dryRun) {
    try {
      lock = await StateLock.acquire(options.state, {
        until: deadline + LOCK_MARGIN_MS,
        waitMs: io.stateLockWaitMs,
        onWait: (holder) => log(`${options.state} is in use by another run (${holder}); waiting`),
      });
    } catch (e) {
      if (e instanceof DequeueError && e.kind === 'config') {
        log(printable(e.message));
        return 2;
      }
      throw e;
    }
  }
  // SIGINT/SIGTERM from here on end the run properly (cli/stop-signals.ts); a second one exits
  // at once, the lock removed first.
  const stop = io.watchStop?.(log);
  const forgetLock = lock && stop?.onForcedExit(() => lock.releaseSync());
  try {
    return await workCycle(options, prepared, io, deadline, stop);
  } finally {
    forgetLock?.();
    stop?.dispose();
    await lock?.release();
  }
}

/** The cycle itself, its results printed as they come; resolves to the exit status. */
async function workCycle(
  options: CliOptions,
  { config, secrets, counter, receiver }: Awaited<ReturnType<typeof prepare>>,
  io: CliIo,
  deadline: number,
  stop: CommandStop | undefined,
): Promise<number> {
  const log = (line: string) => io.stderr.write(`dequeue: ${line}\n`);
  const transcript: Transcript | undefined = options.verbose
    ? {
        line: (target, direction, text) =>
          io.stderr.write(`[${target}] ${direction}: ${printable(text)}\n`),
      }
    : undefined;
  const print = (r: TargetResult) =>
    io.stdout.write(options.json ? `${JSON.stringify(r)}\n` : `${resultBlock(r)}\n`);

  let result;
  try {
    result = await runCycle(
      { ...config, invalid: [] },
      {
        force: options.force,
        dryRun: options.dryRun,
        targets: options.targets,
        deadline,
        stop: stop?.signal,
      },
      {
        credentials: secrets,
        counter,
        receiver,
        transcript,
        tlsCa: io.tlsCa,
        resolveHost: io.resolveHost,
        resolveMx: io.resolveMx ?? dnsMxResolver(),
        onResult: print,
        // With --state each target's status is kept beside the counter (`dequeue status`).
        status: counter instanceof StateFile ? counter : undefined,
        onStatusError: (target, e) =>
          log(`${target}: status not recorded in ${options.state}: ${e.message}`),
      },
    );
  } catch (e) {
    // Only the counter can fail here (an unreadable --state file): nothing was sent.
    if (e instanceof DequeueError && e.kind === 'config') {
      log(e.message);
      return 2;
    }
    throw e;
  }

  const tally = new Map<Outcome, number>();
  for (const r of result.results) tally.set(r.outcome, (tally.get(r.outcome) ?? 0) + 1);
  const summary = [...tally].map(([outcome, n]) => `${n} ${outcome}`).join(', ') || 'no targets';
  const stopped =
    stop?.exitStatus !== undefined ? `; stopped by ${String(stop.signal.reason)}` : '';
  log(
    `cycle ${result.cycle}${options.force ? ' (forced, not counted)' : options.dryRun ? ' (dry run, not counted)' : ''}: ${summary}${stopped}`,
  );
  if (stop?.exitStatus !== undefined) return stop.exitStatus;
  return result.results.some((r) => isFailure(r.outcome)) ? 1 : 0;
}

async function prepare(options: CliOptions, io: CliIo) {
  let text: string;
  try {
    text = await readFile(options.config, 'utf8');
  } catch (e) {
    throw new ConfigError(
      options.config,
      '',
      `cannot read the configuration file: ${unreadableBecause(e)}`,
      { cause: e },
    );
  }
  const config: ConfigDocument = parseConfigDocument(
    parseJsonText(text, options.config),
    options.config,
  );

  const names = new Set(config.targets.map((t) => t.name));
  for (const name of options.targets ?? []) {
    if (!names.has(name))
      throw new ConfigError(
        options.config,
        '',
        `--target ${name}: no target of that name (${targetsHint(name, [...names])})`,
      );
  }
  const wanted = options.targets ? new Set(options.targets) : null;
  const selected = config.targets
    .map((t, i) => [t, i] as const)
    .filter(([t]) => t.enabled && (!wanted || wanted.has(t.name)));

  // A target starts only when one whole reply still fits before the run's deadline (work-targets.ts:
  // its timeoutSeconds, at most the default 30 s): with less, it would never start, in any cycle.
  const replySeconds = (t: Target) =>
    Math.min(replyTimeoutMs(t.timeoutSeconds), DEFAULT_REPLY_TIMEOUT_MS) / 1000;
  const starved = selected.filter(([t]) => !startsInTime(t, 0, options.maxRunSeconds * 1000));
  if (starved.length) {
    const [[t, i]] = starved as [readonly [Target, number]];
    const floor = Math.max(...starved.map(([x]) => replySeconds(x)));
    throw new ConfigError(
      '--max-run-seconds',
      '',
      `${options.maxRunSeconds}: too short for "${t.name}" (targets[${i}])${starved.length > 1 ? ` and ${starved.length - 1} other target(s)` : ''}, which waits up to ${replySeconds(t)} s for a reply: a target starts only when one reply fits in the run, so it would never start; give at least ${floor}, or lower its timeoutSeconds`,
    );
  }

  const secrets = options.secrets
    ? await SecretsFile.load(options.secrets, (line) => io.stderr.write(`dequeue: ${line}\n`))
    : SecretsFile.empty();
  // Every missing secret at once, not one per run.
  const missing: ConfigError[] = [];
  for (const [t, i] of selected) {
    if (!t.auth) continue;
    if (!options.secrets)
      missing.push(
        new ConfigError(
          options.config,
          `targets[${i}].auth.secretId`,
          `"${t.auth.secretId}" needs --secrets FILE`,
        ),
      );
    else if (!secrets.has(t.auth.secretId)) {
      missing.push(
        new ConfigError(
          options.secrets,
          '',
          `no secret "${t.auth.secretId}" (needed by targets[${i}].auth.secretId in ${options.config})${secretsHint(t.auth.secretId, secrets.ids())}`,
        ),
      );
    }
  }
  if (missing.length) throw missing.length === 1 ? missing[0]! : new ConfigErrors(missing);

  const atrn = selected.find(([t]) => isAtrn(t));
  let receiver: MailReceiver | undefined;
  if (atrn) {
    if (!options.mailDir)
      throw new ConfigError(
        options.config,
        `targets[${atrn[1]}].command`,
        'ATRN pulls mail: give --mail-dir DIR to store it',
      );
    if (!io.openMailDir)
      throw new ConfigError(
        options.config,
        `targets[${atrn[1]}].command`,
        'this build cannot store mail for ATRN',
      );
    const minFreeBytes = options.minFreeMiB * MiB;
    receiver = await io.openMailDir(
      options.mailDir,
      config,
      options.dryRun,
      new MemoryBudget(options.mailMemoryMiB * MiB),
      { minFreeBytes },
    );
    // Said at the start, not only in the result: the disk needs someone's attention.
    const free = await statfsFreeBytes(options.mailDir).catch(() => undefined);
    if (free !== undefined && minFreeBytes > 0 && free < minFreeBytes)
      io.stderr.write(
        `dequeue: --mail-dir ${options.mailDir} has ${mib(free)} free, less than the ${mib(minFreeBytes)} it keeps (--min-free-mib): ATRN mail is refused with 452 4.3.1 and stays with the providers until space is freed\n`,
      );
  }

  let counter: CycleCounter;
  if (options.state) {
    const file = new StateFile(options.state);
    await file.peek(); // an unreadable state file is a configuration error, found before sending
    await file.checkWritable(); // and so is one that could not be updated (forced runs record statuses)
    counter = file;
  } else {
    counter = new MemoryCounter();
    const spaced = selected.find(([t]) => (t.everyNthCycle ?? config.settings.everyNthCycle) > 1);
    if (spaced && !options.force) {
      io.stderr.write(
        `dequeue: no --state file: this run counts as cycle 1, so "${spaced[0].name}" is due although it signals only every Nth cycle\n`,
      );
    }
  }
  return { config, secrets, counter, receiver };
}

function isAtrn(target: Target): boolean {
  return target.protocol === 'smtp' && target.commands.some((c) => verbOf(c) === 'ATRN');
}

/** A secretId missing from the secrets file: the one meant, or the ones there when few. */
function secretsHint(id: string, ids: readonly string[]): string {
  const meant = didYouMean(id, ids);
  if (meant) return `: did you mean "${meant}"?`;
  if (ids.length === 0) return ': the file holds no secrets';
  return ids.length <= 10 ? `: the file holds ${ids.map((x) => `"${x}"`).join(', ')}` : '';
}

/** The target meant, and the names there are (a few; a document may hold thousands). */
function targetsHint(name: string, names: readonly string[]): string {
  const meant = didYouMean(name, names);
  const shown = names.length > 10 ? `${names.slice(0, 10).join(', ')}, ...` : names.join(', ');
  return `${meant ? `did you mean ${meant}? ` : ''}known: ${shown || 'none'}`;
}
