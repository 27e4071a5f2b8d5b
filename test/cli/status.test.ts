/**
 * `dequeue status --state FILE` after real runs of the CLI against a scripted provider: what each
 * run recorded in the state file, the table a person reads, the JSON a script reads, exit codes,
 * and a state file from before statuses existed.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli-run';
import { ScriptedProvider } from '../../peers/scripted-provider';

let dir: string;
let provider: ScriptedProvider;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dequeue-status-cli-'));
  provider = await new ScriptedProvider({
    extensions: ['ETRN'],
    etrn: { 'quiet.test': '251 No messages waiting', 'busy.test': '458 Already processing' },
  }).start();
});
afterAll(async () => provider.stop());

const cli = (argv: string[]) => runCli(argv);

const target = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  host: '127.0.0.1',
  port: provider.port,
  tls: 'none',
  command: `ETRN ${name}.test`,
  ...extra,
});

async function setUp(targets: unknown[], state?: unknown) {
  const sub = await mkdtemp(join(dir, 'case-'));
  const config = join(sub, 'config.json');
  await writeFile(config, JSON.stringify({ targets }));
  const stateFile = join(sub, 'state.json');
  if (state !== undefined) await writeFile(stateFile, JSON.stringify(state));
  return { config, stateFile };
}

const lines = (text: string) =>
  text
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('dequeue status --state', () => {
  it('shows what the runs recorded: failing since when, healthy, not due, disabled; exit 1 while one fails', async () => {
    const { config, stateFile } = await setUp([
      target('main'),
      target('quiet'),
      target('busy'),
      target('spaced', { everyNthCycle: 2 }),
      target('off', { enabled: false }),
    ]);
    const first = await cli(['--config', config, '--state', stateFile, '--json']);
    expect(first.status).toBe(1); // busy: 458
    const second = await cli(['--config', config, '--state', stateFile, '--json']);
    expect(second.status).toBe(1);

    const json = await cli(['status', '--state', stateFile, '--json']);
    expect(json.status).toBe(1);
    const byName = Object.fromEntries(lines(json.stdout).map((l) => [l.target, l]));
    expect(Object.keys(byName)).toEqual(['busy', 'main', 'off', 'quiet', 'spaced']);
    expect(byName.busy).toMatchObject({
      lastOutcome: 'temporary-failure',
      lastCycle: 2,
      consecutiveFailures: 2,
      lastSuccessAt: null,
      lastSuccessCycle: null,
    });
    expect(byName.busy!.lastError).toBe('ETRN busy.test: 458 Already processing');
    expect(byName.busy!.failingSince! < byName.busy!.lastAttemptAt!).toBe(true);
    expect(byName.main).toMatchObject({
      lastOutcome: 'signalled',
      lastCycle: 2,
      lastSuccessCycle: 2,
      consecutiveFailures: 0,
      failingSince: null,
      lastError: null,
    });
    // no-mail is a success
    expect(byName.quiet).toMatchObject({
      lastOutcome: 'no-mail',
      lastSuccessCycle: 2,
      consecutiveFailures: 0,
    });
    // not due in cycle 2: the success of cycle 1 stands
    expect(byName.spaced).toMatchObject({
      lastOutcome: 'skipped',
      lastCycle: 2,
      lastSuccessCycle: 1,
    });
    expect(byName.off).toMatchObject({
      lastOutcome: 'skipped',
      lastSuccessAt: null,
      consecutiveFailures: 0,
    });

    const table = await cli(['status', '--state', stateFile]);
    expect(table.status).toBe(1);
    const rows = table.stdout.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^TARGET\s+STATE\s+LAST RUN\s+LAST SUCCESS\s+DETAIL$/);
    expect(rows.slice(1).map((r) => r.split(/\s{2,}/).slice(0, 2))).toEqual([
      ['busy', 'FAILING'],
      ['main', 'healthy'],
      ['off', 'disabled'],
      ['quiet', 'healthy'],
      ['spaced', 'not due'],
    ]);
    expect(rows[1]).toMatch(
      /2 cycles in a row since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: ETRN busy\.test: 458 Already processing$/,
    );
    expect(rows[5]).toContain('signals every 2 cycles, next in cycle 3');

    // The counter is where it was, in the same file.
    expect(JSON.parse(await readFile(stateFile, 'utf8')).cycle).toBe(2);

    const healthy = await cli(['status', '--state', stateFile, '--target', 'main', '--json']);
    expect(healthy).toMatchObject({ status: 0, stderr: '' });
    expect(lines(healthy.stdout).map((l) => [l.target, l.lastOutcome])).toEqual([
      ['main', 'signalled'],
    ]);

    // A name no run has recorded is shown, but never as healthy: its health is unknown.
    const unknown = await cli([
      'status',
      '--state',
      stateFile,
      '--target',
      'main',
      '--target',
      'later',
      '--json',
    ]);
    expect(unknown.status).toBe(2);
    expect(lines(unknown.stdout).map((l) => [l.target, l.lastOutcome, l.lastAttemptAt])).toEqual([
      ['main', 'signalled', expect.any(String)],
      ['later', null, null],
    ]);
    expect(unknown.stderr).toBe(
      'dequeue status: --target later: no run has recorded a target of that name (recorded: busy, main, off, quiet, spaced): its health is unknown until a run works it\n',
    );
  });

  it('a dry run records nothing; a forced run records without counting; a state file from before statuses keeps counting', async () => {
    const { config, stateFile } = await setUp([target('main')], {
      cycle: 4,
      updatedAt: '2026-01-01T00:00:00.000Z',
    });

    // Nothing recorded: nothing is known to be healthy (exit 2, as for a missing file).
    const none = await cli(['status', '--state', stateFile]);
    expect(none).toMatchObject({ status: 2, stdout: '' });
    expect(none.stderr).toBe(
      `dequeue status: ${stateFile}: no target status recorded yet: no run has worked a target there since, so none is known to be healthy\n`,
    );

    await cli(['--config', config, '--state', stateFile, '--dry-run']);
    expect(await cli(['status', '--state', stateFile, '--json'])).toMatchObject({
      status: 2,
      stdout: '',
    });

    expect((await cli(['--config', config, '--state', stateFile, '--force'])).status).toBe(0);
    expect(lines((await cli(['status', '--state', stateFile, '--json'])).stdout)[0]).toMatchObject({
      target: 'main',
      lastCycle: 4,
      lastSuccessCycle: 4,
    });

    expect((await cli(['--config', config, '--state', stateFile])).status).toBe(0);
    const state = JSON.parse(await readFile(stateFile, 'utf8'));
    expect(state.cycle).toBe(5);
    expect(state.targets.main).toMatchObject({
      lastOutcome: 'signalled',
      lastCycle: 5,
      messagesTotal: 0,
    });
  });

  it('usage errors and an unreadable state file exit 2', async () => {
    expect((await cli(['status'])).status).toBe(2);
    const both = await cli(['status', '--state', 'a', '--table', 'b']);
    expect(both.status).toBe(2);
    expect(both.stderr).toContain('give either --state FILE or --table NAME');
    const { stateFile } = await setUp([], {
      cycle: 1,
      targets: { x: { consecutiveFailures: 'many' } },
    });
    const bad = await cli(['status', '--state', stateFile]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain(
      `${stateFile}: targets.x.consecutiveFailures: must be a whole number ≥ 0`,
    );
  });
});
