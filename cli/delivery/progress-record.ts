/**
 * The progress record a store keeps beside a message that is still undelivered (the mail
 * directory's `.<id>.progress`, S3's `<id>.progress`): the final answers of earlier runs and the
 * DSNs sent for it. One JSON object; a record written before DSNs existed has only `answers`.
 */
import type { DsnRecord, RecipientAnswer } from './mail-store';

export interface ProgressRecord {
  readonly answers: readonly RecipientAnswer[];
  readonly notified: readonly DsnRecord[];
}

export function progressJson(
  answers: readonly RecipientAnswer[],
  notified: readonly DsnRecord[],
): string {
  return JSON.stringify(notified.length ? { answers, notified } : { answers });
}

/** A record that cannot be read means: every recipient still waits, no DSN was sent. */
export function parseProgress(text: string): ProgressRecord {
  try {
    const record = JSON.parse(text) as Partial<ProgressRecord>;
    return {
      answers: Array.isArray(record.answers) ? record.answers : [],
      notified: Array.isArray(record.notified) ? record.notified : [],
    };
  } catch {
    return NO_PROGRESS;
  }
}

export const NO_PROGRESS: ProgressRecord = { answers: [], notified: [] };

/** The failed/ replies record: every recipient's answer, and the DSNs sent. */
export function repliesJson(
  id: string,
  at: Date,
  recipients: readonly unknown[],
  notified: readonly DsnRecord[],
  /** Why the message could not be sent at all (an envelope that failed its check). */
  reason?: string,
): string {
  return `${JSON.stringify({ id, at: at.toISOString(), ...(reason ? { reason } : {}), recipients, dsn: notified }, null, 2)}\n`;
}
