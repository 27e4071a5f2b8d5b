/**
 * The real handler bundled with the stack's options (lib/bundling.ts): what leaves the bundle must
 * be something Lambda never loads, or the function would fail at cold start, not at build time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UNREACHED_IN_LAMBDA, lambdaEsbuildOptions } from '../../lib/bundling';

const HANDLER = fileURLToPath(new URL('../../lambda/handler.ts', import.meta.url));
const outdir = mkdtempSync(join(tmpdir(), 'dequeue-bundle-'));
let output: Metafile['outputs'][string];

beforeAll(async () => {
  const result = await build({ ...lambdaEsbuildOptions, entryPoints: [HANDLER], outfile: join(outdir, 'index.mjs'), metafile: true, logLevel: 'silent' });
  output = Object.values(result.metafile.outputs).find((o) => o.entryPoint !== undefined)!;
});
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

/** Node's own modules, with or without the `node:` prefix (lib-storage imports plain `stream`). */
const isNode = (path: string) => path.startsWith('node:') || isBuiltin(path);

describe('the Lambda bundle', () => {
  it('exports handler', () => {
    expect(output.exports).toContain('handler');
  });

  it('imports nothing outside Node.js statically', () => {
    const staticExternal = output.imports.filter((i) => i.external && i.kind !== 'dynamic-import' && !isNode(i.path));
    expect(staticExternal).toEqual([]);
  });

  it('leaves out only the credential providers, and reaches them only by dynamic import', () => {
    const external = output.imports.filter((i) => i.external && !isNode(i.path));
    expect(new Set(external.map((i) => i.path))).toEqual(new Set(UNREACHED_IN_LAMBDA));
    expect(external.every((i) => i.kind === 'dynamic-import')).toBe(true);
  });
});
