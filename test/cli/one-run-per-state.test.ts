/**
 * Eight `dequeue` processes started at once on one --state file (cron and a person at the
 * keyboard, a timer that fired twice): the lock lets one run at a time, so the cycle count is
 * exact and each target is signalled as often as its everyNthCycle says, never twice in a cycle.
 * A run that could not get the lock in time exits 2, names the holder and sends nothing.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { type CliRun, runDequeue } from '../support/dequeue-process';

const RUNS = 8;

let dir: string;
let provider: ScriptedProvider;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dequeue-one-run-'));
  provider = await new ScriptedProvider({ extensions: ['ETRN'] }).start();
});
afterAll(async () => {
  await provider.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('one run per state file', () => {
  it(`${RUNS} runs at once: cycles 1..N exactly once each, every target signalled as its everyNthCycle says`, async () => {
    const target = (name: string, everyNthCycle: number) => ({
      name,
      host: '127.0.0.1',
      port: provider.port,
      tls: 'none',
      command: `ETRN ${name}.test`,
      everyNthCycle,
    });
    const config = join(dir, 'config.json');
    await writeFile(config, JSON.stringify({ targets: [target('every', 0), target('third', 3)] }));
    const state = join(dir, 'state.json');
    const runs: CliRun[] = await Promise.all(
      Array.from({ length: RUNS }, () =>
        runDequeue(['--config', config, '--state', state, '--json'], 120_000),
      ),
    );

    const worked = runs.filter((r) => r.status === 0);
    const refused = runs.filter((r) => r.status !== 0);
    // Under load a run may wait longer than the lock allows: it then exits 2 and says who holds it.
    for (const r of refused) {
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/in use by another run \(pid \d+ on \S+, since \S+\)/);
      expect(r.stdout).toBe('');
    }
    expect(worked.length).toBeGreaterThan(0);
    const n = worked.length;
    const cycles = worked
      .map((r) => JSON.parse(r.stdout.split('\n')[0]!).cycle as number)
      .sort((a, b) => a - b);
    expect(cycles).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(JSON.parse(await readFile(state, 'utf8')).cycle).toBe(n);

    const etrns = (node: string) => provider.lines.filter((l) => l === `ETRN ${node}`).length;
    expect(etrns('every.test')).toBe(n);
    // Due in cycles 1, 4, 7, ...
    expect(etrns('third.test')).toBe(Math.ceil(n / 3));
    expect((await readdir(dir)).sort()).toEqual(['config.json', 'state.json']);
  });
});
