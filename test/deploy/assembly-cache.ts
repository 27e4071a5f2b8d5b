/**
 * `cdk synth` of the real app, kept between runs: the cloud assembly is stored under a key made
 * of everything the synthesis reads, so a second run with the same sources reads it back instead
 * of paying the CDK CLI, the app, esbuild's bundle of the real handler and CDK's template
 * validation again (~9 s of CPU; ~25 s of a loaded 2-core machine). A change to any input makes
 * a new key, so a stale assembly is never read: the first run after a change synthesises exactly
 * as a user does (cloud-assembly.ts).
 *
 * The key: the contents of bin/, lib/ and lambda/ (the app, the stack and the bundled entry with
 * everything it imports; lib/ imports only those), cdk.json and cdk.context.json (context),
 * package.json, package-lock.json and node_modules/.package-lock.json (what is installed: aws-cdk,
 * aws-cdk-lib, esbuild and the bundled dependencies), tsconfig.json, the repository's path (the
 * assembly is made from it), the Node version, and the environment variables the CDK CLI reads.
 * DEQUEUE_SYNTH_CACHE=off synthesises every time.
 *
 * Where: `<tmpdir>/dequeue-<uid>/cdk-synth/<key>`, a directory closed to other users. An assembly
 * is written beside its place and renamed into it, so that a reader never sees half of one;
 * entries not used for a day are removed.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CloudAssembly, readAssembly, synthesise, synthesiseInto } from './cloud-assembly';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SOURCE_DIRS = ['bin', 'lib', 'lambda'];
const SOURCE_FILES = [
  'cdk.json',
  'cdk.context.json',
  'package.json',
  'package-lock.json',
  'node_modules/.package-lock.json',
  'tsconfig.json',
];
/** Entries older than this (not read since) are removed. */
const UNUSED_FOR_MS = 24 * 60 * 60 * 1000;

function filesUnder(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...filesUnder(path));
    else if (entry.isFile()) found.push(path);
  }
  return found;
}

/** The key of the assembly the sources as they are now would synthesise to. */
export function synthesisKey(): string {
  const hash = createHash('sha256');
  const add = (label: string, data: string | Buffer) => {
    hash.update(`${label}\0${data.length}\0`);
    hash.update(data);
  };
  add('root', ROOT);
  add('node', process.version);
  for (const [name, value] of Object.entries(process.env).sort(([a], [b]) => a.localeCompare(b)))
    if (/^(CDK_|AWS_|JSII_)/.test(name)) add(`env ${name}`, value ?? '');
  const files = [
    ...SOURCE_DIRS.flatMap((dir) =>
      existsSync(join(ROOT, dir)) ? filesUnder(join(ROOT, dir)) : [],
    ),
    ...SOURCE_FILES.map((f) => join(ROOT, f)).filter((f) => existsSync(f)),
  ].sort();
  for (const file of files) add(relative(ROOT, file), readFileSync(file));
  return hash.digest('hex').slice(0, 32);
}

function cacheRoot(): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  const own = join(tmpdir(), `dequeue-${uid}`);
  mkdirSync(own, { recursive: true, mode: 0o700 });
  const st = lstatSync(own);
  if (!st.isDirectory() || (typeof uid === 'number' && st.uid !== uid) || (st.mode & 0o077) !== 0)
    throw new Error(`${own} is not this user's alone: not keeping cloud assemblies in it`);
  const dir = join(own, 'cdk-synth');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

function pruneUnused(dir: string, keep: string): void {
  for (const name of readdirSync(dir)) {
    if (name === keep) continue;
    const path = join(dir, name);
    try {
      if (Date.now() - statSync(path).mtimeMs > UNUSED_FOR_MS)
        rmSync(path, { recursive: true, force: true });
    } catch {
      // Another run removed it first.
    }
  }
}

/**
 * The cloud assembly of the sources as they are now: read back when a run already made it,
 * else synthesised (and kept). `dispose` leaves a kept assembly in place.
 */
export async function cachedSynthesis(): Promise<CloudAssembly & { readonly cached: boolean }> {
  if (process.env.DEQUEUE_SYNTH_CACHE === 'off') return { ...(await synthesise()), cached: false };
  const root = cacheRoot();
  const key = synthesisKey();
  const dir = join(root, key);
  pruneUnused(root, key);
  let cached = existsSync(join(dir, 'manifest.json'));
  if (cached) {
    const now = new Date();
    utimesSync(dir, now, now);
  } else {
    const building = join(root, `.${key}-${process.pid}-${randomBytes(4).toString('hex')}`);
    await synthesiseInto(building);
    try {
      renameSync(building, dir);
    } catch (e) {
      // Another run kept the same assembly meanwhile: read theirs, drop ours.
      rmSync(building, { recursive: true, force: true });
      if (!existsSync(join(dir, 'manifest.json'))) throw e;
      cached = true;
    }
  }
  return { dir, stacks: readAssembly(dir), cached, dispose: () => {} };
}
