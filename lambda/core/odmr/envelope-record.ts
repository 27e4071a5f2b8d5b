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
  /**
   * The mail directory's: the stored message's CRC-32 (zlib's, 8 hex digits), by which a run
   * recognises a message a crash left whole under its hidden name (cli/adapters/mail-dir-recovery.ts).
   */
  readonly crc32?: string;
}

export function envelopeJson(
  envelope: MailEnvelope,
  message: string,
  bytes: number,
  storedAt: Date,
  crc32?: number,
): string {
  const record: EnvelopeRecord = {
    version: ENVELOPE_VERSION,
    ...envelope,
    message,
    bytes,
    storedAt: storedAt.toISOString(),
    ...(crc32 === undefined ? {} : { crc32: crc32.toString(16).padStart(8, '0') }),
  };
  return `${JSON.stringify(record, null, 2)}\n`;
}
