/**
 * The mail directory of the `deliver` tests: messages stored through the real sink into a
 * temporary directory, scripted servers, where each message is now. Everything made is removed
 * after each test.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { createMailDirSink } from '../../../cli/adapters/mail-dir-sink';
import {
  ScriptedMailServer,
  type ScriptedMailServerOptions,
} from '../../../peers/scripted-mail-server';
import { tempDir } from '../../core/odmr/odmr-fixtures';
import { runCli } from '../../support/cli-run';
import { store, type StoredMessage } from './stored-mail';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

export async function mailDir(messages: readonly StoredMessage[], target = 'odmr') {
  const dir = await tempDir('dequeue-deliver-');
  cleanups.push(dir.remove);
  await store(createMailDirSink(dir.path), target, messages);
  return dir.path;
}

export async function server(options: ScriptedMailServerOptions = {}) {
  const s = await new ScriptedMailServer(options).start();
  cleanups.push(() => s.stop());
  return s;
}

export const ls = async (path: string) => (await readdir(path).catch(() => [] as string[])).sort();
/** The ids of the messages still undelivered, in delivered/ and in failed/. */
export async function where(root: string, target = 'odmr') {
  const ids = (names: string[]) =>
    names.filter((n) => n.endsWith('.eml')).map((n) => n.slice(0, -4));
  return {
    waiting: ids(await ls(join(root, target))),
    delivered: ids(await ls(join(root, target, 'delivered'))),
    failed: ids(await ls(join(root, target, 'failed'))),
  };
}

export const messageIdOf = (text: Buffer) =>
  /Message-ID: (<[^>]+>)/.exec(text.toString('latin1'))?.[1];

/** `dequeue deliver --mail-dir ROOT --to smtp://127.0.0.1:PORT [flags]`, run in-process. */
export const deliverTo = (root: string, port: number, ...flags: string[]) =>
  runCli(['deliver', '--mail-dir', root, '--to', `smtp://127.0.0.1:${port}`, ...flags]);
