/**
 * A message claimed from the S3 mail store (cli/adapters/s3-mail-store-reader.ts has the claim
 * rules). Its lease is renewed every quarter lease until it is marked or released; a mark first
 * confirms the claim is still ours.
 */
import { DequeueError } from '../../lambda/core/errors';
import type { EnvelopeRecord } from '../../lambda/core/odmr/envelope-record';
import type {
  ClaimedMail,
  DsnRecord,
  ExpiredRecipient,
  RecipientAnswer,
  StoredRef,
} from '../delivery/mail-store';
import { type ProgressRecord, progressJson, repliesJson } from '../delivery/progress-record';
import type { Held, S3ClaimLeases } from './s3-claim-lease';
import type { S3MailObjects, StoredObject } from './s3-mail-objects';

/** A message of the S3 store: its keys. */
export interface S3Ref extends StoredRef {
  /** The key without `.eml`. */
  readonly base: string;
  /** `<target>/<yyyy>/<mm>/<dd>/<id>`, for the failed/ key. */
  readonly rel: string;
}

/** What a claimed message needs of the store it came from (the reader). */
export interface ClaimingStore {
  readonly objects: S3MailObjects;
  readonly leases: S3ClaimLeases;
  readonly leaseMs: number;
  /** Claims taken and not yet marked or released. */
  readonly held: Set<S3Claim>;
  say(text: string): void;
  failedKey(ref: S3Ref): string;
}

/**
 * A claimed message. Its lease is renewed every quarter lease until it is marked or released;
 * once a renewal is refused (another run took it over), nothing is marked and the claim is left
 * to its new holder.
 */
export class S3Claim implements ClaimedMail {
  private readonly claimKey: string;
  private timer: NodeJS.Timeout | null;
  private renewing: Promise<void> | null = null;
  /** Set when another run holds the claim now: the reason, said once. */
  private lost: DequeueError | null = null;
  /** The claim may be another run's now (our lease ran out unconfirmed): not ours to delete. */
  private keep = false;
  private done = false;
  readonly answered: readonly RecipientAnswer[];
  readonly notified: readonly DsnRecord[];
  /** A progress record exists (read at the claim, or written by this run). */
  private progressed: boolean;

  constructor(
    private readonly store: ClaimingStore,
    readonly ref: S3Ref,
    readonly envelope: EnvelopeRecord,
    progress: ProgressRecord,
    private held: Held,
    private readonly source: StoredObject,
    /** Why the envelope cannot be used (ClaimedMail.problem): the message goes to failed/. */
    readonly problem?: string,
  ) {
    this.answered = progress.answers;
    this.notified = progress.notified;
    this.progressed = progress.answers.length > 0 || progress.notified.length > 0;
    this.claimKey = `${ref.base}.claim`;
    store.held.add(this);
    this.timer = setInterval(() => void this.renew(), Math.max(1, Math.floor(store.leaseMs / 4)));
    this.timer.unref();
  }

  /** One renewal at a time; a failure other than a refusal is tried again at the next tick. */
  private renew(): Promise<void> {
    if (this.renewing || this.lost || this.done) return this.renewing ?? Promise.resolve();
    this.renewing = this.store.leases
      .renew(this.claimKey, this.held.etag)
      .then(
        (held) => {
          if (held) this.held = held;
          else this.loseClaim();
        },
        () => undefined, // S3 unreachable for now: the lease still runs; the next tick tries again
      )
      .finally(() => {
        this.renewing = null;
      });
    return this.renewing;
  }

  private loseClaim(): void {
    if (this.lost) return;
    this.stopRenewing();
    const { id, target } = this.ref;
    this.lost = new DequeueError(
      'temporary',
      `its claim ${this.store.objects.url(this.claimKey)} was taken over by another run after this run's lease ran out; this run marks nothing and leaves the message to that run (the server may get it twice)`,
    );
    this.store.say(`message ${id} (${target}): ${this.lost.message}`);
  }

  private stopRenewing(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * Before a mark: still ours? A renewal in flight is awaited; when the lease is more than half
   * gone (renewals failing), one more renewal decides. Throws when the claim is not ours.
   */
  private async confirm(): Promise<void> {
    await this.renewing;
    if (!this.lost && this.held.expiresAt - Date.now() < this.store.leaseMs / 2) {
      const held = await this.store.leases
        .renew(this.claimKey, this.held.etag)
        .catch((e: unknown) => {
          if (this.held.expiresAt > Date.now()) return this.held; // still within our lease
          // Unconfirmed past our lease: not marked, and the claim left (it may be another run's).
          this.keep = true;
          throw e;
        });
      if (held) this.held = held;
      else this.loseClaim();
    }
    if (this.lost) throw this.lost;
  }

  /** The end of the claim: no renewal left; the claim deleted unless another run holds it now. */
  private async finish(): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.stopRenewing();
    await this.renewing;
    this.store.held.delete(this);
    if (!this.lost && !this.keep) {
      await this.store.objects.allowExpiry(this.claimKey);
      await this.store.objects.delete(this.claimKey).catch(() => undefined);
    }
  }

  async *open(): AsyncIterable<Buffer> {
    if (this.lost) throw this.lost;
    const body = await this.store.objects.stream(`${this.ref.base}.eml`);
    // Stopping mid-text when the claim is lost makes the client cut the connection (RFC 5321
    // 4.1.1.4: the server must not deliver it): the run that has it now delivers it alone.
    for await (const chunk of body) {
      if (this.lost) throw this.lost;
      yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    }
    if (this.lost) throw this.lost;
  }

  /**
   * Out of the undelivered set: the .eml first (from then on it is out), then what goes with it.
   * Each is tagged first, so that its old version may expire (lambda/mail-retention.ts).
   */
  private async takeOut(): Promise<void> {
    const { objects } = this.store;
    await objects.allowExpiry(`${this.ref.base}.eml`);
    await objects.delete(`${this.ref.base}.eml`);
    await objects.allowExpiry(`${this.ref.base}.json`);
    await objects.delete(`${this.ref.base}.json`).catch(() => undefined);
    if (this.progressed) {
      await objects.allowExpiry(`${this.ref.base}.progress`);
      await objects.delete(`${this.ref.base}.progress`).catch(() => undefined);
    }
  }

  async delivered(): Promise<void> {
    try {
      await this.confirm();
      await this.takeOut();
    } finally {
      await this.finish();
    }
  }

  async failed(
    answers: readonly (RecipientAnswer | ExpiredRecipient)[],
    notified: readonly DsnRecord[],
    reason?: string,
  ): Promise<void> {
    const to = this.store.failedKey(this.ref);
    try {
      await this.confirm();
      await this.store.objects.copy(`${this.ref.base}.json`, `${to}.json`);
      await this.store.objects.put(
        `${to}.replies.json`,
        repliesJson(this.ref.id, new Date(), answers, notified, reason),
      );
      await this.store.objects.copyMessage(`${this.ref.base}.eml`, `${to}.eml`, this.source);
      // A large copy takes a while: the message is taken out only if it is still ours.
      await this.confirm();
      await this.takeOut();
    } finally {
      await this.finish();
    }
  }

  async deferred(
    answers: readonly RecipientAnswer[],
    notified: readonly DsnRecord[],
  ): Promise<void> {
    try {
      await this.record(answers, notified);
    } finally {
      await this.finish();
    }
  }

  async record(answers: readonly RecipientAnswer[], notified: readonly DsnRecord[]): Promise<void> {
    await this.confirm();
    if (!answers.length && !notified.length) return;
    // The progress record it replaces becomes an old version: tagged, it may expire.
    if (this.progressed) await this.store.objects.allowExpiry(`${this.ref.base}.progress`);
    await this.store.objects.put(`${this.ref.base}.progress`, progressJson(answers, notified));
    this.progressed = true;
  }

  release(): Promise<void> {
    return this.finish();
  }
}
