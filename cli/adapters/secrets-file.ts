/**
 * Credentials for the CLI: the `--secrets` file, a JSON object mapping each `secretId` to
 * `{"username": "...", "password": "..."}` (docs/configuration.md "The --secrets file"). Read and checked once, whole:
 * a malformed entry is a configuration error naming the file and the id, never its value, and a
 * JSON syntax error names the line and column only (never the text around it).
 */
import { readFile, stat } from 'node:fs/promises';
import { ConfigError, DequeueError } from '../../lambda/core/errors';
import type { AuthCredentials, Credentials } from '../../lambda/core/ports';
import { parseJsonText } from '../../lambda/core/config';
import { didYouMean } from '../../lambda/core/config-issues';
import { unreadableBecause } from '../file-errors';

const SECRET_FIELDS = ['username', 'password'] as const;

export class SecretsFile implements Credentials {
  private constructor(
    private readonly file: string,
    private readonly entries: ReadonlyMap<string, AuthCredentials>,
  ) {}

  static empty(): SecretsFile {
    return new SecretsFile('(no --secrets file)', new Map());
  }

  /** `warn` hears about a file that others may read (a mode wider than 0600). */
  static async load(file: string, warn?: (line: string) => void): Promise<SecretsFile> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      throw new ConfigError(file, '', `cannot read the secrets file: ${unreadableBecause(e)}`, {
        cause: e,
      });
    }
    const mode = (await stat(file).catch(() => undefined))?.mode;
    if (warn && mode !== undefined && process.platform !== 'win32' && (mode & 0o077) !== 0) {
      warn(
        `warning: ${file} is open to other users (mode ${(mode & 0o777).toString(8).padStart(4, '0')}, wider than 0600): chmod 600 ${file}`,
      );
    }
    const doc = parseJsonText(text, file);
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
      throw new ConfigError(
        file,
        '',
        'must be a JSON object mapping each secretId to {"username", "password"}',
      );
    }
    const entries = new Map<string, AuthCredentials>();
    for (const [id, value] of Object.entries(doc)) {
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        throw new ConfigError(file, id, 'must be an object {"username": "...", "password": "..."}');
      const v = value as Record<string, unknown>;
      // A field we do not know is named first: `{"user", "pass"}` is a misspelling, not two
      // missing fields. Only names are quoted, never a value.
      for (const field of Object.keys(v)) {
        if (field === 'username' || field === 'password') continue;
        const lower = field.toLowerCase();
        const meant =
          SECRET_FIELDS.find((f) => lower.length >= 2 && f.startsWith(lower)) ??
          didYouMean(field, SECRET_FIELDS);
        throw new ConfigError(
          file,
          `${id}.${field}`,
          `is not a known field${meant ? `: did you mean "${meant}"?` : ''} (a secret is {"username": "...", "password": "..."})`,
        );
      }
      for (const field of SECRET_FIELDS) {
        if (typeof v[field] !== 'string' || v[field] === '')
          throw new ConfigError(file, `${id}.${field}`, 'must be a non-empty string');
      }
      entries.set(id, { username: v.username as string, password: v.password as string });
    }
    return new SecretsFile(file, entries);
  }

  /** The secretIds the file holds (names, never a value): for "did you mean". */
  ids(): string[] {
    return [...this.entries.keys()];
  }

  has(secretId: string): boolean {
    return this.entries.has(secretId);
  }

  async get(secretId: string): Promise<AuthCredentials> {
    const found = this.entries.get(secretId);
    if (!found) throw new DequeueError('config', `secret "${secretId}" is not in ${this.file}`);
    return found;
  }
}
