/**
 * Credentials from AWS Secrets Manager: the secret named by a target's `auth.secretId` holds
 * `{"username": "...", "password": "..."}` (docs/configuration.md, `auth.secretId`).
 *
 * - Cached per secret id for a bounded time (default 5 minutes) in this warm instance: a cycle
 *   with many targets sharing one secret makes one call, and a rotated secret is picked up within
 *   the bound. AWS recommends caching secrets in the function rather than reading them on every
 *   invocation: https://docs.aws.amazon.com/secretsmanager/latest/userguide/retrieving-secrets.html
 * - Concurrent gets of the same id share one request. Failures are not cached: a secret created
 *   after a failing cycle is found by the next one.
 * - A missing, unreadable or malformed secret is a ConfigError naming the secret id and the field,
 *   which fails only the target that uses it.
 * - The value never reaches a log: error messages never quote it (JSON.parse's would), and the
 *   object handed out prints its password as "[redacted]" when serialised or inspected.
 */
import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { inspect } from 'node:util';
import { ConfigError, DequeueError } from '../core/errors';
import type { AuthCredentials, Credentials } from '../core/ports';
import { awsErrorKind, describeAwsError } from './aws-errors';
import { secretIdWithin } from './ssm-config';

export const DEFAULT_SECRET_TTL_MS = 5 * 60 * 1000;

export interface SecretsManagerCredentialsOptions {
  /** How long a secret read is reused. Default 5 minutes. */
  readonly ttlMs?: number;
  /** When set, ids outside it are refused without a call (the IAM policy would deny them). */
  readonly allowedPrefix?: string;
  readonly now?: () => number;
}

interface CacheEntry {
  readonly expires: number;
  readonly value: Promise<AuthCredentials>;
}

const REDACTED = '[redacted]';

/** Credentials whose password stays out of JSON.stringify, util.inspect and so every logger. */
function sealed(username: string, password: string): AuthCredentials {
  const shown = { username, password: REDACTED };
  const credentials = {
    username,
    toJSON: () => shown,
    [inspect.custom]: () => shown,
  };
  Object.defineProperty(credentials, 'password', { value: password, enumerable: false });
  return Object.freeze(credentials) as unknown as AuthCredentials;
}

export class SecretsManagerCredentials implements Credentials {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly allowedPrefix?: string;

  constructor(
    private readonly client: SecretsManagerClient,
    options: SecretsManagerCredentialsOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? DEFAULT_SECRET_TTL_MS;
    this.now = options.now ?? Date.now;
    this.allowedPrefix = options.allowedPrefix;
  }

  get(secretId: string, signal?: AbortSignal): Promise<AuthCredentials> {
    const at = this.now();
    const cached = this.cache.get(secretId);
    if (cached && cached.expires > at) return cached.value;
    this.evictExpired(at);

    const value = this.fetch(secretId, signal);
    this.cache.set(secretId, { expires: at + this.ttlMs, value });
    // Forget a failure at once, but only if no newer request has replaced it meanwhile.
    value.catch(() => {
      if (this.cache.get(secretId)?.value === value) this.cache.delete(secretId);
    });
    return value;
  }

  private evictExpired(at: number): void {
    for (const [id, entry] of this.cache) if (entry.expires <= at) this.cache.delete(id);
  }

  private async fetch(secretId: string, signal?: AbortSignal): Promise<AuthCredentials> {
    const where = `secret ${secretId}`;
    if (this.allowedPrefix !== undefined && !secretIdWithin(secretId, this.allowedPrefix)) {
      throw new ConfigError(
        where,
        '',
        `is outside the secrets this function may read (names starting with "${this.allowedPrefix}", DEQUEUE_SECRET_PREFIX)`,
      );
    }
    let text: string | undefined;
    try {
      const out = await this.client.send(new GetSecretValueCommand({ SecretId: secretId }), {
        abortSignal: signal,
      });
      text = out.SecretString;
    } catch (e) {
      const name = (e as { name?: string }).name;
      if (name === 'ResourceNotFoundException')
        throw new ConfigError(where, '', 'does not exist (or has no current version)', {
          cause: e,
        });
      const kind = awsErrorKind(e);
      const message = `cannot be read: ${describeAwsError(e)}`;
      throw kind === 'config'
        ? new ConfigError(where, '', message, { cause: e })
        : new DequeueError(kind, `${where}: ${message}`, { cause: e });
    }
    if (text === undefined)
      throw new ConfigError(
        where,
        '',
        'has no SecretString: store {"username": "...", "password": "..."} as text',
      );

    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      // Not the parser's message: it quotes the text, which is the secret.
      throw new ConfigError(
        where,
        '',
        'is not a JSON object {"username": "...", "password": "..."}',
      );
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new ConfigError(
        where,
        '',
        'is not a JSON object {"username": "...", "password": "..."}',
      );
    }
    const record = value as Record<string, unknown>;
    for (const field of ['username', 'password'] as const) {
      if (typeof record[field] !== 'string' || record[field] === '')
        throw new ConfigError(where, field, 'must be a non-empty string');
    }
    return sealed(record.username as string, record.password as string);
  }
}
