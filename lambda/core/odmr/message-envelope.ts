/**
 * The envelope the sink stores beside a message (docs/odmr.md "Envelope"): the transaction as it
 * stood at DATA, with what the session knows of where and how the message came in.
 */
import type { DequeueError } from '../errors';
import type { MailEnvelope, SinkTransaction } from '../ports';

/** One mail transaction, from MAIL to DATA. */
export interface Transaction {
  readonly mailFrom: string;
  readonly rcptTo: string[];
  readonly body?: '7BIT' | '8BITMIME';
  readonly declaredSize?: number;
  /** MAIL said SMTPUTF8 (RFC 6531 section 3.4). */
  readonly smtputf8?: true;
  /** The sink's view of it, when the sink answers recipients one by one (the relay). */
  readonly sinkTx?: SinkTransaction;
  /** The destination failed during this transaction (unreachable, no 8BITMIME). */
  destinationFailure?: DequeueError;
}

/** What the session knows of a message when it takes it in, beside its transaction. */
export interface Received {
  readonly id: string;
  readonly date: Date;
  /** The provider as results name it (host:port). */
  readonly provider: string;
  readonly target: string;
  /** The customer's domains the session accepted recipients for (customer-domains.ts). */
  readonly domains?: readonly string[];
  readonly heloName: string;
  readonly tls: boolean;
  /** The length of the trace header written before the message. */
  readonly traceBytes: number;
}

/** The envelope the sink stores beside the message: the transaction as it stood at DATA. */
export function messageEnvelope(tx: Transaction, received: Received): MailEnvelope {
  return {
    id: received.id,
    mailFrom: tx.mailFrom,
    rcptTo: [...tx.rcptTo],
    ...(tx.body ? { body: tx.body } : {}),
    ...(tx.declaredSize !== undefined ? { declaredSize: tx.declaredSize } : {}),
    ...(tx.smtputf8 ? { smtputf8: tx.smtputf8 } : {}),
    receivedAt: received.date.toISOString(),
    provider: received.provider,
    target: received.target,
    ...(received.domains ? { domains: [...received.domains] } : {}),
    heloName: received.heloName,
    tls: received.tls,
    traceBytes: received.traceBytes,
  };
}
