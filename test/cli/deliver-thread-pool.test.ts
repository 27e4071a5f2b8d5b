/**
 * `dequeue deliver` sizes libuv's thread pool to the machine (cli/entry.ts): no more threads than
 * cores, at most libuv's four; an operator's UV_THREADPOOL_SIZE is kept. Checked in the process a
 * user starts (bin/dequeue.js): the pool starts with the first file call, so a file call made
 * before the setting would silently undo it.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const bin = join(import.meta.dirname, '..', '..', 'bin', 'dequeue.js');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dequeue-pool-'));
  // At exit, the number of libuv's pool threads (named libuv-worker) the process had.
  await writeFile(
    join(dir, 'probe.cjs'),
    `process.on('exit', () => { const fs = require('fs'); const n = fs.readdirSync('/proc/self/task').filter((t) => fs.readFileSync('/proc/self/task/' + t + '/comm', 'utf8').startsWith('libuv-worker')).length; fs.writeFileSync(process.env.PROBE_OUT, String(n)); });`,
  );
});

async function poolThreads(argv: string[], env: Record<string, string> = {}): Promise<number> {
  const out = join(dir, `threads-${Math.random().toString(16).slice(2)}`);
  await run(process.execPath, [bin, ...argv], {
    env: {
      PATH: process.env.PATH!,
      HOME: dir,
      DEQUEUE_CACHE_DIR: join(dir, 'cache'),
      NODE_OPTIONS: `--require ${join(dir, 'probe.cjs')}`,
      PROBE_OUT: out,
      ...env,
    },
    timeout: 60_000,
  }).catch((e: { code?: number }) => {
    // An empty directory and a server that is not there: any exit status, the pool is what counts.
    if (typeof e.code !== 'number') throw e;
  });
  return Number(await readFile(out, 'utf8'));
}

describe.skipIf(process.platform !== 'linux')('deliver and the thread pool', () => {
  it('uses no more pool threads than cores (at most four), unless the operator says how many', async () => {
    const args = ['deliver', '--mail-dir', dir, '--to', 'smtp://127.0.0.1:1', '--dry-run'];
    expect(await poolThreads(args)).toBe(Math.min(4, availableParallelism()));
    expect(await poolThreads(args, { UV_THREADPOOL_SIZE: '3' })).toBe(3);
  });
});
