/**
 * The CLI as a user meets it: flags, output on stdout (NDJSON with --json), logs and transcript on
 * stderr, exit codes, validation before anything is sent, and the --state cycle counter.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli-run';
import { ScriptedProvider } from '../../peers/scripted-provider';

const run = promisify(execFile);
let dir: string;
let provider: ScriptedProvider;
const account = { username: 'customer', password: 'pw-never-printed' };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dequeue-cli-'));
  provider = await new ScriptedProvider({
    account,
    extensions: ['PIPELINING', 'ETRN', 'AUTH CRAM-MD5'],
    etrn: {
      'quiet.test': '251 No messages waiting',
      'denied.test': '459 Node denied.test not allowed',
    },
  }).start();
});
afterAll(async () => provider.stop());

async function files(config: unknown, secrets?: unknown) {
  const sub = await mkdtemp(join(dir, 'case-'));
  const configFile = join(sub, 'config.json');
  await writeFile(configFile, typeof config === 'string' ? config : JSON.stringify(config));
  let secretsFile: string | undefined;
  if (secrets !== undefined) {
    secretsFile = join(sub, 'secrets.json');
    await writeFile(secretsFile, JSON.stringify(secrets));
  }
  return { sub, configFile, secretsFile };
}

const cli = (argv: string[]) => runCli(argv);

const target = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  host: '127.0.0.1',
  port: provider.port,
  tls: 'none',
  command: `ETRN ${name}.test`,
  ...extra,
});

describe('dequeue CLI', () => {
  it('--help prints the usage and exits 0', async () => {
    const r = await cli(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(
      'dequeue --config FILE [--secrets FILE] [--state FILE] [--mail-dir DIR]',
    );
  });

  it('a usage error exits 2 and says what is wrong', async () => {
    expect((await cli([])).stderr).toContain('--config FILE is required');
    const r = await cli(['--config', 'x.json', '--bogus']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('dequeue: unknown option --bogus\n');
  });

  it('--json prints one result per target per line and nothing else; exit 0 when all went well', async () => {
    const { configFile, secretsFile } = await files(
      {
        targets: [
          target('main', { auth: { secretId: 'isp' } }),
          target('quiet'),
          target('off', { enabled: false }),
        ],
      },
      { isp: account },
    );
    const before = provider.connections.length;
    const r = await cli(['--config', configFile, '--secrets', secretsFile!, '--json']);
    expect(r.status).toBe(0);
    const lines = r.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.target, l.outcome])).toEqual(
      expect.arrayContaining([
        ['main', 'signalled'],
        ['quiet', 'no-mail'],
        ['off', 'skipped'],
      ]),
    );
    expect(lines).toHaveLength(3);
    const main = lines.find((l) => l.target === 'main');
    expect(main).toMatchObject({
      cycle: 1,
      messages: 0,
      error: null,
      replies: [{ command: 'ETRN main.test', code: 250, text: 'Queuing started' }],
    });
    expect(typeof main.durationMs).toBe('number');
    expect(provider.connections.length - before).toBe(2);
    expect(r.stderr).toContain('cycle 1: ');
  });

  it('exits 1 when a target failed, and the other targets still ran', async () => {
    const { configFile } = await files({ targets: [target('denied'), target('fine')] });
    const r = await cli(['--config', configFile, '--json']);
    expect(r.status).toBe(1);
    const byName = Object.fromEntries(
      r.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l))
        .map((l) => [l.target, l.outcome]),
    );
    expect(byName).toEqual({ denied: 'permanent-failure', fine: 'signalled' });
  });

  it('an invalid target anywhere in the file exits 2 naming file and field, and nothing is sent', async () => {
    const { configFile } = await files({
      targets: [target('good'), target('bad', { command: 'ETRN a.test\nQUIT' })],
    });
    const before = provider.connections.length;
    const r = await cli(['--config', configFile]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${configFile}: targets[1].command: must not contain CR, LF or NUL`);
    expect(r.stdout).toBe('');
    expect(provider.connections.length).toBe(before);
  });

  it('a secret missing from --secrets exits 2 before anything is sent', async () => {
    const { configFile, secretsFile } = await files(
      { targets: [target('a'), target('b', { auth: { secretId: 'other' } })] },
      { isp: account },
    );
    const before = provider.connections.length;
    const r = await cli(['--config', configFile, '--secrets', secretsFile!]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('no secret "other" (needed by targets[1].auth.secretId');
    expect(provider.connections.length).toBe(before);
  });

  it('malformed JSON and an unknown --target exit 2', async () => {
    const bad = await files('{"targets": [');
    expect((await cli(['--config', bad.configFile])).stderr).toMatch(
      /config\.json: is not valid JSON/,
    );
    const { configFile } = await files({ targets: [target('a')] });
    const r = await cli(['--config', configFile, '--target', 'nope']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--target nope: no target of that name (known: a)');
  });

  it('--state counts cycles and signals every Nth; --force signals without counting; --dry-run sends nothing', async () => {
    const { sub, configFile } = await files({
      settings: { everyNthCycle: 3 },
      targets: [target('n3'), target('always', { everyNthCycle: 0 })],
    });
    const state = join(sub, 'state.json');
    const outcomes: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await cli(['--config', configFile, '--state', state, '--json']);
      const n3 = JSON.parse(r.stdout.split('\n').find((l) => l.includes('"n3"'))!);
      outcomes.push(`${n3.cycle}:${n3.outcome}`);
    }
    expect(outcomes).toEqual(['1:signalled', '2:skipped', '3:skipped', '4:signalled']);
    expect(JSON.parse(await readFile(state, 'utf8')).cycle).toBe(4);

    const forced = await cli([
      '--config',
      configFile,
      '--state',
      state,
      '--json',
      '--force',
      '--target',
      'n3',
    ]);
    expect(JSON.parse(forced.stdout)).toMatchObject({
      target: 'n3',
      outcome: 'signalled',
      cycle: 4,
    });
    expect(JSON.parse(await readFile(state, 'utf8')).cycle).toBe(4);

    const before = provider.connections.length;
    const dry = await cli(['--config', configFile, '--state', state, '--json', '--dry-run']);
    expect(dry.status).toBe(0);
    const lines = dry.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.find((l) => l.target === 'always')).toMatchObject({
      outcome: 'skipped',
      cycle: 5,
      reason: expect.stringMatching(/^dry run: would send ETRN always.test to 127.0.0.1:\d+$/),
    });
    expect(lines.find((l) => l.target === 'n3')).toMatchObject({
      outcome: 'skipped',
      reason: 'not due: signals every 3 cycles, next in cycle 7',
    });
    expect(provider.connections.length).toBe(before);
    expect(JSON.parse(await readFile(state, 'utf8')).cycle).toBe(4);
  });

  it('--verbose writes the transcript to stderr with credentials redacted', async () => {
    const { configFile, secretsFile } = await files(
      { targets: [target('v', { auth: { secretId: 'isp' } })] },
      { isp: account },
    );
    const r = await cli(['--config', configFile, '--secrets', secretsFile!, '--verbose']);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('[v] C: AUTH CRAM-MD5');
    expect(r.stderr).toContain('[v] C: <credentials redacted>');
    expect(r.stderr).toContain('[v] S: 235 2.7.0 Authentication successful');
    expect(r.stderr).toContain('[v] C: ETRN v.test');
    expect(r.stderr + r.stdout).not.toContain(account.password);
    expect(r.stdout).toMatch(
      /^v\s+signalled\s+cycle 1, \d+ ms\n\s+ETRN v.test -> 250 Queuing started\n$/,
    );
  });

  it('runs as `npx dequeue` from the project root', async () => {
    const { configFile } = await files({ targets: [target('npx')] });
    const { stdout } = await run('npx', ['dequeue', '--config', configFile, '--json'], {
      cwd: join(import.meta.dirname, '..', '..'),
    });
    expect(JSON.parse(stdout)).toMatchObject({
      target: 'npx',
      outcome: 'signalled',
      replies: [{ code: 250 }],
    });
  });
});
