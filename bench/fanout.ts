/**
 * A cycle of many targets, one invocation against the fan-out with K workers: wall time from the
 * scheduled start to the last result, in simulation.
 *
 *   npx tsx bench/fanout.ts [--targets 10000] [--seed 7] [--dead 0.05] [--refuse 0.05]
 *
 * Real time is out of the question (5% of 10,000 targets dead with 30 s timeouts is 4 hours of
 * waiting in a row), so this is a discrete-event simulation of the code's scheduling on a virtual
 * clock, with the providers as a distribution:
 *
 * - providers: 90% answer every reply within 100 ms (4 replies: greeting, EHLO, ETRN, QUIT, each
 *   10-100 ms), `--dead` (5%) never answer the greeting and time out after 30 s, `--refuse` (5%)
 *   refuse at once (RST or a 554 greeting, 1-60 ms);
 * - every target costs its claim (DynamoDB PutItem, 10 ms) before the session;
 * - a cycle first lists its configuration: 1 GetParametersByPath page of 10 targets per 25 ms;
 * - one invocation (today without a queue): a pool of `settings.concurrency` C sessions over the
 *   targets in their rotated order, under the deadline 15 min - 5 s (the Lambda maximum); targets not
 *   started by then are "not reached";
 * - fan-out: the coordinator sends 1 order per target with SendMessageBatch (10 a call, 8 calls
 *   in flight, 25 ms each); K workers (the mapping's maximum concurrency) each take a batch of B
 *   orders (waiting up to the 1 s batching window for B > 10), pay a start-up (400 ms cold the
 *   first time, 20 ms warm), work it with a pool of C under their own deadline (function timeout
 *   15 min - 5 s). A worker hands its unreached orders back, visible again 30 s after it ends
 *   (lambda/work-order-hand-back.ts); the simulation does not requeue them but counts them "not
 *   reached" (none is, with the batches in the table).
 *
 * The pool, the rotation of the targets and the deadline rule are the ones of
 * lambda/core/work-targets.ts; the AWS latencies are typical figures for calls in one region, not
 * measurements. Prints a markdown table headed by the command that made it; asserts nothing.
 */
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { rotateForCycle } from '../lambda/core/due-targets';

const { values } = parseArgs({
  options: {
    targets: { type: 'string', default: '10000' },
    seed: { type: 'string', default: '7' },
    dead: { type: 'string', default: '0.05' },
    refuse: { type: 'string', default: '0.05' },
  },
});
const TARGETS = Number(values.targets);
const DEAD = Number(values.dead);
const REFUSE = Number(values.refuse);
if (!Number.isInteger(TARGETS) || TARGETS < 1)
  throw new Error(`--targets ${values.targets}: a whole number`);

const INTERVAL_S = 15 * 60;
const MARGIN_S = 5;
const DEAD_TIMEOUT_S = 30;
const CLAIM_S = 0.01;
const SSM_PAGE_S = 0.025;
const SEND_BATCH_S = 0.025;
const SENDS_IN_FLIGHT = 8;
const COLD_START_S = 0.4;
const WARM_START_S = 0.02;
const WORKER_TIMEOUT_S = 900;
const BATCHING_WINDOW_S = 1;

/** mulberry32: a small seeded generator, so every run of one seed sees the same providers. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Provider {
  readonly kind: 'answers' | 'dead' | 'refuses';
  /** Seconds one session takes, its claim included. */
  readonly seconds: number;
}

function providers(n: number, seed: number): Provider[] {
  const r = random(seed);
  return Array.from({ length: n }, () => {
    const roll = r();
    if (roll < DEAD) return { kind: 'dead', seconds: CLAIM_S + DEAD_TIMEOUT_S };
    if (roll < DEAD + REFUSE) return { kind: 'refuses', seconds: CLAIM_S + 0.001 + r() * 0.059 };
    let s = CLAIM_S;
    for (let i = 0; i < 4; i++) s += 0.01 + r() * 0.09;
    return { kind: 'answers', seconds: s };
  });
}

/** A min-heap of numbers (pool slots' free times). */
class Heap {
  private readonly a: number[] = [];
  push(x: number): void {
    const a = this.a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= a[i]!) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }
  pop(): number {
    const a = this.a;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l]! < a[m]!) m = l;
        if (r < a.length && a[r]! < a[m]!) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
  get size(): number {
    return this.a.length;
  }
}

/**
 * work-targets' pool: at most `c` at once, in order, each started only if one reply's bound
 * (30 s) still fits before the deadline. Returns the end time of each target (undefined: not
 * reached) and when the pool was done.
 */
function pool(
  durations: readonly number[],
  c: number,
  start: number,
  deadline: number,
): { ends: (number | undefined)[]; done: number } {
  const slots = new Heap();
  for (let i = 0; i < Math.min(c, durations.length); i++) slots.push(start);
  const ends: (number | undefined)[] = [];
  let done = start;
  for (const d of durations) {
    const free = slots.pop();
    if (free + DEAD_TIMEOUT_S > deadline) {
      ends.push(undefined); // not reached: reported at once, the slot stays free
      slots.push(free);
      continue;
    }
    const end = Math.min(free + d, deadline);
    ends.push(end);
    done = Math.max(done, end);
    slots.push(end);
  }
  return { ends, done };
}

interface Row {
  readonly design: string;
  /** Lambda time billed, in seconds of invocations (all of them, coordinator included). */
  readonly invocationSeconds: number;
  readonly sessions: number;
  readonly wall: number;
  readonly signalledInInterval: number;
  readonly notReached: number;
}

function oneInvocation(ps: readonly Provider[], c: number, cycle: number): Row {
  const listed = Math.ceil(ps.length / 10) * SSM_PAGE_S;
  const order = rotateForCycle(ps, cycle);
  const { ends } = pool(
    order.map((p) => p.seconds),
    c,
    listed,
    INTERVAL_S - MARGIN_S,
  );
  const reached = ends.filter((e): e is number => e !== undefined);
  const wall = Math.max(...reached);
  return {
    design: `one invocation, concurrency ${c}`,
    invocationSeconds: wall,
    sessions: c,
    wall,
    signalledInInterval: reached.filter((e) => e <= INTERVAL_S).length,
    notReached: ends.length - reached.length,
  };
}

function fanOut(ps: readonly Provider[], k: number, b: number, c: number, cycle: number): Row {
  const listed = Math.ceil(ps.length / 10) * SSM_PAGE_S;
  const order = rotateForCycle(ps, cycle);
  // When each order is visible in the queue.
  const visible = order.map(
    (_, i) => listed + (Math.floor(Math.floor(i / 10) / SENDS_IN_FLIGHT) + 1) * SEND_BATCH_S,
  );
  const workers = new Heap();
  for (let i = 0; i < k; i++) workers.push(0);
  const warm = new Set<number>();
  let next = 0;
  let last = 0;
  let inInterval = 0;
  let notReached = 0;
  let invocation = 0;
  const sent = visible[visible.length - 1]!;
  let billed = sent; // the coordinator: listing and sending
  while (next < order.length) {
    const free = workers.pop();
    const take = Math.min(b, order.length - next);
    // The mapping hands over a batch once B orders are there or the window has passed.
    const firstVisible = Math.max(free, visible[next]!);
    const fullAt = visible[next + take - 1]!;
    const start =
      b > 10
        ? Math.max(firstVisible, Math.min(fullAt, firstVisible + BATCHING_WINDOW_S))
        : Math.max(firstVisible, fullAt);
    const ready = order.slice(next, next + take).filter((_, j) => visible[next + j]! <= start);
    const count = Math.max(1, ready.length);
    const slot = invocation++ % k;
    const begin = start + (warm.has(slot) ? WARM_START_S : COLD_START_S);
    warm.add(slot);
    const { ends, done } = pool(
      order.slice(next, next + count).map((p) => p.seconds),
      c,
      begin,
      begin + WORKER_TIMEOUT_S - MARGIN_S,
    );
    for (const e of ends) {
      if (e === undefined) notReached++;
      else {
        last = Math.max(last, e);
        if (e <= INTERVAL_S) inInterval++;
      }
    }
    next += count;
    billed += done - start;
    workers.push(done);
  }
  const defaults = k === 10 && b === 50 && c === 10 ? ' (the defaults)' : '';
  return {
    design: `fan-out, K=${k} workers, batch ${b}, concurrency ${c}${defaults}`,
    invocationSeconds: billed,
    sessions: k * c,
    wall: last,
    signalledInInterval: inInterval,
    notReached,
  };
}

const ps = providers(TARGETS, Number(values.seed));
const cycle = 1;
const rows: Row[] = [
  oneInvocation(ps, 10, cycle),
  oneInvocation(ps, 100, cycle),
  oneInvocation(ps, 500, cycle),
  fanOut(ps, 5, 10, 10, cycle),
  fanOut(ps, 10, 10, 10, cycle),
  fanOut(ps, 20, 10, 10, cycle),
  fanOut(ps, 5, 50, 10, cycle),
  fanOut(ps, 10, 50, 10, cycle),
  fanOut(ps, 5, 100, 10, cycle),
  fanOut(ps, 10, 100, 10, cycle),
  fanOut(ps, 10, 100, 50, cycle),
  fanOut(ps, 20, 100, 50, cycle),
];

const answered = ps.filter((p) => p.kind === 'answers').length;
const dead = ps.filter((p) => p.kind === 'dead').length;
const fmt = (s: number) =>
  s >= 60
    ? `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, '0')} s`
    : `${s.toFixed(1)} s`;
const commit = (() => {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
})();
console.log(
  `\`npx tsx bench/fanout.ts --targets ${TARGETS} --seed ${values.seed} --dead ${DEAD} --refuse ${REFUSE}\` — simulated (virtual clock), node ${process.version}, commit ${commit}, ${new Date().toISOString().slice(0, 10)}`,
);
console.log(
  `\n${TARGETS} targets: ${answered} answer within 100 ms a reply, ${dead} dead (30 s timeout), ${TARGETS - answered - dead} refuse at once. Interval ${INTERVAL_S / 60} min.\n`,
);
console.log(
  '| design | sessions at once | wall time to the last result | results within 15 min | not reached | Lambda GB-s per 1,000 targets (256 MB) |',
);
console.log('|---|---:|---:|---:|---:|---:|');
for (const r of rows) {
  const gbSeconds = (r.invocationSeconds * 0.25 * 1000) / TARGETS;
  console.log(
    `| ${r.design} | ${r.sessions} | ${fmt(r.wall)} | ${r.signalledInInterval} | ${r.notReached} | ${gbSeconds.toFixed(0)} |`,
  );
}
