#!/usr/bin/env node
// `npx dequeue`: the TypeScript CLI, bundled by esbuild into node_modules/.cache/dequeue and run
// from there. It is rebuilt only when one of its source files changed (their mtimes are kept
// beside the bundle), so a start costs ~0.1 s where a TypeScript loader costs ~0.4 s: a signal run
// from cron or a laptop should not spend more time starting than talking to the provider.
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const cache = join(root, 'node_modules', '.cache', 'dequeue');
const bundle = join(cache, 'cli.mjs');
const manifest = join(cache, 'cli.inputs.json');

function isFresh() {
  try {
    const inputs = JSON.parse(readFileSync(manifest, 'utf8'));
    statSync(bundle);
    return Object.entries(inputs).every(([file, mtime]) => statSync(join(root, file)).mtimeMs === mtime);
  } catch {
    return false;
  }
}

if (!isFresh()) {
  mkdirSync(cache, { recursive: true });
  // Written under temporary names and renamed: two runs starting at once never see half a file.
  const temp = `${bundle}.${process.pid}.tmp.mjs`;
  // Loaded only when a rebuild is needed: esbuild's API alone costs ~30 ms to import.
  const { build } = await import('esbuild');
  const result = await build({
    absWorkingDir: root,
    entryPoints: ['cli/run.ts'],
    outfile: temp,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: 'inline',
    metafile: true,
    logLevel: 'error',
  });
  const inputs = Object.fromEntries(Object.keys(result.metafile.inputs).map((file) => [file, statSync(join(root, file)).mtimeMs]));
  renameSync(temp, bundle);
  writeFileSync(`${manifest}.${process.pid}.tmp`, JSON.stringify(inputs));
  renameSync(`${manifest}.${process.pid}.tmp`, manifest);
}

process.setSourceMapsEnabled(true);
await import(pathToFileURL(bundle).href);
