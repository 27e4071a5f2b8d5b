/**
 * Eight `dequeue` processes started at once on one --state file (cron and a person at the
 * keyboard, a timer that fired twice): the lock lets one run at a time, so the cycle count is
 * exact and each target is signalled as often as its everyNthCycle says, never twice in a cycle.
 * A run that could not get the lock in time exits 2, names the holder and sends nothing; a lock
 * whose process is gone is broken and the run goes ahead.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { runCli } from '../support/cli-run';
import { type CliRun, runDequeue } from '../support/dequeue-process';

const RUNS = 8;

let dir: string;
/** The single-run tests' files, apart from the eight runs' directory. */
let others: string;
let provider: ScriptedProvider;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dequeue-one-run-'));
  others = await mkdtemp(join(tmpdir(), 'dequeue-one-run-'));
  provider = await new ScriptedProvider({ extensions: ['ETRN'] }).start();
});
afterAll(async () => {
  await provider.stop();
  await rm(dir, { recursive: true, force: true });
  await rm(others, { recursive: true, force: true });
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

  /** A config with one ETRN target of its own, and a --state file whose lock `holder` holds. */
  async function heldState(name: string, holder: { pid: number; host: string; since: string }) {
    const sub = await mkdtemp(join(others, `${name}-`));
    const config = join(sub, 'config.json');
    await writeFile(
      config,
      JSON.stringify({
        targets: [
          {
            name,
            host: '127.0.0.1',
            port: provider.port,
            tls: 'none',
            command: `ETRN ${name}.test`,
          },
        ],
      }),
    );
    const state = join(sub, 'state.json');
    const until = new Date(Date.now() + 3600_000).toISOString();
    await writeFile(`${state}.lock`, `${JSON.stringify({ ...holder, until })}\n`);
    return { sub, args: ['--config', config, '--state', state, '--json'] };
  }

  it('a run that finds the file held by a live run exits 2, names it (pid, host, since) and sends nothing', async () => {
    const since = '2026-03-01T10:00:00.000Z';
    const { sub, args } = await heldState('held', { pid: process.pid, host: hostname(), since });
    const run = await runCli(args, { stateLockWaitMs: 200 });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(
      `state.json: in use by another run (pid ${process.pid} on ${hostname()}, since ${since}); waited 200 ms for it, nothing was sent`,
    );
    expect(run.stdout).toBe('');
    expect(provider.lines).not.toContain('ETRN held.test');
    // Its lock untouched, no state written.
    expect((await readdir(sub)).sort()).toEqual(['config.json', 'state.json.lock']);
  });

  it('a lock left by a process that is gone is broken: the run goes ahead and removes it after', async () => {
    const gone = spawnSync(process.execPath, ['-e', 'process.pid']).pid!;
    const { sub, args } = await heldState('orphaned', {
      pid: gone,
      host: hostname(),
      since: '2026-03-01T10:00:00.000Z',
    });
    const run = await runDequeue(args);
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout.split('\n')[0]!)).toMatchObject({
      target: 'orphaned',
      outcome: 'signalled',
      cycle: 1,
    });
    expect(provider.lines).toContain('ETRN orphaned.test');
    expect((await readdir(sub)).sort()).toEqual(['config.json', 'state.json']);
  });
});
