#!/usr/bin/env node
// `npx dequeue`: the TypeScript CLI, bundled by esbuild into a cache directory and run from there.
// It is rebuilt only when one of its source files changed (their mtimes are kept beside the
// bundle), so a start costs ~0.1 s where a TypeScript loader costs ~0.4 s: a signal run from cron
// or a laptop should not spend more time starting than talking to the provider.
//
// The cache is the first of these that holds a fresh bundle or can be written, silently:
//   DEQUEUE_CACHE_DIR (if set), else node_modules/.cache/dequeue in the project;
//   $XDG_CACHE_HOME/dequeue/<tree> or ~/.cache/dequeue/<tree> (another user, a read-only tree);
//   <tmpdir>/dequeue-<uid>/<tree> (a directory of this user's alone);
// and when none can be written, the CLI runs from its sources without a cache (through tsx).
import { createHash, randomBytes } from 'node:crypto';
import {
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import nodeModule from 'node:module';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
/** This script, as the manifest names it: a change to how it builds makes a new build. */
const SELF = 'bin/dequeue.js';
const tree = createHash('sha256').update(root).digest('hex').slice(0, 16);
const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;

/** Where a bundle may live, best first; `own` directories are outside the tree. */
function cacheDirs() {
  const dirs = [
    {
      dir: process.env.DEQUEUE_CACHE_DIR || join(root, 'node_modules', '.cache', 'dequeue'),
      own: Boolean(process.env.DEQUEUE_CACHE_DIR),
    },
  ];
  let home;
  try {
    home = homedir();
  } catch {
    home = undefined;
  }
  const xdg = process.env.XDG_CACHE_HOME || (home ? join(home, '.cache') : undefined);
  if (xdg) dirs.push({ dir: join(xdg, 'dequeue', tree), own: true });
  dirs.push({ dir: join(tmpdir(), `dequeue-${uid ?? 'user'}`, tree), own: true, private: true });
  return dirs;
}

/**
 * The bundle in `dir` when it is up to date with the sources, else undefined. cli.inputs.json
 * names the build directory (`b-<hash>`: the entry cli.mjs and the chunks it loads on demand)
 * and the mtime of every source file that went into it, this script included (how it builds).
 */
function freshBundle(dir) {
  try {
    const manifest = JSON.parse(readFileSync(join(dir, 'cli.inputs.json'), 'utf8'));
    if (typeof manifest.build !== 'string' || !/^b-[0-9a-f]+$/.test(manifest.build))
      return undefined;
    const bundle = join(dir, manifest.build, 'cli.mjs');
    statSync(bundle);
    // A manifest that does not name this script is from a version that built differently.
    if (!(SELF in manifest.inputs)) return undefined;
    const fresh = Object.entries(manifest.inputs).every(
      ([file, mtime]) => statSync(join(root, file)).mtimeMs === mtime,
    );
    return fresh ? bundle : undefined;
  } catch {
    return undefined;
  }
}

/** A shared temporary directory is used only when it is ours and closed to others. */
function isPrivate(dir) {
  try {
    const st = lstatSync(dirname(dir));
    return st.isDirectory() && (uid === undefined || st.uid === uid) && (st.mode & 0o077) === 0;
  } catch {
    return false;
  }
}

async function buildInto({ dir, own, private: shared }) {
  if (shared) {
    mkdirSync(dirname(dir), { recursive: true, mode: 0o700 });
    if (!isPrivate(dir)) throw new Error(`${dirname(dir)} is not this user's alone`);
  }
  mkdirSync(dir, { recursive: true, ...(own ? { mode: 0o700 } : {}) });
  // Outside the tree the bundle's bare imports (packages stay external) resolve through a link
  // to the project's node_modules.
  if (own) {
    const link = join(dir, 'node_modules');
    const target = join(root, 'node_modules');
    let current;
    try {
      current = readlinkSync(link);
    } catch {
      current = undefined;
    }
    if (current !== target) {
      if (current !== undefined) unlinkSync(link);
      symlinkSync(target, link, 'dir');
    }
  }
  // Loaded only when a rebuild is needed: esbuild's API alone costs ~30 ms to import.
  const { build } = await import('esbuild');
  // Split into chunks: each command, and the AWS SDK client it uses, is loaded only when that
  // command runs (`deliver --mail-dir` or a run from a local file load no SDK at all: a start
  // costs ~0.1 s instead of ~0.4 s).
  const out = join(dir, `.build-${process.pid}-${randomBytes(4).toString('hex')}`);
  const result = await build({
    absWorkingDir: root,
    entryPoints: { cli: 'cli/entry.ts' },
    outdir: out,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunk-[hash]',
    splitting: true,
    write: false,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    // Linked, not inline: a start reads a map only when a stack trace is printed, and the chunks
    // it parses are a quarter of the size.
    sourcemap: 'linked',
    metafile: true,
    logLevel: 'silent',
  });
  const inputs = Object.fromEntries(
    [...Object.keys(result.metafile.inputs), SELF].map((file) => [
      file,
      statSync(join(root, file)).mtimeMs,
    ]),
  );
  // Written into a directory of its own, named by its contents, and only then named in the
  // manifest: two runs starting at once never see half a build, and a run that started on an
  // older build still finds its chunks.
  const hash = createHash('sha256');
  for (const file of result.outputFiles)
    hash.update(file.path.slice(out.length)).update(file.contents);
  const name = `b-${hash.digest('hex').slice(0, 16)}`;
  mkdirSync(out, { recursive: true });
  for (const file of result.outputFiles) writeFileSync(file.path, file.contents);
  try {
    renameSync(out, join(dir, name));
  } catch {
    // The same build is there already (another run made it): use that one.
    rmSync(out, { recursive: true, force: true });
    statSync(join(dir, name, 'cli.mjs'));
  }
  const manifest = join(dir, 'cli.inputs.json');
  writeFileSync(`${manifest}.${process.pid}.tmp`, JSON.stringify({ build: name, inputs }));
  renameSync(`${manifest}.${process.pid}.tmp`, manifest);
  removeOldBuilds(dir, name);
  return join(dir, name, 'cli.mjs');
}

/**
 * Builds other than the current one, once a day old: no run still needs their chunks by then
 * (a run is bounded by --max-run-seconds), and the cache stays small. Never fails the start.
 */
function removeOldBuilds(dir, current) {
  try {
    const dayAgo = Date.now() - 24 * 60 * 60_000;
    for (const entry of readdirSync(dir)) {
      if (entry === current || !/^(b-[0-9a-f]+|\.build-.*|cli\.mjs)$/.test(entry)) continue;
      const path = join(dir, entry);
      // cli.mjs: the single-file bundle of earlier versions of this script.
      if (entry === 'cli.mjs' || lstatSync(path).mtimeMs < dayAgo)
        rmSync(path, { recursive: true, force: true });
    }
  } catch {
    // A cache that cannot be tidied still works.
  }
}

async function findBundle() {
  const dirs = cacheDirs();
  for (const candidate of dirs) {
    const bundle = (!candidate.private || isPrivate(candidate.dir)) && freshBundle(candidate.dir);
    if (bundle) return bundle;
  }
  for (const candidate of dirs) {
    try {
      return await buildInto(candidate);
    } catch {
      // Not writable here (another user's tree, a read-only checkout): try the next place.
    }
  }
  return undefined;
}

const bundle = await findBundle();
process.setSourceMapsEnabled(true);
if (bundle) {
  // V8's compiled code for the bundle, kept beside it and removed with it (removeOldBuilds): a
  // start does not compile again what the previous one compiled (about 6 ms of a 70 ms start).
  // Node checks every entry against its source's hash and ignores one that does not match; a
  // directory it cannot write only means no cache (Node >= 22.1).
  nodeModule.enableCompileCache?.(join(dirname(bundle), 'compile-cache'));
  await import(pathToFileURL(bundle).href);
} else {
  // No cache can be written anywhere: run the sources through tsx, slower to start but the same CLI.
  // tsx's own disk cache would need a writable temporary directory too.
  process.env.TSX_DISABLE_CACHE = '1';
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(join(root, 'cli', 'entry.ts')).href);
}
