/** One cycle over many targets: bounded concurrency, independent results, the deadline, claims. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSettings, parseTarget } from '../../lambda/core/config';
import { ConfigError, DequeueError } from '../../lambda/core/errors';
import type { CycleCounter, LoadedConfig } from '../../lambda/core/ports';
import { runCycle } from '../../lambda/core/run-cycle';
import { NOT_REACHED } from '../../lambda/core/work-targets';
import { ScriptedProvider } from '../../peers/scripted-provider';

let provider: ScriptedProvider;
let open = 0;
let peak = 0;

beforeAll(async () => {
  provider = await new ScriptedProvider({
    extensions: ['ETRN'],
    etrn: { 'bad.test': '459 not allowed' },
    onLine: async (line) => {
      if (!line.startsWith('ETRN')) return false;
      open++;
      peak = Math.max(peak, open);
      await new Promise((r) => setTimeout(r, 100));
      open--;
      return false;
    },
  }).start();
});
afterAll(() => provider.stop());

const credentials = {
  get: async () => {
    throw new DequeueError('config', 'no secrets here');
  },
};
const counterAt = (start: number): CycleCounter & { value: number } => ({
  value: start,
  async peek() {
    return this.value;
  },
  async count() {
    return { cycle: ++this.value, counted: true };
  },
});
const config = (targets: unknown[], settings: unknown = {}): LoadedConfig => ({
  settings: parseSettings(settings, 'test'),
  targets: targets.map((t, i) => parseTarget(t, 'test', `targets[${i}]`)),
  invalid: [],
});
const t = (name: string, domain = `${name}.test`, extra = {}) => ({
  name,
  host: '127.0.0.1',
  port: provider.port,
  tls: 'none',
  command: `ETRN ${domain}`,
  ...extra,
});

describe('runCycle', () => {
  it('works many targets at most `concurrency` at a time, each result independent', async () => {
    peak = 0;
    const targets = Array.from({ length: 12 }, (_, i) =>
      t(`t${i}`, i === 3 ? 'bad.test' : undefined),
    );
    const result = await runCycle(
      config(targets, { concurrency: 4 }),
      {},
      { credentials, counter: counterAt(0) },
    );
    expect(peak).toBe(4);
    expect(result.cycle).toBe(1);
    expect(result.results.map((r) => r.target)).toEqual(targets.map((x) => x.name));
    expect(result.results.filter((r) => r.outcome === 'signalled')).toHaveLength(11);
    expect(result.results[3]).toMatchObject({
      outcome: 'permanent-failure',
      replies: [{ code: 459 }],
    });
  });

  it('reports invalid and unknown targets as config-error while the others run', async () => {
    const loaded = {
      ...config([t('ok')]),
      invalid: [
        {
          name: 'broken',
          error: new ConfigError('/dequeue/targets/broken', 'port', 'must be a number'),
        },
      ],
    };
    const result = await runCycle(
      loaded,
      { targets: ['ok', 'broken', 'ghost'] },
      { credentials, counter: counterAt(0) },
    );
    expect(result.results.map((r) => [r.target, r.outcome, r.error])).toEqual([
      ['broken', 'config-error', '/dequeue/targets/broken: port: must be a number'],
      ['ok', 'signalled', null],
      ['ghost', 'config-error', 'no target named "ghost" in the configuration'],
    ]);
  });

  it('starts no target when the deadline leaves too little time, and reports each one', async () => {
    const before = provider.connections.length;
    const result = await runCycle(
      config([t('late1'), t('late2')]),
      { deadline: Date.now() + 1000 },
      { credentials, counter: counterAt(0) },
    );
    expect(result.results.map((r) => r.outcome)).toEqual([
      'temporary-failure',
      'temporary-failure',
    ]);
    expect(result.results[0]!.error).toMatch(
      /not started: too little time left before the run's deadline/,
    );
    expect(provider.connections.length).toBe(before);
  });

  it('when the deadline lets one target through per cycle, every target has its turn (the order rotates with the cycle)', async () => {
    const counter = counterAt(0);
    // A clock that jumps past the deadline as soon as one target has finished: each cycle reaches
    // exactly one target, whatever the machine's speed.
    let offset = 0;
    const now = () => Date.now() + offset;
    const signalledIn = new Map<string, number[]>();
    const notReached: string[] = [];
    for (let i = 0; i < 3; i++) {
      offset = 0;
      const deadline = Date.now() + 60_000;
      const targets = ['first', 'second', 'third'].map((name) =>
        t(name, undefined, { timeoutSeconds: 30 }),
      );
      const result = await runCycle(
        config(targets, { concurrency: 1 }),
        { deadline },
        {
          credentials,
          counter,
          now,
          onResult: () => {
            offset += 120_000;
          },
        },
      );
      for (const r of result.results) {
        if (r.outcome === 'signalled')
          signalledIn.set(r.target, [...(signalledIn.get(r.target) ?? []), r.cycle]);
        else {
          expect(r).toMatchObject({ outcome: 'temporary-failure', reason: NOT_REACHED });
          notReached.push(r.target);
        }
      }
    }
    // In a fixed order "first" would be signalled three times and the others never.
    expect([...signalledIn.keys()].sort()).toEqual(['first', 'second', 'third']);
    expect([...signalledIn.values()].map((cycles) => cycles.length)).toEqual([1, 1, 1]);
    expect(notReached).toHaveLength(6);
    expect(NOT_REACHED).toMatch(/^not reached before the run's deadline/);
  });

  it('a claim already taken (a duplicate delivery of the slot) skips the target', async () => {
    const claimed = new Set<string>();
    const counter: CycleCounter = {
      peek: async () => 7,
      count: async () => ({ cycle: 7, counted: false }),
      claim: async (cycle, name) =>
        claimed.has(`${cycle}#${name}`) ? false : (claimed.add(`${cycle}#${name}`), true),
    };
    claimed.add('7#done');
    const result = await runCycle(
      config([t('done'), t('fresh')]),
      { slot: 's' },
      { credentials, counter },
    );
    expect(result.results.map((r) => [r.target, r.outcome, r.reason])).toEqual([
      ['done', 'skipped', 'already signalled in cycle 7'],
      ['fresh', 'signalled', undefined],
    ]);
  });

  it('force does not count; the secret of a forced target is still needed', async () => {
    const counter = counterAt(5);
    const result = await runCycle(
      config([t('f', undefined, { everyNthCycle: 9, auth: { secretId: 'x' } })]),
      { force: true },
      { credentials, counter },
    );
    expect(counter.value).toBe(5);
    expect(result.results[0]).toMatchObject({
      cycle: 5,
      outcome: 'config-error',
      error: 'no secrets here',
    });
  });

  it('an ATRN target without a mail store is a config error and nothing is sent', async () => {
    const before = provider.connections.length;
    const result = await runCycle(
      config([t('pull', undefined, { command: 'ATRN customer.test', auth: { secretId: 'x' } })]),
      {},
      { credentials, counter: counterAt(0) },
    );
    expect(result.results[0]).toMatchObject({
      outcome: 'config-error',
      error: expect.stringContaining('ATRN needs somewhere to store the mail'),
    });
    expect(provider.connections.length).toBe(before);
  });
});
