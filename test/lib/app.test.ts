/**
 * bin/app.ts through the real CDK CLI, as an operator runs it: a bad `-c` value stops `cdk synth`
 * with one line naming the context key, before anything is bundled; so does static egress given
 * with `-c` alone. (A good synth with the real
 * handler is what CI's `npx cdk synth` step proves.) The runs start at once, in beforeAll: each
 * is a CDK CLI and a TypeScript app starting up, seconds of CPU that need not add up.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CDK = join(ROOT, 'node_modules/aws-cdk/bin/cdk');
const outdirs: string[] = [];
afterAll(() => {
  for (const dir of outdirs) rmSync(dir, { recursive: true, force: true });
});

/** `cdk synth` with these `-c` values: its exit status and stderr (killed after 60 s). */
function cdkSynth(context: readonly string[]): Promise<{ status: number | null; stderr: string }> {
  const outdir = mkdtempSync(join(tmpdir(), 'dequeue-app-'));
  outdirs.push(outdir);
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CDK, 'synth', '--quiet', '-o', outdir, ...context.flatMap((c) => ['-c', c])],
      {
        cwd: ROOT,
        encoding: 'utf8',
        env: { ...process.env, CDK_DISABLE_VERSION_CHECK: 'true' },
        timeout: 60_000,
      },
      (error, _stdout, stderr) =>
        resolve({
          status: error ? (typeof error.code === 'number' ? error.code : null) : 0,
          stderr,
        }),
    );
  });
}

const CASES: [string[], string][] = [
  [['staticEgres=true'], 'dequeue: Unknown context "staticEgres": did you mean "staticEgress"?'],
  [
    ['egressAllocationId=eipalloc-0123456789abcdef0'],
    'dequeue: Context "egressAllocationId" only applies with static egress: set "staticEgress": true in cdk.json, or drop egressAllocationId.',
  ],
  // bin/app.ts reads cdk.json itself: static egress given with -c alone would vanish on the
  // next deploy without it.
  [
    ['staticEgress=true'],
    'dequeue: Context "staticEgress" must be set in the "context" block of cdk.json ("staticEgress": true), not only with -c',
  ],
];
let runs: { status: number | null; stderr: string }[] = [];
beforeAll(async () => {
  runs = await Promise.all(CASES.map(([context]) => cdkSynth(context)));
}, 90_000);

describe('cdk synth with bad context', () => {
  it.each(CASES.map(([context, message], i) => [context, message, i] as const))(
    '%j fails with one clear line',
    (_context, message, i) => {
      const { status, stderr } = runs[i]!;
      expect(status).not.toBe(0);
      expect(stderr).toContain(message);
      expect(stderr).not.toMatch(/\n\s+at /); // no stack trace
      expect(stderr).not.toContain('Bundling asset');
    },
  );
});
