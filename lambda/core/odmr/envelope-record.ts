/**
 * The envelope as stored beside each message (docs/odmr.md "Envelope"): one JSON object, the
 * same for the mail directory and S3, so one reader serves both.
 */
import type { MailEnvelope } from '../ports';

export const ENVELOPE_VERSION = 1;

export interface EnvelopeRecord extends MailEnvelope {
  readonly version: typeof ENVELOPE_VERSION;
  /** The message's file name or object key. */
  readonly message: string;
  /** Bytes of the stored message, trace header included. */
  readonly bytes: number;
  /** ISO 8601, when the sink made it durable. */
  readonly storedAt: string;
}

export function envelopeJson(
  envelope: MailEnvelope,
  message: string,
  bytes: number,
  storedAt: Date,
): string {
  const record: EnvelopeRecord = {
    version: ENVELOPE_VERSION,
    ...envelope,
    message,
    bytes,
    storedAt: storedAt.toISOString(),
  };
  return `${JSON.stringify(record, null, 2)}\n`;
}
