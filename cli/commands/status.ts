/**
 * `dequeue status (--state FILE | --table NAME) [--target NAME]... [--json]`: what the runs
 * recorded for each target (lambda/core/target-status.ts), from the CLI's state file or from the
 * deployed function's DynamoDB table.
 *
 * Exit status: 0 no target shown is failing; 1 some target shown is failing (its last worked
 * cycle failed), so that `dequeue status --table T || notify` works in a script; 2 a usage error
 * or the status could not be read (no such file or table, access denied), or a --target no run
 * has recorded, or none at all: its health is unknown (a typo, a target or a deployment not
 * worked yet), never "healthy".
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { stat } from 'node:fs/promises';
import { DynamoDbStatusStore } from '../../lambda/adapters/dynamodb-status';
import { didYouMean } from '../../lambda/core/config-issues';
import { ConfigError, DequeueError } from '../../lambda/core/errors';
import { neverRun, statusFields, type RecordedStatus } from '../../lambda/core/target-status';
import { StateFile } from '../adapters/state-file';
import { awsClientOptions } from '../aws-clients';
import type { CliIo } from '../io';
import { parseFlags, UsageError, usageError } from '../usage';
import { statusTable } from './status-table';

export const STATUS_USAGE = `Usage:
  dequeue status (--state FILE | --table NAME) [--target NAME]... [--json]

Shows, for each target, what the runs recorded: the last outcome and when, the last success,
how many cycles in a row it has failed and since when, the last error, the messages stored.

  --state FILE    the CLI's state file (dequeue --state FILE)
  --table NAME    the deployed function's DynamoDB table (its counter table); AWS access follows
                  the SDK's usual chain (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL)
  --target NAME   only this target (repeatable); one no run has recorded shows as "never run"
                  and makes the exit status 2 (its health is unknown)
  --json          one JSON object per target per line
  -h, --help      this text

Exit status: 0 no target shown is failing; 1 a target is failing; 2 a usage error, the status
could not be read, nothing recorded yet, or a --target no run has recorded.`;

/** GetItem calls at once for --table with --target. */
const READ_CONCURRENCY = 10;

export async function statusCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const fail = (message: string): number => {
    io.stderr.write(`dequeue status: ${message}\n`);
    return 2;
  };
  let values;
  try {
    values = parseFlags(argv, {
      state: { type: 'string' },
      table: { type: 'string' },
      target: { type: 'string', multiple: true },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    });
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    return usageError(io, 'dequeue status', e.message);
  }
  if (values.help) {
    io.stdout.write(`${STATUS_USAGE}\n`);
    return 0;
  }
  if ((values.state === undefined) === (values.table === undefined))
    return usageError(io, 'dequeue status', 'give either --state FILE or --table NAME');

  let statuses: RecordedStatus[];
  let recorded: readonly string[];
  try {
    ({ statuses, recorded } =
      values.state !== undefined
        ? await fromStateFile(values.state, values.target)
        : await fromTable(values.table!, values.target, io));
  } catch (e) {
    if (e instanceof DequeueError) return fail(`${e.message}${tableFix(e)}`);
    throw e;
  }

  // Nothing recorded (a state file from before statuses, a fresh deployment): nothing is known
  // to be healthy either, and `dequeue status ... || notify` must say so until a run has worked.
  if (statuses.length === 0)
    return fail(
      `${values.state ?? values.table}: no target status recorded yet: no run has worked a target there since, so none is known to be healthy`,
    );
  if (values.json) {
    for (const s of statuses) io.stdout.write(`${JSON.stringify(statusFields(s))}\n`);
  } else {
    io.stdout.write(statusTable(statuses));
  }
  // A name no run has recorded is a typo as often as a target not worked yet: either way the
  // status cannot say it is healthy, so `dequeue status --target T || notify` must fire.
  const unknown = statuses.filter((s) => s.lastOutcome === null).map((s) => s.target);
  for (const name of unknown) {
    const meant = didYouMean(name, recorded);
    const hint = meant
      ? ` (did you mean ${meant}?)`
      : recorded.length && recorded.length <= 10
        ? ` (recorded: ${recorded.join(', ')})`
        : '';
    io.stderr.write(
      `dequeue status: --target ${name}: no run has recorded a target of that name${hint}: its health is unknown until a run works it\n`,
    );
  }
  if (unknown.length) return 2;
  return statuses.some((s) => s.consecutiveFailures > 0) ? 1 : 0;
}

interface Read {
  readonly statuses: RecordedStatus[];
  /** Every target name recorded (for "did you mean"); empty when not read. */
  readonly recorded: readonly string[];
}

async function fromStateFile(file: string, targets: readonly string[] | undefined): Promise<Read> {
  // A run creates its state file; status never does. A missing file is a typo or a lost file,
  // not "nothing recorded": `dequeue status ... || notify` must fire.
  try {
    await stat(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new ConfigError(
        file,
        '',
        'no such state file: give the file your runs keep with --state (their first run creates it)',
        { cause: e },
      );
  }
  const all = await new StateFile(file).statuses();
  const recorded = all.map((s) => s.target);
  if (!targets) return { statuses: all, recorded };
  const byName = new Map(all.map((s) => [s.target, s]));
  return {
    statuses: unique(targets).map((name) => byName.get(name) ?? neverRun(name)),
    recorded,
  };
}

async function fromTable(
  table: string,
  targets: readonly string[] | undefined,
  io: CliIo,
): Promise<Read> {
  const client = new DynamoDBClient(awsClientOptions(io));
  try {
    const store = new DynamoDbStatusStore(client, { tableName: table });
    if (!targets) {
      const all = await store.list();
      return { statuses: all, recorded: all.map((s) => s.target) };
    }
    const names = unique(targets);
    const out: RecordedStatus[] = new Array(names.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < names.length) {
        const i = next++;
        out[i] = (await store.read(names[i]!)) ?? neverRun(names[i]!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, names.length) }, worker));
    // Only for "did you mean", and only when a name is missing: one Query of the status index,
    // which the status reader policy allows; without it the line just has no suggestion.
    let recorded: string[] = [];
    if (out.some((s) => s.lastOutcome === null))
      recorded = await store.list().then(
        (all) => all.map((s) => s.target),
        () => [],
      );
    return { statuses: out, recorded };
  } finally {
    client.destroy();
  }
}

/** What to do about a table that cannot be read, after DynamoDB's own words. */
function tableFix(e: DequeueError): string {
  const cause = e.cause as { name?: string; message?: string } | undefined;
  // A table without the status index: one of a stack from before it (docs/lambda.md "Target
  // status"), or another table. DynamoDB says ValidationException, emulators ResourceNotFound.
  if (
    (cause?.name === 'ValidationException' || cause?.name === 'ResourceNotFoundException') &&
    /\bindex\b/i.test(cause.message ?? '')
  )
    return ": this table has no status index: is it the stack's CounterTableName output? A stack from before the index needs a cdk deploy";
  switch (cause?.name) {
    case 'ResourceNotFoundException':
      return ": give --table the stack's CounterTableName output (and AWS_REGION its region)";
    case 'AccessDeniedException':
      return ": attach the stack's StatusReaderPolicyArn output (a managed policy) to this user or role";
    default:
      return '';
  }
}

function unique(names: readonly string[]): string[] {
  return [...new Set(names)];
}
