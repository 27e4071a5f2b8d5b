/**
 * The envelope the sink stores beside a message (docs/odmr.md "Envelope"): the transaction as it
 * stood at DATA, with what the session knows of where and how the message came in.
 */
import type { MailEnvelope } from '../ports';
import type { Transaction } from './message-data';

/** What the session knows of a message when it takes it in, beside its transaction. */
export interface Received {
  readonly id: string;
  readonly date: Date;
  /** The provider as results name it (host:port). */
  readonly provider: string;
  readonly target: string;
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
    heloName: received.heloName,
    tls: received.tls,
    traceBytes: received.traceBytes,
  };
}
