/**
 * Reading CDK context for the deployment options (lib/deployment-options.ts): typed access to
 * each value with a failure that names the key, and the check that rejects a key that is a near
 * miss of one of ours (`staticEgres`) instead of ignoring it.
 */

/** Reads one context value; `app.node.tryGetContext` is one. */
export type ContextGetter = (key: string) => unknown;

/** A context value that cannot be used; the message names the key and what is expected. */
export class DeploymentOptionsError extends Error {
  override readonly name = 'DeploymentOptionsError';
  constructor(
    readonly contextKey: string,
    message: string,
  ) {
    super(message);
  }
}

/** Typed access to context values, each failure naming its key. */
export class ContextReader<K extends string> {
  constructor(
    private readonly get: ContextGetter,
    /** Each key's default (undefined: none). */
    private readonly defaults: Readonly<Record<K, unknown>>,
  ) {}

  private raw(key: K): unknown {
    const value = this.get(key);
    return value === undefined || value === null || value === '' ? this.defaults[key] : value;
  }

  string(key: K, pattern?: RegExp, expected?: string): string {
    const value = this.optionalString(key, pattern, expected);
    if (value === undefined) throw new DeploymentOptionsError(key, `Context "${key}" is required.`);
    return value;
  }

  optionalString(key: K, pattern?: RegExp, expected?: string): string | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    if (typeof value !== 'string') {
      throw new DeploymentOptionsError(
        key,
        `Context "${key}" must be a string, got ${JSON.stringify(value)}.`,
      );
    }
    if (pattern && !pattern.test(value)) {
      throw new DeploymentOptionsError(
        key,
        `Context "${key}" must be ${expected}, got ${JSON.stringify(value)}.`,
      );
    }
    return value;
  }

  boolean(key: K): boolean {
    const value = this.raw(key);
    if (value === true || value === 'true') return true;
    if (value === false || value === 'false') return false;
    throw new DeploymentOptionsError(
      key,
      `Context "${key}" must be true or false, got ${JSON.stringify(value)}.`,
    );
  }

  integer(key: K, min: number, max: number, why?: string): number {
    const value = this.optionalInteger(key, min, max, why);
    if (value === undefined) throw new DeploymentOptionsError(key, `Context "${key}" is required.`);
    return value;
  }

  optionalInteger(key: K, min: number, max: number, why?: string): number | undefined {
    const value = this.raw(key);
    if (value === undefined) return undefined;
    const number = typeof value === 'string' && /^\s*-?\d+\s*$/.test(value) ? Number(value) : value;
    if (typeof number !== 'number' || !Number.isInteger(number) || number < min || number > max) {
      throw new DeploymentOptionsError(
        key,
        `Context "${key}" must be a whole number from ${min} to ${max}${why ? ` (${why})` : ''}, got ${JSON.stringify(value)}.`,
      );
    }
    return number;
  }
}

/** A given key within two edits of one of ours, and not ours, is almost certainly a typo. */
export function rejectMisspelledKeys(
  presentKeys: readonly string[],
  keys: readonly string[],
  retiredKeys: Readonly<Record<string, string>>,
): void {
  const ours = new Set<string>(keys);
  for (const key of presentKeys) {
    const retired = retiredKeys[key];
    if (retired !== undefined) throw new DeploymentOptionsError(key, retired);
    if (ours.has(key)) continue;
    const meant = keys.find(
      (candidate) => editDistance(key.toLowerCase(), candidate.toLowerCase()) <= 2,
    );
    if (meant !== undefined) {
      throw new DeploymentOptionsError(key, `Unknown context "${key}": did you mean "${meant}"?`);
    }
  }
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
