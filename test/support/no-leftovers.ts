/**
 * After a session nothing of it may live on: a timer or a socket left behind keeps the CLI alive
 * after its results are out (a provider that never answered QUIT held it for the full reply
 * timeout), or fires later inside a warm Lambda.
 *
 *   const leftovers = watchLeftovers();      // before the session
 *   ... run the session ...
 *   expect(await leftovers.settle()).toEqual([]);
 *
 * Two views, both needed:
 * - `process.getActiveResourcesInfo()` is what keeps the event loop (and so the process) alive:
 *   its counts of handles (sockets, servers, pipes) must return to what they were before. Timers
 *   are left to the second view: vitest arms and clears its own at any moment (hook timeouts,
 *   the throttled reports of task results), so their count proves nothing either way.
 * - An `async_hooks` watch of the timers and TCP sockets created meanwhile by the product's own
 *   code (lambda/, cli/), which also sees the ones that `unref()` hides from the first view: an
 *   unref'd timer does not hold the process, but it still fires later (in a warm Lambda, into
 *   the next invocation). A resource is the product's when the first caller outside Node's
 *   internals is a file under lambda/ or cli/; vitest's, the test's own peers' and sockets
 *   accepted by a listening server are not. TLS sockets are watched through the TCP socket
 *   under them (a TLSWRAP is released only by the garbage collector).
 *
 * Closing is asynchronous (a destroyed socket's handle goes at the next turn of the event loop,
 * the peer's side of a loopback connection a turn later): settle() lets the loop turn a bounded
 * number of times (setImmediate, never a clock) before it reports what is still there.
 */
import { createHook } from 'node:async_hooks';
import { join, sep } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');
const WATCHED = new Set(['Timeout', 'TCPWRAP']);
const PRODUCT = [join(ROOT, 'lambda') + sep, join(ROOT, 'cli') + sep];
/** Turns of the event loop allowed for closes to complete. */
const SETTLE_TURNS = 50;

export interface Leftovers {
  /** Wait a bounded number of loop turns; resolves to what is still alive ([] when clean). */
  settle(): Promise<string[]>;
}

function counts(): Map<string, number> {
  const m = new Map<string, number>();
  for (const type of process.getActiveResourcesInfo()) m.set(type, (m.get(type) ?? 0) + 1);
  return m;
}

/** The first frame of a stack that is not Node's own, or undefined. */
function firstCaller(stack: string): string | undefined {
  for (const line of stack.split('\n').slice(1)) {
    const frame = line.trim();
    if (/\(node:|at node:|\(<anonymous>\)|no-leftovers\.ts/.test(frame)) continue;
    return frame;
  }
  return undefined;
}

function isOurs(frame: string | undefined): boolean {
  return frame !== undefined && PRODUCT.some((dir) => frame.includes(dir));
}

export function watchLeftovers(): Leftovers {
  const baseline = counts();
  const alive = new Map<number, string>();
  const hook = createHook({
    init(asyncId, type) {
      if (!WATCHED.has(type)) return;
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 40;
      const holder: { stack?: string } = {};
      Error.captureStackTrace(holder);
      Error.stackTraceLimit = limit;
      const caller = firstCaller(holder.stack ?? '');
      if (isOurs(caller)) alive.set(asyncId, `${type} created ${caller!.replace(ROOT, '.')}`);
    },
    destroy(asyncId) {
      alive.delete(asyncId);
    },
  }).enable();

  const added = (): string[] => {
    const out: string[] = [];
    for (const [type, n] of counts()) {
      if (type === 'Timeout' || type === 'Immediate') continue;
      const extra = n - (baseline.get(type) ?? 0);
      if (extra > 0) out.push(`${extra} x ${type} keeping the process alive`);
    }
    return out;
  };

  return {
    async settle() {
      let left: string[] = [];
      for (let turn = 0; turn < SETTLE_TURNS; turn++) {
        left = [...added(), ...alive.values()];
        if (left.length === 0) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
      hook.disable();
      return left;
    },
  };
}

// ---- the simple snapshot form (handles only, waiting on the clock) ----------------------------

/**
 * After a session: no timer, socket or other handle it started is left behind. Compares
 * `process.getActiveResourcesInfo()` with a snapshot taken before, by kind, waiting briefly for
 * handles that are still closing (a socket's handle goes a tick or two after destroy).
 */
export type ResourceSnapshot = ReadonlyMap<string, number>;

export function activeResources(): ResourceSnapshot {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo())
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
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
