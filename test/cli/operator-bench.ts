/**
 * What operator.test.ts and operator-tls.test.ts share: the CLI's bundle built once before the
 * first timed run, a directory for their files, a provider that answers ETRN in plain text and
 * one that never greets (both scripted), and a private file written with the mode asked for.
 * The bindings below are set by `useOperatorBench`'s beforeAll and read by the tests (live ES
 * module bindings).
 */
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { runDequeue } from '../support/dequeue-process';

export let dir: string;
export let plain: ScriptedProvider;
export let silent: ScriptedProvider;

/** Registers the set-up and tear-down in the calling test file; `prefix` names its directory. */
export function useOperatorBench(prefix: string): void {
  beforeAll(async () => {
    // One start first: it builds the CLI's bundle when the sources changed (bin/dequeue.js).
    await runDequeue(['--version'], 60_000);
    dir = await mkdtemp(join(tmpdir(), prefix));
    plain = await new ScriptedProvider({ extensions: ['ETRN'] }).start();
    silent = await new ScriptedProvider({ greeting: null }).start();
  });
  afterAll(async () => {
    await plain?.stop();
    await silent?.stop();
  });
}

let n = 0;
/** A file in `dir` holding `content` (JSON unless a string), with `mode`. */
export async function file(name: string, content: unknown, mode = 0o600): Promise<string> {
  const path = join(dir, `${++n}-${name}`);
  await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content));
  await chmod(path, mode);
  return path;
}

export const lines = (text: string) => text.trimEnd().split('\n');
