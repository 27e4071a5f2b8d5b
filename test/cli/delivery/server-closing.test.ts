/**
 * `deliver` when the server says 421 while we are still streaming a message (Dovecot does on
 * SIGTERM): the result says the server is closing, not that it broke the protocol, and the
 * message waits for the next run.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createMailDirSink } from '../../../cli/adapters/mail-dir-sink';
import { ScriptedMailServer } from '../../../peers/scripted-mail-server';
import { tempDir } from '../../core/odmr/odmr-fixtures';
import { message, store } from './stored-mail';
import { runCli } from '../../support/cli-run';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('deliver: the server closes while we stream', () => {
  it('a 421 in the middle of DATA is reported as the server closing, and the message stays', async () => {
    const dir = await tempDir('dequeue-deliver-421-');
    cleanups.push(dir.remove);
    const m = message(1, { bodyBytes: 300_000 });
    await store(createMailDirSink(dir.path), 'odmr', [m]);
    const server = await new ScriptedMailServer({
      lmtp: true,
      socketPath: join(dir.path, 'lmtp.sock'),
      closeInData: { message: 0, afterBytes: 1000, reply: '421 4.3.2 Shutting down' },
    }).start();
    cleanups.push(() => server.stop());
    const out = await runCli([
      'deliver',
      '--mail-dir',
      dir.path,
      '--to',
      `lmtp:${join(dir.path, 'lmtp.sock')}`,
      // No DSN is owed here (nothing is refused for good); LMTP needs a relay named anyway.
      '--bounce-via',
      'smtp://127.0.0.1:9',
      '--json',
    ]);
    expect(out.status).toBe(1);
    expect(out.json).toMatchObject([{ outcome: 'deferred' }]);
    expect(out.json[0].error).toMatch(/closing/);
    expect(out.json[0].error).toMatch(/421 4\.3\.2 Shutting down/);
    expect(out.json[0].error).not.toMatch(/nobody asked for/);
    expect((await readdir(join(dir.path, 'odmr'))).filter((n) => n.endsWith('.eml'))).toEqual([
      `${m.id}.eml`,
    ]);
  });
});
