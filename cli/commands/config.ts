/**
 * `dequeue config push | pull | diff`: the local configuration document and the deployed one
 * (SSM parameters under a prefix) are the same thing. config-plan.ts decides what a push changes;
 * this file talks to SSM and prints.
 */
import { DeleteParametersCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { describeAwsError } from '../../lambda/adapters/aws-errors';
import { ConfigErrors, DequeueError } from '../../lambda/core/errors';
import { printable } from '../terminal-text';
import { awsClientOptions } from '../aws-clients';
import type { CliIo } from '../io';
import { UsageError, usageError } from '../usage';
import { CONFIG_USAGE, parseConfigArgs, type ConfigOptions } from './config-args';
import {
  deployedTarget,
  fieldChanges,
  planPush,
  readLocalConfig,
  type LocalConfig,
  type PlannedParameter,
} from './config-plan';
import { checkOutFile, writeOutFile } from './config-out';
import { type DeployedConfig, readDeployed } from './deployed-config';
import { secretsNotFound } from './secret-check';

/** PutParameter calls at once: SSM's default write throughput is a few calls per second. */
const WRITE_CONCURRENCY = 3;
/** DeleteParameters takes at most 10 names per call. */
const DELETE_BATCH = 10;

export async function configCommand(argv: readonly string[], io: CliIo): Promise<number> {
  let options: ConfigOptions | 'help';
  try {
    options = parseConfigArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    // The verb's errors name it, as its other errors do ("dequeue config pull: ...").
    const verb = ['push', 'pull', 'diff'].includes(argv[0] ?? '') ? ` ${argv[0]}` : '';
    return usageError(io, `dequeue config${verb}`, e.message, 'dequeue config');
  }
  if (options === 'help') {
    io.stdout.write(`${CONFIG_USAGE}\n`);
    return 0;
  }
  const client = new SSMClient(awsClientOptions(io));
  try {
    if (options.verb === 'push') return await push(options, client, io);
    if (options.verb === 'pull') return await pull(options, client, io);
    return await diff(options, client, io);
  } catch (e) {
    // An invalid file, or SSM could not be read: nothing was written. Every error of the file
    // at once, one line each.
    if (e instanceof DequeueError) {
      const errors = e instanceof ConfigErrors ? e.errors : [e];
      for (const error of errors)
        io.stderr.write(`dequeue config ${options.verb}: ${printable(error.message)}\n`);
      if (errors.length > 1)
        io.stderr.write(
          `dequeue config ${options.verb}: ${errors.length} errors${options.verb === 'push' ? '; nothing was written' : ''}\n`,
        );
      return 2;
    }
    throw e;
  } finally {
    client.destroy();
  }
}

type PushOptions = Extract<ConfigOptions, { verb: 'push' }>;

async function push(options: PushOptions, client: SSMClient, io: CliIo): Promise<number> {
  const local = await readLocalConfig(options.config, options.secretPrefix);
  const plan = planPush(
    local,
    await readDeployed(client, options.prefix),
    options.prefix,
    options.secure,
  );
  const writes = plan.filter((p) => p.action === 'create' || p.action === 'update');
  const deletes = options.prune ? plan.filter((p) => p.action === 'delete') : [];
  const kept = options.prune ? [] : plan.filter((p) => p.action === 'delete');

  const report = (p: PlannedParameter, done: boolean) => {
    if (options.json) {
      io.stdout.write(
        `${JSON.stringify({ parameter: p.parameter, target: p.target, action: p.action, type: p.type, dryRun: options.dryRun })}\n`,
      );
    } else {
      const verb = {
        create: 'created',
        update: 'updated',
        unchanged: 'unchanged',
        delete: 'deleted',
      }[p.action];
      io.stdout.write(
        `${done ? verb : p.action === 'unchanged' ? verb : `would ${p.action}`} ${p.parameter}${p.action === 'delete' ? '' : ` (${p.type})`}${p.note ? `: ${p.note}` : ''}\n`,
      );
    }
  };

  let failed: string[] = [];
  if (options.dryRun) {
    for (const p of [...writes, ...deletes]) report(p, false);
  } else {
    failed = [
      ...(await writeAll(writes, client, report)),
      ...(await deleteAll(deletes, client, report)),
    ];
  }
  // One line (or object) per parameter, unchanged ones too: --json promises one per parameter.
  for (const p of plan.filter((q) => q.action === 'unchanged')) report(p, true);
  for (const p of kept) {
    io.stderr.write(`dequeue config push: kept ${p.parameter} (${p.note}); --prune deletes it\n`);
  }
  const count = (a: PlannedParameter['action']) => plan.filter((p) => p.action === a).length;
  io.stderr.write(
    `dequeue config push: ${options.dryRun ? 'dry run, nothing written: ' : ''}${local.targets.length} target(s) in ${options.config}; ` +
      `${count('create')} to create, ${count('update')} to update, ${count('unchanged')} unchanged, ${deletes.length} to delete, ${kept.length} kept\n`,
  );
  for (const line of failed) io.stderr.write(`dequeue config push: ${line}\n`);
  await warnMissingSecrets(local, io);
  return failed.length ? 1 : 0;
}

/** After the push: each auth.secretId Secrets Manager does not know, one line each. */
async function warnMissingSecrets(local: LocalConfig, io: CliIo): Promise<void> {
  const ids = local.targets.map(
    (t) => (t.value.auth as { secretId?: unknown } | undefined)?.secretId,
  );
  const missing = await secretsNotFound(
    ids.filter((id): id is string => typeof id === 'string'),
    io,
  );
  ids.forEach((id, i) => {
    if (typeof id === 'string' && missing.has(id))
      io.stderr.write(
        `dequeue config push: warning: ${local.file}: targets[${i}].auth.secretId: no secret "${id}" in Secrets Manager: create it (aws secretsmanager create-secret --name ${id} --secret-string '{"username": "...", "password": "..."}'), or the function reports the target config-error every cycle\n`,
      );
  });
}

/** Every write, a few at once; a failed call is reported and the others go on. */
async function writeAll(
  writes: readonly PlannedParameter[],
  client: SSMClient,
  report: (p: PlannedParameter, done: boolean) => void,
): Promise<string[]> {
  const failed: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < writes.length) {
      const p = writes[next++]!;
      try {
        await client.send(
          new PutParameterCommand({
            Name: p.parameter,
            Value: p.text!,
            Type: p.type,
            Overwrite: p.action === 'update',
            Tier: 'Standard',
          }),
        );
        report(p, true);
      } catch (e) {
        failed.push(`not written: ${p.parameter}: ${describeAwsError(e)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(WRITE_CONCURRENCY, writes.length) }, worker));
  return failed;
}

async function deleteAll(
  deletes: readonly PlannedParameter[],
  client: SSMClient,
  report: (p: PlannedParameter, done: boolean) => void,
): Promise<string[]> {
  const failed: string[] = [];
  for (let i = 0; i < deletes.length; i += DELETE_BATCH) {
    const batch = deletes.slice(i, i + DELETE_BATCH);
    try {
      // A name already gone (listed in InvalidParameters) is what the delete wanted anyway.
      await client.send(new DeleteParametersCommand({ Names: batch.map((p) => p.parameter) }));
      for (const p of batch) report(p, true);
    } catch (e) {
      for (const p of batch) failed.push(`not deleted: ${p.parameter}: ${describeAwsError(e)}`);
    }
  }
  return failed;
}

type PullOptions = Extract<ConfigOptions, { verb: 'pull' }>;

async function pull(options: PullOptions, client: SSMClient, io: CliIo): Promise<number> {
  if (options.out) await checkOutFile(options.out);
  const deployed = await readDeployed(client, options.prefix);
  // An empty document would look like a deployment with no targets, and pushed back it would
  // be one: a mistyped --prefix is a mistake to name, not a configuration to hand out.
  if (nothingDeployed(deployed))
    throw new DequeueError(
      'config',
      `${nothingUnder(options.prefix)}: give --prefix the stack's ssmPrefix (default /dequeue); nothing was written`,
    );
  const problems: string[] = [];
  if (deployed.settings?.problem)
    problems.push(
      `${deployed.settings.parameter} ${deployed.settings.problem}: left out (settings default)`,
    );
  const targets: Record<string, unknown>[] = [];
  for (const p of deployed.targets) {
    const target = deployedTarget(p);
    if (!target) {
      problems.push(`${p.parameter} ${p.problem}: left out`);
      continue;
    }
    if (target.name !== p.segment)
      problems.push(
        `${p.parameter}: its "name" is "${String(target.name)}"; the function refuses it until they agree`,
      );
    // The name first, as a person writes it.
    const { name, ...rest } = target;
    targets.push({ name, ...rest });
  }
  const document = `${JSON.stringify({ settings: deployed.settings?.value ?? {}, targets }, null, 2)}\n`;
  if (options.out) await writeOutFile(options.out, document);
  else io.stdout.write(document);
  for (const line of problems) io.stderr.write(`dequeue config pull: ${line}\n`);
  if (options.out)
    io.stderr.write(
      `dequeue config pull: ${targets.length} target(s) from ${options.prefix} written to ${options.out}\n`,
    );
  return problems.length ? 1 : 0;
}

type DiffOptions = Extract<ConfigOptions, { verb: 'diff' }>;

/**
 * One line per parameter a push would touch: `+` added, `~` changed (with its fields below),
 * `-` removed (deleted by push --prune); unchanged ones are counted, not listed.
 */
async function diff(options: DiffOptions, client: SSMClient, io: CliIo): Promise<number> {
  const local = await readLocalConfig(options.config, options.secretPrefix);
  const deployed = await readDeployed(client, options.prefix);
  const plan = planPush(local, deployed, options.prefix, false);
  let differences = 0;
  for (const p of plan) {
    if (p.action === 'unchanged') continue;
    differences++;
    if (p.action === 'create') {
      io.stdout.write(`+ ${p.parameter}\n`);
    } else if (p.action === 'delete') {
      io.stdout.write(`- ${p.parameter} (${p.note}; push --prune deletes it)\n`);
    } else {
      io.stdout.write(`~ ${p.parameter}${p.note ? ` (${p.note})` : ''}\n`);
      for (const c of fieldChanges(p.before ?? {}, p.after)) {
        io.stdout.write(`    ${c.field}: ${c.before ?? '(absent)'} -> ${c.after ?? '(absent)'}\n`);
      }
    }
  }
  const unchanged = plan.length - differences;
  // Every parameter "added": the first push, or a --prefix that is not the stack's.
  if (nothingDeployed(deployed))
    io.stderr.write(
      `dequeue config diff: ${nothingUnder(options.prefix)}: every parameter would be new (is --prefix the stack's ssmPrefix?)\n`,
    );
  io.stderr.write(
    `dequeue config diff: ${differences ? `${differences} parameter(s) differ` : 'no differences'}, ${unchanged} unchanged (${options.config} against ${options.prefix})\n`,
  );
  return differences ? 1 : 0;
}

function nothingDeployed(deployed: DeployedConfig): boolean {
  return deployed.settings === undefined && deployed.targets.length === 0;
}

function nothingUnder(prefix: string): string {
  return `nothing is deployed under ${prefix} (no ${prefix}/settings, no ${prefix}/targets/...)`;
}
