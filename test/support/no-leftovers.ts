/**
 * After a session: no timer, socket or other handle it started is left behind (issue: timers
 * kept the CLI alive after its results). Compares `process.getActiveResourcesInfo()` with a
 * snapshot taken before, by kind, waiting briefly for handles that are still closing (a socket's
 * handle goes a tick or two after destroy).
 */
export type ResourceSnapshot = ReadonlyMap<string, number>;

export function activeResources(): ResourceSnapshot {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return counts;
}

/** What is active now and was not in `before` (kinds with their extra counts); empty when clean. */
export function leftSince(before: ResourceSnapshot): string[] {
  const extra: string[] = [];
  for (const [kind, n] of activeResources()) {
    const was = before.get(kind) ?? 0;
    if (n > was) extra.push(`${kind} x${n - was}`);
  }
  return extra;
}

/** Waits up to `waitMs` for the handles started since `before` to go; returns what is still left. */
export async function leftoversAfter(before: ResourceSnapshot, waitMs = 1_000): Promise<string[]> {
  const until = Date.now() + waitMs;
  for (;;) {
    // Our own wait below is a Timeout while it runs, and gone once it has fired.
    const left = leftSince(before);
    if (!left.length || Date.now() >= until) return left;
    await new Promise((r) => setTimeout(r, 10));
  }
}
