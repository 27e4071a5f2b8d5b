/**
 * The suite is only as strict as its runner: a session that leaves a rejected promise unhandled
 * (issue: a cut pipelined group crashed Node) must fail `npm test` even when every assertion
 * passed. This runs vitest with the repository's own configuration on two fixtures that pass their
 * assertions but leave an unhandled rejection and an uncaught error, and expects a failed run.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const VITEST = join(ROOT, 'node_modules', 'vitest', 'vitest.mjs');

it('the vitest configuration silences no unhandled error', async () => {
  const config = await readFile(join(ROOT, 'vitest.config.ts'), 'utf8');
  expect(config).not.toMatch(
    /dangerouslyIgnoreUnhandledErrors|onUnhandledError|onUnhandledRejection/,
  );
});

it('a passing test that leaves an unhandled rejection or an uncaught error fails the run', async () => {
  // The child must not believe it is one of our workers: drop vitest's own variables.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(VITEST|VITE_|TEST$|NODE_OPTIONS$)/.test(k)),
  );
  const run = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [VITEST, 'run', '--config', 'test/support/fixtures/vitest.fixture.config.ts'],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...env, CI: 'true', NO_COLOR: '1', VITE_CONFIG_NATIVE_IGNORE_WARNING: 'true' },
      },
    );
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 50_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
  expect(run.output).toMatch(/2 passed/);
  expect(run.output).toContain('rejection nobody handles');
  expect(run.output).toContain('error nobody catches');
  expect(run.code).toBe(1);
}, 60_000);
