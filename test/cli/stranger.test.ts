/**
 * What a stranger meets beyond the list of issue 18, through the real binary (bin/dequeue.js):
 * a status that cannot know says so, a connection or a mail directory that cannot be used is
 * said in words with the fix, never as a bare errno.
 */
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMailDirSink } from '../../cli/adapters/mail-dir-sink';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { message, store } from './delivery/stored-mail';
import { runDequeue, type RunOptions } from '../support/dequeue-process';

const asRoot = process.getuid?.() === 0;
let dir: string;
let plain: ScriptedProvider;

beforeAll(async () => {
  // One start first: it builds the CLI's bundle when the sources changed (bin/dequeue.js).
  await runDequeue(['--version'], 60_000);
  dir = await mkdtemp(join(tmpdir(), 'dequeue-stranger-'));
  plain = await new ScriptedProvider({ extensions: ['ETRN'] }).start();
});
afterAll(async () => plain?.stop());

let n = 0;
async function file(name: string, content: unknown): Promise<string> {
  const path = join(dir, `${++n}-${name}`);
  await writeFile(path, JSON.stringify(content));
  return path;
}

const dequeue = (args: string[], options?: RunOptions) => runDequeue(args, 60_000, options);
const lines = (text: string) => text.trimEnd().split('\n');

describe('status of a target no run has recorded (beyond the list)', () => {
  it('a mistyped --target is shown "never run" and exits 2 with a did-you-mean, never healthy', async () => {
    const config = await file('config.json', {
      targets: [
        { name: 'isp', host: '127.0.0.1', port: plain.port, tls: 'none', command: 'ETRN a.test' },
      ],
    });
    const state = join(await mkdtemp(join(dir, 'state-')), 'state.json');
    expect((await dequeue(['--config', config, '--state', state])).status).toBe(0);
    const r = await dequeue(['status', '--state', state, '--target', 'isq']);
    expect(r.status).toBe(2);
    expect(lines(r.stdout)[1]).toMatch(/^isq +never run +- +- +no run has handled it yet$/);
    expect(r.stderr).toBe(
      'dequeue status: --target isq: no run has recorded a target of that name (did you mean isp?): its health is unknown until a run works it\n',
    );
    const far = await dequeue(['status', '--state', state, '--target', 'backup']);
    expect(far.status).toBe(2);
    expect(far.stderr).toBe(
      'dequeue status: --target backup: no run has recorded a target of that name (recorded: isp): its health is unknown until a run works it\n',
    );
    const right = await dequeue(['status', '--state', state, '--target', 'isp']);
    expect(right).toMatchObject({ status: 0, stderr: '' });
  });
});

describe('a run with a mistyped --target (beyond the list)', () => {
  it('names the target meant; exit 2, nothing sent', async () => {
    const config = await file('config.json', {
      targets: [
        { name: 'isp', host: '127.0.0.1', port: plain.port, tls: 'none', command: 'ETRN a.test' },
      ],
    });
    const before = plain.connections.length;
    const r = await dequeue(['--config', config, '--target', 'isq']);
    expect(r).toMatchObject({ status: 2, stdout: '' });
    expect(r.stderr).toBe(
      `dequeue: ${config}: --target isq: no target of that name (did you mean isp? known: isp)\n`,
    );
    expect(plain.connections.length).toBe(before);
  });
});

describe('a connection that cannot be made (beyond the list)', () => {
  it("is said in words with its code, in a run and in deliver, never as node's bare errno", async () => {
    const closed = await new ScriptedProvider({}).start();
    const port = closed.port;
    await closed.stop();
    const config = await file('config.json', {
      targets: [{ name: 'isp', host: '127.0.0.1', port, tls: 'none', command: 'ETRN a.test' }],
    });
    const r = await dequeue(['--config', config]);
    expect(r.status).toBe(1);
    expect(lines(r.stdout)[1]).toBe(
      `    error: cannot connect to 127.0.0.1:${port}: the connection was refused (ECONNREFUSED): nothing listens on that port there, or a firewall refuses it`,
    );

    const mailDir = await mkdtemp(join(dir, 'mail-'));
    await store(createMailDirSink(mailDir), 'isp', [message(1)]);
    const socket = join(dir, 'no-lmtp-socket');
    // LMTP cannot relay a bounce: deliver asks where DSNs go (docs/bounces.md).
    const d = await dequeue([
      'deliver',
      '--mail-dir',
      mailDir,
      '--to',
      `lmtp:${socket}`,
      '--bounce-via',
      'smtp://127.0.0.1:1',
    ]);
    expect(d.status).toBe(1);
    expect(lines(d.stdout)[0]).toMatch(
      new RegExp(
        `^deferred {2}isp/\\S+: <user1@customer.test> - \\(cannot connect to ${socket}: no such socket \\(ENOENT\\): is the server running, and is this the path of its socket\\?\\)$`,
      ),
    );
  });
});

describe('a stray file in the mail directory (beyond the list)', () => {
  it('an .eml without its envelope is named with what to do, not a bare ENOENT', async () => {
    const mailDir = await mkdtemp(join(dir, 'stray-'));
    await mkdir(join(mailDir, 'isp'));
    await writeFile(join(mailDir, 'isp', 'copied.eml'), 'Subject: x\r\n\r\nhi\r\n');
    const r = await dequeue(['deliver', '--mail-dir', mailDir, '--to', 'smtp://127.0.0.1:1']);
    expect(r.status).toBe(1);
    expect(lines(r.stdout)).toEqual([
      `deferred  isp/copied:  (message copied has no readable envelope (${join(mailDir, 'isp', 'copied.json')}: no such file: a run writes it before the message, so this .eml was not stored by dequeue or its .json was removed; move the .eml out of the mail directory); it is left where it is)`,
    ]);
  });
});

describe('a mail directory deliver cannot use (beyond the list)', () => {
  it.skipIf(!asRoot)(
    'deliver from a mail directory on a read-only file system says so; exit 2, nothing sent',
    async () => {
      const mailDir = await mkdtemp(join(dir, 'ro-mail-'));
      await store(createMailDirSink(mailDir), 'isp', [message(1)]);
      const via = [
        'unshare',
        '--mount',
        'sh',
        '-c',
        `mount --bind ${mailDir} ${mailDir} && mount -o remount,bind,ro ${mailDir} && exec "$@"`,
        'sh',
      ];
      const r = await dequeue(['deliver', '--mail-dir', mailDir, '--to', 'smtp://127.0.0.1:1'], {
        via,
      });
      expect(r).toMatchObject({ status: 2, stdout: '' });
      expect(r.stderr).toBe(
        `dequeue deliver: --mail-dir: ${mailDir}: cannot deliver from there: it is on a read-only file system (EROFS), and deliver moves and removes files there: mount it read-write\n`,
      );
    },
  );
});
