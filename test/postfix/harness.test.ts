/**
 * The private Postfix harness itself: a test run must leave nothing behind, and a run that crashed
 * before its teardown must not poison the next one (a leftover master holding its port, its queue).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { alive, describeWithPostfix, startPostfix, type PostfixInstance } from '../servers/postfix';

/** Resolves true when something accepts a connection on the port, false when it is refused. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** The pid of a process that has certainly exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

describeWithPostfix('the private Postfix harness', () => {
  const started: PostfixInstance[] = [];
  afterAll(async () => {
    for (const instance of started) await instance.stop();
  });

  it('stop() leaves no master, no listener and no directory', async () => {
    const postfix = await startPostfix({ customerMxPort: 9 });
    started.push(postfix);
    expect(alive(postfix.masterPid)).toBe(true);
    expect(await listening(postfix.port)).toBe(true);

    await postfix.stop();

    expect(alive(postfix.masterPid)).toBe(false);
    expect(await listening(postfix.port)).toBe(false);
    expect(existsSync(postfix.dir)).toBe(false);
  });

  it('a start sweeps away an instance whose owner died without stopping it', async () => {
    const crashed = await startPostfix({ customerMxPort: 9 });
    started.push(crashed);
    // As if the test process that started it had been killed before its teardown.
    await writeFile(
      join(crashed.dir, 'owner'),
      JSON.stringify({ pid: await deadPid(), startTime: '0' }),
    );

    const next = await startPostfix({ customerMxPort: 9 });
    started.push(next);

    expect(alive(crashed.masterPid)).toBe(false);
    expect(await listening(crashed.port)).toBe(false);
    expect(existsSync(crashed.dir)).toBe(false);
    expect(await listening(next.port)).toBe(true);
  });
});
