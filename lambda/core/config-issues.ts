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
      const meant = parent?.entries
        ? didYouMean(String(keys.at(-1)), Object.keys(parent.entries))
        : undefined;
      message = meant ? `is not a known field: did you mean "${meant}"?` : 'is not a known field';
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
