/**
 * How a schema's complaints become configuration errors a person can act on: one per field, the
 * field named as a path like `targets[2].command[0]`, an unknown key answered with the known key
 * it was probably meant to be.
 */
import type * as v from 'valibot';
import { ConfigError, ConfigErrors } from './errors';

export function fieldPath(issue: v.BaseIssue<unknown>, prefix: string): string {
  const path = issue.path ?? [];
  let out = prefix;
  for (const item of path) {
    const key = (item as { key: unknown }).key;
    out += typeof key === 'number' ? `[${key}]` : out ? `.${String(key)}` : String(key);
  }
  return out;
}

/** The schema at `keys` below `schema` (through optional, array and object wrappers), if any. */
function schemaAt(schema: unknown, keys: readonly unknown[]): unknown {
  let at = schema as
    | { type?: string; wrapped?: unknown; item?: unknown; entries?: Record<string, unknown> }
    | undefined;
  const unwrap = () => {
    while (
      at &&
      (at.type === 'optional' ||
        at.type === 'nullable' ||
        at.type === 'nullish' ||
        at.type === 'exact_optional' ||
        at.type === 'lazy')
    )
      // A lazy schema (precheck: "mx" or an object) is asked for its object form.
      at = (
        at.type === 'lazy' ? (at as { getter: (x: unknown) => unknown }).getter({}) : at.wrapped
      ) as typeof at;
  };
  unwrap();
  for (const key of keys) {
    if (!at) return undefined;
    if (typeof key === 'number') at = at.type === 'array' ? (at.item as typeof at) : undefined;
    else at = at.entries ? (at.entries[String(key)] as typeof at) : undefined;
    unwrap();
  }
  return at;
}

type Node = { type?: string; wrapped?: unknown; item?: unknown; entries?: Record<string, unknown> };

/** Through the wrappers that add nothing to the shape (optional, lazy: its object form). */
function unwrapped(node: unknown): Node | undefined {
  let at = node as Node | undefined;
  while (
    at &&
    (at.type === 'optional' ||
      at.type === 'nullable' ||
      at.type === 'nullish' ||
      at.type === 'exact_optional' ||
      at.type === 'lazy')
  )
    at = (
      at.type === 'lazy' ? (at as { getter: (x: unknown) => unknown }).getter({}) : at.wrapped
    ) as Node | undefined;
  return at;
}

/**
 * Where else below `root` the last key of `path` is a known field, as the path of the object it
 * belongs in (`settings`, `targets[2]`; '' for `root` itself): a field put one level off
 * (`concurrency` beside `targets`, `allowPlaintextAuth` inside `auth`) is said with its place.
 * An array's index is taken from `path` when it runs through the same array.
 */
export function placeOf(root: unknown, path: readonly (string | number)[]): string | undefined {
  const key = String(path.at(-1));
  const found: (string | number)[][] = [];
  const walk = (node: unknown, at: (string | number)[]) => {
    const here = unwrapped(node);
    if (!here || at.length > 5) return;
    if (here.type === 'array') return walk(here.item, [...at, -1]);
    if (!here.entries) return;
    if (Object.hasOwn(here.entries, key)) found.push(at);
    for (const [name, child] of Object.entries(here.entries)) walk(child, [...at, name]);
  };
  walk(root, []);
  // The shallowest: `host` misplaced in settings belongs in a target, not in its precheck.
  const place = found.sort((a, b) => a.length - b.length)[0];
  if (!place) return undefined;
  let out = '';
  place.forEach((k, i) => {
    if (typeof k === 'number') out += `[${typeof path[i] === 'number' ? path[i] : 'N'}]`;
    else out += out ? `.${k}` : k;
  });
  return out;
}

/** `targets[2].auth.user` as its keys: ['targets', 2, 'auth', 'user']. */
function keysOf(field: string): (string | number)[] {
  return [...field.matchAll(/\[(\d+)\]|[^.[\]]+/g)].map((m) =>
    m[1] !== undefined ? Number(m[1]) : m[0],
  );
}

/** "is not a known field", with the likely meant key or the place the key belongs in. */
export function unknownField(
  field: string,
  known: readonly string[],
  root: unknown,
  /** Where `root` is in the document (`field` is then a path below it). */
  prefix = '',
): string {
  const keys = keysOf(field);
  const meant = didYouMean(String(keys.at(-1)), known);
  if (meant) return `is not a known field: did you mean "${meant}"?`;
  const place = placeOf(root, keys);
  if (place === undefined) return 'is not a known field';
  const full =
    prefix && place ? `${prefix}${place.startsWith('[') ? '' : '.'}${place}` : prefix || place;
  return `is not a known field here: it belongs in ${full || 'the top level'}`;
}

/** A key within two edits of a known one (and not known itself) is almost certainly a typo. */
export function didYouMean(key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Math.min(2, Math.max(1, Math.floor(key.length / 3)));
  for (const candidate of known) {
    const d = editDistance(lower, candidate.toLowerCase());
    if (d <= bestDistance) {
      best = candidate;
      bestDistance = d - 1;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** Every issue valibot found, one per field (the first said about it), as ConfigErrors. */
export function issueErrors(
  issues: readonly v.BaseIssue<unknown>[],
  where: string,
  prefix: string,
  schema: unknown,
  /** The whole document's shape, when `prefix` is a path in it: a misplaced key is found there. */
  document?: unknown,
): ConfigError[] {
  const byField = new Map<string, ConfigError>();
  for (const issue of issues) {
    const field = fieldPath(issue, prefix);
    if (byField.has(field)) continue;
    let message = issue.message;
    // valibot reports an unknown key of a strict object as "Invalid key"; say which key it was.
    if (issue.kind === 'schema' && issue.type === 'strict_object' && issue.expected === 'never') {
      const keys = (issue.path ?? []).map((item) => (item as { key: unknown }).key);
      const parent = schemaAt(schema, keys.slice(0, -1)) as
        | { entries?: Record<string, unknown> }
        | undefined;
      const known = Object.keys(parent?.entries ?? {});
      // Without the document, the place is said within this part (a target's own parameter).
      message = document
        ? unknownField(field, known, document)
        : unknownField(fieldPath(issue, ''), known, schema, prefix);
    } else if (issue.received === 'undefined' && issue.type !== 'check') {
      message = 'is required';
    }
    byField.set(field, new ConfigError(where, field, message));
  }
  return [...byField.values()];
}

/** One error as itself, several as one ConfigErrors that lists them all. */
export function oneOrAll(errors: readonly ConfigError[]): ConfigError {
  return errors.length === 1 ? errors[0]! : new ConfigErrors(errors);
}
