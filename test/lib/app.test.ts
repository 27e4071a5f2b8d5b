/**
 * bin/app.ts through the real CDK CLI, as an operator runs it: a bad `-c` value stops `cdk synth`
 * with one line naming the context key, before anything is bundled. (A good synth with the real
 * handler is what CI's `npx cdk synth` step proves.)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CDK = join(ROOT, 'node_modules/aws-cdk/bin/cdk');
const outdir = mkdtempSync(join(tmpdir(), 'dequeue-app-'));
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

function cdkSynth(...context: string[]) {
  const result = spawnSync(process.execPath, [CDK, 'synth', '--quiet', '-o', outdir, ...context.flatMap((c) => ['-c', c])], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, CDK_DISABLE_VERSION_CHECK: 'true' },
    timeout: 60_000,
  });
  return { status: result.status, stderr: result.stderr };
}

describe('cdk synth with bad context', () => {
  it.each([
    [['staticEgres=true'], 'dequeue: Unknown context "staticEgres": did you mean "staticEgress"?'],
    [['egressAllocationId=eipalloc-0123456789abcdef0'], 'dequeue: Context "egressAllocationId" only applies with static egress: add -c staticEgress=true, or drop egressAllocationId.'],
  ])('%j fails with one clear line', (context, message) => {
    const { status, stderr } = cdkSynth(...context);
    expect(status).not.toBe(0);
    expect(stderr).toContain(message);
    expect(stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(stderr).not.toContain('Bundling asset');
  });
});
