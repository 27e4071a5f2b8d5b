/**
 * bin/dequeue.js runs for any user on any tree: when the project's bundle cache cannot be written
 * (another user, a read-only checkout) it falls back to the user's cache, a private temporary
 * directory, or runs without a cache, silently: the user sees the CLI, never an esbuild error.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'bin', 'dequeue.js');
let dir: string;
let blocked: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dequeue-bin-'));
  // A path under a regular file cannot be created by anyone, root included.
  blocked = join(dir, 'a-file');
  await writeFile(blocked, '');
});

async function dequeue(env: Record<string, string>, argv = ['--help'], prefix: string[] = []) {
  const [cmd, ...args] = [...prefix, process.execPath, bin, ...argv];
  try {
    const { stdout, stderr } = await run(cmd!, args, {
      cwd: dir,
      env: { PATH: process.env.PATH!, ...env },
      timeout: 60_000,
    });
    return { status: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { status: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('bin/dequeue.js with an unwritable cache', () => {
  it('falls back to the user cache ($XDG_CACHE_HOME/dequeue) and says nothing about it', async () => {
    const xdg = join(dir, 'xdg');
    const r = await dequeue({
      DEQUEUE_CACHE_DIR: join(blocked, 'cache'),
      XDG_CACHE_HOME: xdg,
      HOME: dir,
    });
    expect(r).toMatchObject({ status: 0, stderr: '' });
    expect(r.stdout).toMatch(/^Usage:\n {2}dequeue --config FILE/);
    const [tree] = await readdir(join(xdg, 'dequeue'));
    const cache = join(xdg, 'dequeue', tree!);
    const entries = (await readdir(cache)).sort();
    expect(entries).toEqual([
      expect.stringMatching(/^b-[0-9a-f]{16}$/),
      'cli.inputs.json',
      'node_modules',
    ]);
    expect(await readdir(join(cache, entries[0]!))).toContain('cli.mjs');
    // The second start finds that bundle fresh.
    expect(
      await dequeue({ DEQUEUE_CACHE_DIR: join(blocked, 'cache'), XDG_CACHE_HOME: xdg, HOME: dir }),
    ).toMatchObject({ status: 0, stderr: '' });
  });

  it('runs without any cache when none can be written, the same CLI with the same exit statuses', async () => {
    const env = {
      DEQUEUE_CACHE_DIR: join(blocked, 'a'),
      XDG_CACHE_HOME: join(blocked, 'b'),
      HOME: join(blocked, 'c'),
      TMPDIR: join(blocked, 'd'),
    };
    const help = await dequeue(env);
    expect(help).toMatchObject({ status: 0, stderr: '' });
    expect(help.stdout).toMatch(/^Usage:/);
    const usage = await dequeue(env, ['--bogus']);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/^dequeue: unknown option --bogus\n/);
  });

  it("skips a shared temporary directory that is not this user's alone", async () => {
    const tmp = join(dir, 'tmp');
    await mkdir(join(tmp, `dequeue-${process.getuid?.() ?? 'user'}`), { recursive: true });
    await chmod(join(tmp, `dequeue-${process.getuid?.() ?? 'user'}`), 0o777);
    const r = await dequeue({
      DEQUEUE_CACHE_DIR: join(blocked, 'a'),
      XDG_CACHE_HOME: join(blocked, 'b'),
      TMPDIR: tmp,
    });
    expect(r).toMatchObject({ status: 0, stderr: '' });
    expect(await readdir(join(tmp, `dequeue-${process.getuid?.() ?? 'user'}`))).toEqual([]);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'runs for another user (nobody) who cannot write the tree',
    async () => {
      // The project's cache belongs to root; nobody's home does not exist: a private temp directory.
      const tmp = join(dir, 'tmp-nobody');
      await mkdir(tmp, { mode: 0o1777 });
      await chmod(tmp, 0o1777);
      await chmod(dir, 0o755);
      const r = await dequeue(
        { DEQUEUE_CACHE_DIR: join(dir, 'root-only'), HOME: '/nonexistent', TMPDIR: tmp },
        ['--help'],
        ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups'],
      );
      expect(r).toMatchObject({ status: 0, stderr: '' });
      expect(r.stdout).toMatch(/^Usage:/);
    },
  );
});

describe('bin/dequeue.js bundle cache', () => {
  /** The AWS SDK packages a start of the CLI loaded (CommonJS modules land in the module cache). */
  async function sdkLoaded(argv: string[]): Promise<string[]> {
    const probe = join(dir, 'probe.cjs');
    const report = join(dir, `loaded-${argv.join('-')}.json`);
    await writeFile(
      probe,
      `process.on('exit', () => require('fs').writeFileSync(process.env.PROBE_OUT, JSON.stringify(Object.keys(require('module')._cache))));`,
    );
    const r = await dequeue(
      {
        DEQUEUE_CACHE_DIR: join(dir, 'lazy-cache'),
        HOME: dir,
        NODE_OPTIONS: `--require ${probe}`,
        PROBE_OUT: report,
      },
      argv,
    );
    expect(r.stderr).toBe('');
    const files = JSON.parse(await readFile(report, 'utf8')) as string[];
    return [
      ...new Set(
        files
          .map((f) => /node_modules\/(@aws-sdk\/[^/]+)/.exec(f)?.[1])
          .filter((p): p is string => p !== undefined),
      ),
    ];
  }

  it('loads a command, and the AWS SDK client it needs, only when that command runs', async () => {
    // A release cycle from a local file and deliver --mail-dir never need the SDK (a start ~0.15 s, not ~0.45 s).
    expect(await sdkLoaded(['--help'])).toEqual([]);
    expect(await sdkLoaded(['deliver', '--help'])).toEqual([]);
    // status loads its DynamoDB client: the probe sees SDK modules when they are loaded.
    expect(await sdkLoaded(['status', '--help'])).toContain('@aws-sdk/client-dynamodb');
  });
  it("keeps stack traces on the TypeScript sources (linked source maps) and V8's code beside the bundle", async () => {
    const cache = join(dir, 'maps-cache');
    expect(await dequeue({ DEQUEUE_CACHE_DIR: cache, HOME: dir })).toMatchObject({ status: 0 });
    expect(await dequeue({ DEQUEUE_CACHE_DIR: cache, HOME: dir })).toMatchObject({ status: 0 });
    const build = join(cache, (await readdir(cache)).find((e) => e.startsWith('b-'))!);
    const files = await readdir(build);
    expect(files).toContain('compile-cache');
    let chunk = '';
    for (const f of files.filter((f) => f.endsWith('.mjs')))
      if ((await readFile(join(build, f), 'utf8')).includes('var DotStuffer')) chunk = f;
    expect(files).toContain(`${chunk}.map`);
    // What bin/dequeue.js does before it loads the bundle, then an error thrown inside it.
    const script = `process.setSourceMapsEnabled(true);
      const { DotStuffer } = await import(${JSON.stringify(join(build, chunk))});
      try { new DotStuffer().push(null); } catch (e) { console.log(e.stack); }`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script]);
    expect(stdout).toMatch(
      /at DotStuffer\.push \(.*lambda\/core\/smtp\/dot-stuffing\.ts:\d+:\d+\)/,
    );
  });
});
