/**
 * The CLI's answers to a newcomer's mistakes: each one exits with the right status and one line
 * that names the file (or secret) at fault and what to do, never a stack trace or a secret.
 */
import { execFile } from 'node:child_process';
import { access, chmod, mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli-run';
import { ScriptedProvider } from '../../peers/scripted-provider';

let dir: string;
let provider: ScriptedProvider;
const account = { username: 'customer', password: 'right-password' };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dequeue-mistakes-'));
  provider = await new ScriptedProvider({ account, extensions: ['ETRN', 'AUTH CRAM-MD5'] }).start();
});
afterAll(async () => provider.stop());

let n = 0;
async function file(name: string, content: unknown, mode = 0o600): Promise<string> {
  const path = join(dir, `${++n}-${name}`);
  await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  await chmod(path, mode);
  return path;
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

describe('a wrong password', () => {
  it('exits 1 and the error names the secretId to fix, not only the 535', async () => {
    const config = await file('config.json', {
      targets: [target('isp', { auth: { secretId: 'isp-account' } })],
    });
    const secrets = await file('secrets.json', {
      'isp-account': { username: 'customer', password: 'wrong-password' },
    });
    const r = await cli(['--config', config, '--secrets', secrets]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/isp\s+permanent-failure/);
    expect(r.stdout).toContain('535');
    expect(r.stdout).toContain('secretId "isp-account"');
    expect(r.stdout + r.stderr).not.toContain('wrong-password');
  });
});

describe('--state where the counter cannot be kept', () => {
  it('a missing directory exits 2 at start with one line naming the file and what to do; nothing is sent', async () => {
    const config = await file('config.json', { targets: [target('isp')] });
    const state = join(dir, 'no-such-dir', 'state.json');
    const before = provider.connections.length;
    const r = await cli(['--config', config, '--state', state]);
    expect(r.status).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      `dequeue: ${state}: the cycle counter cannot be kept here: the directory ${join(dir, 'no-such-dir')} does not exist: create it (mkdir -p ${join(dir, 'no-such-dir')}) or give --state a file in a directory that exists`,
    ]);
    expect(provider.connections.length).toBe(before);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'a directory this user may not write (run as nobody) exits 2 with one line, no stack trace',
    async () => {
      const readOnly = join(dir, 'root-owned');
      await mkdir(readOnly, { mode: 0o755 });
      await chmod(dir, 0o755);
      const config = await file('config.json', { targets: [target('isp')] }, 0o644);
      const state = join(readOnly, 'state.json');
      const bin = join(import.meta.dirname, '..', '..', 'bin', 'dequeue.js');
      const before = provider.connections.length;
      const r = await promisify(execFile)(
        'setpriv',
        [
          '--reuid=nobody',
          '--regid=nogroup',
          '--clear-groups',
          process.execPath,
          bin,
          '--config',
          config,
          '--state',
          state,
        ],
        {
          env: { PATH: process.env.PATH!, HOME: '/nonexistent' },
        },
      ).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => e,
      );
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(
        `dequeue: ${state}: the cycle counter cannot be kept here: the directory ${readOnly} is not writable by this user (EACCES): give --state a file in a directory this user owns, e.g. ~/.local/state/dequeue/state.json\n`,
      );
      expect(provider.connections.length).toBe(before);
    },
    60_000,
  );

  it('a good directory keeps no probe file behind', async () => {
    const sub = await mkdtemp(join(dir, 'state-'));
    const config = await file('config.json', { targets: [target('isp')] });
    const r = await cli(['--config', config, '--state', join(sub, 'state.json')]);
    expect(r.status).toBe(0);
    expect(await readdir(sub)).toEqual(['state.json']);
  });
});

describe('a malformed or open --secrets file', () => {
  it('a JSON syntax error names the file and line:column and never quotes the file', async () => {
    const config = await file('config.json', {
      targets: [target('isp', { auth: { secretId: 'isp' } })],
    });
    // A missing comma right after the password: JSON.parse would quote the text around it.
    const secrets = await file(
      'secrets.json',
      '{\n  "isp": {\n    "username": "customer",\n    "password": "hunter2-secret" "x": 1\n  }\n}\n',
    );
    const r = await cli(['--config', config, '--secrets', secrets]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      `dequeue: ${secrets}: is not valid JSON: line 4, column 34: "," or "}" was expected here\n`,
    );
    expect(r.stderr).not.toMatch(/hunter|secret"/);
  });

  it('warns when the file is open to other users (wider than 0600), and still runs', async () => {
    const config = await file('config.json', {
      targets: [target('isp', { auth: { secretId: 'isp' } })],
    });
    const secrets = await file('secrets.json', { isp: account }, 0o644);
    const r = await cli(['--config', config, '--secrets', secrets]);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(
      `dequeue: warning: ${secrets} is open to other users (mode 0644, wider than 0600): chmod 600 ${secrets}\n`,
    );
    const quiet = await cli([
      '--config',
      config,
      '--secrets',
      await file('secrets.json', { isp: account }, 0o600),
    ]);
    expect(quiet.stderr).not.toContain('warning');
  });
});

describe('configuration errors', () => {
  it('all of them at once, with "did you mean" for a misspelt field; exit 2 and nothing sent', async () => {
    const config = await file('config.json', {
      settings: { everyNthCyle: 2 },
      targets: [
        target('a', { port: 70000, timeoutSecond: 5 }),
        target('b', { tls: 'sometimes' }),
        target('a'),
      ],
    });
    const before = provider.connections.length;
    const r = await cli(['--config', config]);
    expect(r.status).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      `dequeue: ${config}: settings.everyNthCyle: is not a known field: did you mean "everyNthCycle"?`,
      `dequeue: ${config}: targets[0].port: must be at most 65535`,
      `dequeue: ${config}: targets[0].timeoutSecond: is not a known field: did you mean "timeoutSeconds"?`,
      `dequeue: ${config}: targets[1].tls: must be none, opportunistic, required or implicit`,
      `dequeue: 4 errors in ${config}; nothing was sent`,
    ]);
    expect(provider.connections.length).toBe(before);
  });

  it('a field name with control characters is shown escaped', async () => {
    const config = await file('config.json', { targets: [target('a', { 'tls\x1b[2J': 'none' })] });
    const r = await cli(['--config', config]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`dequeue: ${config}: targets[0].tls\\e[2J: is not a known field\n`);
  });

  it('every secret missing from --secrets at once', async () => {
    const config = await file('config.json', {
      targets: [
        target('a', { auth: { secretId: 'one' } }),
        target('b', { auth: { secretId: 'two' } }),
      ],
    });
    const secrets = await file('secrets.json', {});
    const r = await cli(['--config', config, '--secrets', secrets]);
    expect(r.status).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      `dequeue: ${secrets}: no secret "one" (needed by targets[0].auth.secretId in ${config}): the file holds no secrets`,
      `dequeue: ${secrets}: no secret "two" (needed by targets[1].auth.secretId in ${config}): the file holds no secrets`,
      `dequeue: 2 errors in ${secrets}; nothing was sent`,
    ]);

    // The one meant when one is close; else the ones there (names only, never a value).
    const some = await file('secrets.json', { onee: { username: 'u', password: 'p' } });
    const r2 = await cli(['--config', config, '--secrets', some]);
    expect(r2.stderr.trimEnd().split('\n')).toEqual([
      `dequeue: ${some}: no secret "one" (needed by targets[0].auth.secretId in ${config}): did you mean "onee"?`,
      `dequeue: ${some}: no secret "two" (needed by targets[1].auth.secretId in ${config}): the file holds "onee"`,
      `dequeue: 2 errors in ${some}; nothing was sent`,
    ]);
  });

  it('a JSON syntax error gives line:column', async () => {
    const config = await file(
      'config.json',
      '{\n  "targets": [\n    {"name": "a", "host": "h.test",}\n  ]\n}\n',
    );
    const r = await cli(['--config', config]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      `dequeue: ${config}: is not valid JSON: line 3, column 36: a comma before } (a trailing comma is not allowed)\n`,
    );
  });

  it('a configuration with no targets says so and counts nothing', async () => {
    const sub = await mkdtemp(join(dir, 'empty-'));
    const config = await file('config.json', { targets: [] });
    const r = await cli(['--config', config, '--state', join(sub, 'state.json')]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `dequeue: ${config} has no targets: nothing to signal, no cycle counted\n`,
    );
    await expect(access(join(sub, 'state.json'))).rejects.toThrow(/ENOENT/);
  });
});

describe('provider text on a terminal', () => {
  it('control characters from the provider are shown escaped in the results and --verbose; --json stays JSON', async () => {
    const hostile = await new ScriptedProvider({
      extensions: ['ETRN'],
      greeting: '220 provider.test \x1b]0;owned\x07 ready',
      etrn: { 'ansi.test': '250 \x1b[31mqueued\x1b[0m\rALL GOOD \u202eevil' },
    }).start();
    try {
      const config = await file('config.json', {
        targets: [
          {
            name: 'ansi',
            host: '127.0.0.1',
            port: hostile.port,
            tls: 'none',
            command: 'ETRN ansi.test',
          },
        ],
      });
      const r = await cli(['--config', config, '--verbose']);
      expect(r.status).toBe(0);
      expect(r.stdout).toContain(
        'ETRN ansi.test -> 250 \\e[31mqueued\\e[0m\\rALL GOOD \\u{202e}evil',
      );
      expect(r.stderr).toContain('S: 220 provider.test \\e]0;owned\\x07 ready');
      expect(r.stdout + r.stderr).not.toMatch(/[\x1b\x07\r\u202e]/);
      const json = await cli(['--config', config, '--json']);
      expect(JSON.parse(json.stdout).replies[0].text).toBe(
        '\x1b[31mqueued\x1b[0m\rALL GOOD \u202eevil',
      );
    } finally {
      await hostile.stop();
    }
  });
});

describe('--max-run-seconds', () => {
  it('bounds the whole run: a slow provider, each reply within its own timeout, is cut at the bound; exit 1', async () => {
    // Each reply takes 0.7 s (under the 1 s per-reply timeout); the third would end after 2 s.
    const slow = await new ScriptedProvider({ extensions: ['ETRN'], replyDelayMs: 700 }).start();
    try {
      const config = await file('config.json', {
        targets: [
          {
            name: 'slow',
            host: '127.0.0.1',
            port: slow.port,
            tls: 'none',
            command: 'ETRN a.test',
            timeoutSeconds: 1,
          },
        ],
      });
      const r = await cli(['--config', config, '--max-run-seconds', '2', '--json']);
      expect(r.status).toBe(1);
      const result = JSON.parse(r.stdout);
      expect(result.outcome).toBe('temporary-failure');
      expect(result.error).toMatch(/before the run's deadline/);
    } finally {
      await slow.stop();
    }
  }, 20_000);

  it('a value that is not a number of seconds is a usage error', async () => {
    const r = await cli(['--config', 'x.json', '--max-run-seconds', 'soon']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(
      'dequeue: --max-run-seconds soon: must be a number of seconds, more than 0 and at most 86400',
    );
  });
});

describe('pausing every target at once', () => {
  it('settings.enabled false skips every target, even forced, and says why; true (or absent) signals again', async () => {
    const before = provider.connections.length;
    const paused = await file('config.json', {
      settings: { enabled: false },
      targets: [target('a'), target('b')],
    });
    for (const extra of [[], ['--force']]) {
      const r = await cli(['--config', paused, '--json', ...extra]);
      expect(r.status).toBe(0);
      expect(
        r.stdout
          .trimEnd()
          .split('\n')
          .map((l) => JSON.parse(l))
          .map((l) => [l.target, l.outcome, l.reason]),
      ).toEqual([
        ['a', 'skipped', 'paused: settings.enabled is false'],
        ['b', 'skipped', 'paused: settings.enabled is false'],
      ]);
    }
    expect(provider.connections.length).toBe(before);
    const resumed = await file('config.json', {
      settings: { enabled: true },
      targets: [target('a')],
    });
    expect((await cli(['--config', resumed])).status).toBe(0);
    expect(provider.connections.length).toBe(before + 1);
  });
});
