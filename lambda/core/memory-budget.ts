/**
 * The in-flight mail memory of one run, shared by every session and every message in it: S3
 * upload parts and the provider streams' inboxes are drawn from it, so that peak memory follows
 * the configuration (the function's memory, the CLI's --mail-memory), not how many targets
 * deliver at once nor how large their messages are.
 *
 * When it is spent nothing is refused: a message waits for its upload buffers before we answer
 * its DATA with 354, and a provider stream stops reading its socket (TCP then slows the provider).
 * No wait can last for ever: a need larger than the whole budget is cut to the budget (one
 * message then has it all, by itself), waits are served first come first served, and whoever
 * holds a share is a message in progress that gives it back when it ends (its own provider never
 * waits for the budget: each stream keeps a small floor of its own, see provider-stream.ts).
 */
export class MemoryBudget {
  private used = 0;
  private readonly waiting: { readonly bytes: number; readonly grant: () => void }[] = [];
  private readonly freed = new Set<() => void>();

  constructor(readonly limitBytes: number) {
    if (!Number.isSafeInteger(limitBytes) || limitBytes <= 0)
      throw new RangeError(`a memory budget must be a positive number of bytes, not ${limitBytes}`);
  }

  get usedBytes(): number {
    return this.used;
  }

  /** Take `bytes` at once if they fit and nobody waits before us; false otherwise. */
  tryTake(bytes: number): boolean {
    if (this.waiting.length || this.used + bytes > this.limitBytes) return false;
    this.used += bytes;
    return true;
  }

  /** Take `bytes` (at most the whole budget), waiting in turn; resolves with what was taken. */
  take(bytes: number): Promise<number> {
    const need = Math.min(bytes, this.limitBytes);
    if (this.tryTake(need)) return Promise.resolve(need);
    return new Promise<number>((resolve) => {
      this.waiting.push({
        bytes: need,
        grant: () => resolve(need),
      });
    });
  }

  /** Give back what was taken. */
  give(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
    while (this.waiting.length && this.used + this.waiting[0]!.bytes <= this.limitBytes) {
      const next = this.waiting.shift()!;
      this.used += next.bytes;
      next.grant();
    }
    if (!this.waiting.length) for (const listener of [...this.freed]) listener();
  }

  /** Call `listener` whenever memory is given back (a paused stream tries again); returns the unsubscribe. */
  onFree(listener: () => void): () => void {
    this.freed.add(listener);
    return () => this.freed.delete(listener);
  }
}

/** Bytes in a mebibyte, for settings given in MiB. */
export const MiB = 1024 * 1024;

/** The share of the function's memory a run may reach: Lambda ends an invocation that reaches all of it. */
export const LAMBDA_PEAK_SHARE = 0.75;
/**
 * Peak memory of a worker invocation that holds no mail, in MiB: node 24 with the runtime's flags,
 * the bundle, its SDK clients, and a full batch of 100 ATRN sessions at once, over TLS (104 to
 * 108 MiB measured by `bench/odmr-memory.ts --only worker`, bench/README.md).
 */
export const LAMBDA_RUNTIME_MIB = 105;
/**
 * Each byte of mail in flight is held about twice: as the chunks read from the provider and as
 * the S3 part they are copied into (lib-storage concatenates them), and both stay until V8 collects
 * them, which it does late for memory outside its heap. Measured: a budget B costs 1.3 to 1.8 B.
 */
const COPIES_OF_MAIL_IN_FLIGHT = 2;

/** The smallest budget: one message at a time, one 5 MiB S3 part and the inboxes around it. */
const MIN_MAIL_MEMORY_MIB = 16;

/**
 * The smallest function, in MB, that keeps LAMBDA_PEAK_SHARE with ATRN mail in flight: the runtime
 * and the smallest budget, each byte of it held twice (183 MB). Below it a large message can take
 * the invocation to the function's memory, where Lambda ends it, and the same held mail then ends
 * every later cycle: a 128 MB worker fed 10 x 30 MB in one batch peaked at 129 MiB, a 192 MB one
 * at 127 (`bench/odmr-memory.ts --only worker --function-mb 128`).
 */
export const LAMBDA_MIN_MAIL_MB = Math.ceil(
  (LAMBDA_RUNTIME_MIB + COPIES_OF_MAIL_IN_FLIGHT * MIN_MAIL_MEMORY_MIB) / LAMBDA_PEAK_SHARE,
);

/**
 * The budget for a function of `memoryMb` megabytes (AWS_LAMBDA_FUNCTION_MEMORY_SIZE), so that the
 * invocation's peak stays under LAMBDA_PEAK_SHARE of it whatever the batch: what that share leaves
 * after the runtime, divided by the copies each byte of mail makes; at least 16 MiB (one message
 * at a time, one 5 MiB part: a function under LAMBDA_MIN_MAIL_MB cannot keep the share with ATRN
 * mail, and its store refuses it: lambda/deployed-adapters.ts).
 * 43.5 MiB at 256 MB, 139.5 at 512, 331.5 at 1024.
 */
export function lambdaMailMemory(memoryMb: number): number {
  // Lambda's "MB" are MiB (128 MB is 134,217,728 bytes).
  const free = memoryMb * LAMBDA_PEAK_SHARE - LAMBDA_RUNTIME_MIB;
  return Math.max(MIN_MAIL_MEMORY_MIB * MiB, Math.floor((free * MiB) / COPIES_OF_MAIL_IN_FLIGHT));
}
