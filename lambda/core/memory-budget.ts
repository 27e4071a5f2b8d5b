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

/**
 * The budget for a function of `memoryMb` megabytes (AWS_LAMBDA_FUNCTION_MEMORY_SIZE): what is
 * left after the runtime, the SDK and the code (about 128 MB, measured in bench/odmr-receive.ts),
 * halved for the garbage collector's slack and the copies the HTTP stack makes; at least 16 MiB.
 */
export function lambdaMailMemory(memoryMb: number): number {
  // Lambda's "MB" are MiB (128 MB is 134,217,728 bytes).
  return Math.max(16 * MiB, Math.floor(((memoryMb - 128) * MiB) / 2));
}
