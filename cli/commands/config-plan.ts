/**
 * What `config push` would do, computed before anything is written: the local document validated
 * exactly as a run validates it, each parameter's value, and for each parameter whether it is
 * created, updated, left alone or deleted. `config diff` prints the same plan.
 *
 * - Values are the file's own objects, compact JSON: defaults stay implicit, so a later version's
 *   defaults apply to them as they would to the file. A target keeps its `name` inside: every
 *   version of the function reads such a parameter, and the function refuses it should someone
 *   rename the parameter without editing it.
 * - Unchanged means the same JSON (key order and spacing aside) and the same type; unchanged
 *   parameters are not written (fewer calls, no new parameter versions).
 * - Types: `--secure` makes every written parameter a SecureString; without it a new parameter
 *   is a String and an existing SecureString stays one (a push never decrypts a parameter).
 * - A target deployed in a sub-folder (`targets/eu/isp`) is updated where it is, not duplicated
 *   as `targets/isp` (two parameters with one name make the function refuse both).
 * - Deployed target parameters the file does not name are deleted only with `--prune`.
 */
import { readFile } from 'node:fs/promises';
import { parseConfigDocument, parseJsonText } from '../../lambda/core/config';
import { secretIdWithin } from '../../lambda/adapters/ssm-config';
import { ConfigError, ConfigErrors } from '../../lambda/core/errors';
import type { DeployedConfig, DeployedParameter, ParameterType } from './deployed-config';
import { unreadableBecause } from '../file-errors';

/** SSM's value limit for a standard parameter (advanced parameters hold 8 KiB at a monthly cost). */
export const MAX_PARAMETER_BYTES = 4096;

export interface LocalConfig {
  readonly file: string;
  readonly settings: Record<string, unknown>;
  readonly targets: readonly { readonly name: string; readonly value: Record<string, unknown> }[];
}

export type Action = 'create' | 'update' | 'unchanged' | 'delete';

export interface PlannedParameter {
  readonly parameter: string;
  /** The target's name; null for the settings parameter. */
  readonly target: string | null;
  readonly action: Action;
  /** The type it will have (create, update, unchanged) or has (delete). */
  readonly type: ParameterType;
  /** The text written (create, update). */
  readonly text?: string;
  /** As deployed (update, unchanged, delete); undefined when not a JSON object. */
  readonly before?: Record<string, unknown>;
  /** As it will be (create, update, unchanged). */
  readonly after?: Record<string, unknown>;
  /** Why it is deleted, or what is wrong with what is deployed. */
  readonly note?: string;
}

/**
 * Read and validate the file as a run would; throws ConfigError (exit 2) naming the field. With
 * `secretPrefix`, every `auth.secretId` must lie under it, the rule the deployed function applies
 * (it refuses such a target as `config-error`): all of them are named at once.
 */
export async function readLocalConfig(file: string, secretPrefix?: string): Promise<LocalConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, '', `cannot read the configuration file: ${unreadableBecause(e)}`, {
      cause: e,
    });
  }
  const raw = parseJsonText(text, file);
  const doc = parseConfigDocument(raw, file);
  const { settings, targets } = raw as {
    settings?: Record<string, unknown>;
    targets: Record<string, unknown>[];
  };
  const local = {
    file,
    settings: settings ?? {},
    targets: doc.targets.map((t, i) => ({ name: t.name, value: targets[i]! })),
  };
  if (secretPrefix !== undefined) {
    const outside = doc.targets.flatMap((t, i) =>
      t.auth && !secretIdWithin(t.auth.secretId, secretPrefix)
        ? [
            new ConfigError(
              file,
              `targets[${i}].auth.secretId`,
              `"${t.auth.secretId}" is outside the secrets the deployed function may read (names starting with "${secretPrefix}"): name a secret under it, or give --secret-prefix the stack's secretPrefix`,
            ),
          ]
        : [],
    );
    if (outside.length) throw outside.length === 1 ? outside[0]! : new ConfigErrors(outside);
  }
  checkSize(file, 'settings', 'the settings', local.settings);
  for (const [i, t] of local.targets.entries()) {
    checkSize(file, `targets[${i}]`, `target "${t.name}"`, t.value);
  }
  return local;
}

function checkSize(
  file: string,
  field: string,
  what: string,
  value: Record<string, unknown>,
): void {
  const bytes = Buffer.byteLength(JSON.stringify(value), 'utf8');
  if (bytes > MAX_PARAMETER_BYTES) {
    throw new ConfigError(
      file,
      field,
      `${what} is ${bytes} bytes as an SSM parameter value; a standard parameter holds at most ${MAX_PARAMETER_BYTES} (4 KiB): shorten it (a long command list, for example)`,
    );
  }
}

/** The deployed target as a document entry: the parameter's name gives the target's name. */
export function deployedTarget(p: DeployedParameter): Record<string, unknown> | undefined {
  if (!p.value) return undefined;
  return 'name' in p.value ? p.value : { name: p.segment, ...p.value };
}

export function planPush(
  local: LocalConfig,
  deployed: DeployedConfig,
  prefix: string,
  secure: boolean,
): PlannedParameter[] {
  const plan: PlannedParameter[] = [
    planOne(
      `${prefix}/settings`,
      null,
      local.settings,
      deployed.settings,
      deployed.settings?.value,
      secure,
    ),
  ];

  const bySegment = new Map<string, DeployedParameter[]>();
  for (const p of deployed.targets)
    bySegment.set(p.segment, [...(bySegment.get(p.segment) ?? []), p]);
  const kept = new Set<string>();
  for (const t of local.targets) {
    const candidates = bySegment.get(t.name) ?? [];
    const home = `${prefix}/targets/${t.name}`;
    const current = candidates.find((p) => p.parameter === home) ?? candidates[0];
    if (current) kept.add(current.parameter);
    plan.push(
      planOne(
        current?.parameter ?? home,
        t.name,
        t.value,
        current,
        current && deployedTarget(current),
        secure,
      ),
    );
  }
  const named = new Set(local.targets.map((t) => t.name));
  for (const p of deployed.targets) {
    if (kept.has(p.parameter)) continue;
    const note = named.has(p.segment)
      ? `a second parameter named "${p.segment}": the function refuses both while it exists`
      : 'not in the file';
    plan.push({
      parameter: p.parameter,
      target: p.segment,
      action: 'delete',
      type: p.type,
      before: deployedTarget(p),
      note,
    });
  }
  return plan;
}

function planOne(
  parameter: string,
  target: string | null,
  after: Record<string, unknown>,
  current: DeployedParameter | undefined,
  before: Record<string, unknown> | undefined,
  secure: boolean,
): PlannedParameter {
  const type: ParameterType =
    secure || current?.type === 'SecureString' ? 'SecureString' : 'String';
  const text = JSON.stringify(after);
  if (!current) return { parameter, target, action: 'create', type, text, after };
  const same =
    before !== undefined && canonical(before) === canonical(after) && current.type === type;
  return same
    ? { parameter, target, action: 'unchanged', type, before, after }
    : {
        parameter,
        target,
        action: 'update',
        type,
        text,
        before,
        after,
        ...(current.problem ? { note: `deployed value ${current.problem}` } : {}),
      };
}

/** JSON with keys sorted at every level: equal documents give equal text. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}

export interface FieldChange {
  /** `port`, `auth.secretId`, `command[1]`. */
  readonly field: string;
  /** JSON text; undefined when absent. */
  readonly before?: string;
  readonly after?: string;
}

/** Field by field: leaves of objects; arrays compared whole when their lengths differ. */
export function fieldChanges(before: unknown, after: unknown, at = ''): FieldChange[] {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((k) => fieldChanges(before[k], after[k], at ? `${at}.${k}` : k));
  }
  if (Array.isArray(before) && Array.isArray(after) && before.length === after.length) {
    return before.flatMap((b, i) => fieldChanges(b, after[i], `${at}[${i}]`));
  }
  if (canonical(before) === canonical(after)) return [];
  return [
    {
      field: at || '(whole value)',
      before: before === undefined ? undefined : JSON.stringify(before),
      after: after === undefined ? undefined : JSON.stringify(after),
    },
  ];
}
