/**
 * Errors are values with a kind. The outcome of a target is derived from the kind in one place
 * (outcome.ts), so a session never decides "temporary" or "permanent" by string matching.
 *
 * - temporary: worth retrying next cycle (4xx other than 459, timeouts, network, protocol errors)
 * - permanent: retrying will not help (5xx, ETRN 459, authentication refused or impossible, TLS trust)
 * - config:    the configuration (or a secret) is wrong; nothing was sent for that target
 */
export type ErrorKind = 'temporary' | 'permanent' | 'config';

export class DequeueError extends Error {
  readonly kind: ErrorKind;

  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.name =
      kind === 'config'
        ? 'ConfigError'
        : kind === 'permanent'
          ? 'PermanentError'
          : 'TemporaryError';
  }
}

export class ConfigError extends DequeueError {
  /** Where the fault is: a file name, an SSM parameter name, a secret id. */
  readonly where: string;
  /** The field at fault, as a path such as `targets[2].port`, or '' for the whole document. */
  readonly field: string;

  constructor(where: string, field: string, message: string, options?: { cause?: unknown }) {
    super('config', `${where}${field ? `: ${field}` : ''}: ${message}`, options);
    this.name = 'ConfigError';
    this.where = where;
    this.field = field;
  }
}

/** Several configuration errors found at once (a whole file checked): each keeps its own place. */
export class ConfigErrors extends ConfigError {
  readonly errors: readonly ConfigError[];

  constructor(errors: readonly ConfigError[]) {
    super(errors[0]!.where, errors[0]!.field, '');
    this.name = 'ConfigError';
    this.errors = errors;
    this.message = errors.map((e) => e.message).join('\n');
  }
}

/** The peer broke the protocol: garbage, an overlong line, a reply nobody asked for. Temporary. */
export class ProtocolError extends DequeueError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('temporary', message, options);
    this.name = 'ProtocolError';
  }
}

/** A bounded wait ran out. Temporary. */
/**
 * After ATRN, the provider's connection ended in the middle of a message or transaction: what
 * was acknowledged is stored, the rest stays with the provider. Temporary.
 */
export class ProviderCutError extends DequeueError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('temporary', message, options);
    this.name = 'ProviderCutError';
  }
}

export class TimeoutError extends DequeueError {
  constructor(message: string) {
    super('temporary', message);
    this.name = 'TimeoutError';
  }
}

/** Wrap anything thrown into a DequeueError, keeping the original as cause. */
export function asDequeueError(e: unknown, kind: ErrorKind = 'temporary'): DequeueError {
  if (e instanceof DequeueError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new DequeueError(kind, message, { cause: e });
}

/** The provider refused a step with a reply code: kept whole so the result can show the reply. */
export class RefusalError extends DequeueError {
  constructor(
    readonly command: string,
    readonly code: number,
    readonly text: string,
    peer: string,
  ) {
    // RFC 5321 4.2.1: 4yz is transient, 5yz permanent.
    super(
      code >= 400 && code < 500 ? 'temporary' : 'permanent',
      `${command} refused by ${peer}: ${code} ${text}`,
    );
    this.name = 'RefusalError';
  }
}
