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
import { execSync, execFileSync } from 'node:child_process';
import {
  MAIL_STORE_FILE,
  UNREACHED_IN_LAMBDA,
  WORK_QUEUE_FILE,
  lambdaEsbuildOptions,
  sideModuleBuildCommands,
} from '../../lib/bundling';

const HANDLER = fileURLToPath(new URL('../../lambda/handler.ts', import.meta.url));
const outdir = mkdtempSync(join(tmpdir(), 'dequeue-bundle-'));
let output: Metafile['outputs'][string];

beforeAll(async () => {
  const result = await build({
    ...lambdaEsbuildOptions,
    entryPoints: [HANDLER],
    outfile: join(outdir, 'index.mjs'),
    metafile: true,
    logLevel: 'silent',
  });
  output = Object.values(result.metafile.outputs).find((o) => o.entryPoint !== undefined)!;
  const root = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
  for (const command of sideModuleBuildCommands(`${root}/node_modules/.bin/esbuild`, root, outdir))
    execSync(command);
});
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

/** Node's own modules, with or without the `node:` prefix (lib-storage imports plain `stream`). */
const isNode = (path: string) => path.startsWith('node:') || isBuiltin(path);

describe('the Lambda bundle', () => {
  it('exports handler', () => {
    expect(output.exports).toContain('handler');
  });

  it('imports nothing outside Node.js statically', () => {
    const staticExternal = output.imports.filter(
      (i) => i.external && i.kind !== 'dynamic-import' && !isNode(i.path),
    );
    expect(staticExternal).toEqual([]);
  });

  it('leaves out only the credential providers, and reaches them only by dynamic import', () => {
    const external = output.imports.filter((i) => i.external && !isNode(i.path));
    expect(new Set(external.map((i) => i.path))).toEqual(new Set(UNREACHED_IN_LAMBDA));
    expect(external.every((i) => i.kind === 'dynamic-import')).toBe(true);
  });

  it('keeps the S3 client out of the cold start: it lives in the mail store file, loaded beside the bundle', () => {
    expect(Object.keys(output.inputs).filter((i) => /client-s3|lib-storage/.test(i))).toEqual([]);
    const probe = `const m = await import(${JSON.stringify(join(outdir, 'index.mjs'))});
      const store = await import(new URL(m.MAIL_STORE_MODULE, ${JSON.stringify(`file://${outdir}/index.mjs`)}));
      const sink = store.openS3MailStore({ region: 'eu-west-1' }, 'bucket', 'mail/');
      console.log(m.MAIL_STORE_MODULE, typeof sink.begin);`;
    const printed = execFileSync('node', ['--input-type=module', '-e', probe], {
      env: { ...process.env, AWS_REGION: 'eu-west-1' },
    })
      .toString()
      .trim();
    expect(printed).toBe(`./${MAIL_STORE_FILE} function`);
  });

  it('keeps the SQS client out of the cold start: it lives in the work queue file, loaded by a cycle that fans out', () => {
    expect(Object.keys(output.inputs).filter((i) => /client-sqs/.test(i))).toEqual([]);
    const probe = `const m = await import(${JSON.stringify(join(outdir, 'index.mjs'))});
      const queue = await import(new URL(m.WORK_QUEUE_MODULE, ${JSON.stringify(`file://${outdir}/index.mjs`)}));
      const q = queue.openSqsWorkQueue({ region: 'eu-west-1' }, 'https://sqs.eu-west-1.amazonaws.com/123456789012/work');
      console.log(m.WORK_QUEUE_MODULE, typeof q.send);`;
    const printed = execFileSync('node', ['--input-type=module', '-e', probe], {
      env: { ...process.env, AWS_REGION: 'eu-west-1' },
    })
      .toString()
      .trim();
    expect(printed).toBe(`./${WORK_QUEUE_FILE} function`);
  });
});
