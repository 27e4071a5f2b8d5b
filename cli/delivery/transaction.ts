/**
 * One message's transaction with the server, as values: what goes out (Outgoing) and what came of
 * it for each recipient (RecipientOutcome, TransactionResult).
 */
import type { DequeueError } from '../../lambda/core/errors';

/** One message to send. */
export interface Outgoing {
  readonly id: string;
  readonly mailFrom: string;
  /** The recipients still waiting for a final answer. */
  readonly recipients: readonly string[];
  readonly body?: '7BIT' | '8BITMIME';
  /** The provider sent it with SMTPUTF8 (RFC 6531): only a server that offers it may have it. */
  readonly smtputf8?: true;
  /** Stored size, for SIZE (RFC 1870). */
  readonly size?: number;
  readonly text: () => AsyncIterable<Buffer> | Iterable<Buffer>;
}

export interface RecipientOutcome {
  readonly address: string;
  /** The reply code that decided it; null when no reply came. */
  readonly code: number | null;
  readonly text: string;
  /** 2xx or 5xx: this recipient is done with. */
  readonly final: boolean;
}

export interface TransactionResult {
  readonly recipients: readonly RecipientOutcome[];
  /**
   * The connection failed before the server answered MAIL: it cannot have taken this message, so
   * it may go again at once on a new connection (one the server dropped while it was idle).
   */
  readonly unsent?: boolean;
  /** Why some recipient has no final answer (or why nothing was sent), if so. */
  readonly error: DequeueError | null;
}
