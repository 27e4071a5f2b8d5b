/**
 * What `dequeue deliver` needs from a store of ATRN mail (the mail directory, the S3 bucket): the
 * undelivered messages oldest first, an exclusive claim on one, its bytes as a stream, and the
 * marks that take it out of the undelivered set (delivered, failed) or record how far it got
 * (deferred). The two stores implement it in cli/adapters/.
 *
 * Delivery status notifications (docs/bounces.md) are recorded with the marks: each DSN sent is a
 * DsnRecord in the message's progress record while it stays, and beside it in failed/ once it
 * leaves, so that a later run never sends it again.
 */
import type { EnvelopeRecord } from '../../lambda/core/odmr/envelope-record';

/** The server's final answer for one recipient (2xx accepted, 5xx refused for good). */
export interface RecipientAnswer {
  readonly address: string;
  readonly code: number;
  readonly text: string;
}

/**
 * A recipient still without a final answer when the give-up time came (`--give-up-after`): its
 * last reply, if any. Only in the replies recorded in failed/.
 */
export interface ExpiredRecipient {
  readonly address: string;
  readonly code: number | null;
  readonly text: string | null;
  readonly expired: true;
}

/** A delivery status notification that the bounce server accepted (or refused for good). */
export interface DsnRecord {
  /** Its Message-ID, without brackets: the same if it is ever sent again. */
  readonly messageId: string;
  /** The original message's reverse-path, to which it went. */
  readonly to: string;
  /** The server it went through: `smtp://host:port`. */
  readonly via: string;
  /** The recipients it reported. */
  readonly recipients: readonly string[];
  /** ISO 8601, when the server answered. */
  readonly at: string;
  /** The server's reply: 250 when it took it; a 5xx when it refused it for good (not sent again). */
  readonly code: number;
  readonly text: string;
}

/** A message in the undelivered set, before it is claimed. */
export interface StoredRef {
  /** The message id: sortable by arrival time (`20240102T030405123Z-1a2b3c4d5e6f`). */
  readonly id: string;
  readonly target: string;
}

export interface MailStore {
  /** How the store is named in messages: `mail directory /var/mail/dequeue`, `s3://bucket/mail/`. */
  readonly name: string;
  /** Throws a ConfigError when the store cannot be used at all (missing, unreadable, unwritable). */
  check(): Promise<void>;
  /** Every undelivered message of these targets (all when undefined), oldest first. */
  list(targets?: readonly string[]): Promise<StoredRef[]>;
  /**
   * The targets the store holds anything of now, sorted: a `--target` naming none of them is a
   * typo. `lasting`: a target stays listed once it has stored mail (a mail directory keeps its
   * folder); otherwise (S3, where delivered mail is deleted) a quiet target may be missing.
   */
  storedTargets?(): Promise<{ readonly names: readonly string[]; readonly lasting: boolean }>;
  /**
   * Claim the message for this run. Null when another run holds it, or when it left the
   * undelivered set meanwhile: it must then be left alone.
   */
  claim(ref: StoredRef): Promise<ClaimedMail | null>;
  /**
   * After a null claim, for a store that claims a whole target at once (the mail directory): who
   * else holds this target's mail, so that the run says so once rather than for each message.
   */
  heldBy?(target: string): Promise<string | undefined>;
  /** At the end of a run: make its marks durable, free what the store holds. */
  close(): Promise<void>;
  /**
   * Optional: for a process that exits at once (a second SIGINT or SIGTERM), synchronously, what
   * must not outlive it (the mail directory's locks). S3 claims are left to lapse with their lease.
   */
  releaseSync?(): void;
}

export interface ClaimedMail {
  readonly ref: StoredRef;
  readonly envelope: EnvelopeRecord;
  /**
   * Set when the stored envelope failed its check on read (lambda/core/odmr/envelope-check.ts):
   * the reason. Nothing of `envelope` is then used; the message goes to failed/ with it.
   */
  readonly problem?: string;
  /** Final answers recorded by earlier runs: those recipients are not sent to again. */
  readonly answered: readonly RecipientAnswer[];
  /** DSNs recorded by earlier runs: those recipients are not reported again. */
  readonly notified: readonly DsnRecord[];
  /** The stored bytes (trace header included): streamed, or at once when the store has them whole. */
  open(): AsyncIterable<Buffer> | Iterable<Buffer>;
  /** Every recipient accepted: the message leaves the undelivered set (delivered/, or deleted). */
  delivered(answers: readonly RecipientAnswer[]): Promise<void>;
  /**
   * Every recipient answered, some refused for good (or given up), or the envelope unusable
   * (`reason`): to failed/, the replies, the DSNs sent and the reason beside it.
   */
  failed(
    answers: readonly (RecipientAnswer | ExpiredRecipient)[],
    notified: readonly DsnRecord[],
    reason?: string,
  ): Promise<void>;
  /**
   * Some recipients still wait (4xx, no answer), or a DSN is still owed: record the final answers
   * and the DSNs so far, keep it.
   */
  deferred(answers: readonly RecipientAnswer[], notified: readonly DsnRecord[]): Promise<void>;
  /**
   * Record the final answers so far and keep the claim: before a DSN goes out, so that a crash
   * after it never sends the message to those recipients again (only the DSN, once more).
   */
  record(answers: readonly RecipientAnswer[], notified: readonly DsnRecord[]): Promise<void>;
  /** Give the claim up without any mark (a dry run, an error before anything was sent). */
  release(): Promise<void>;
}
