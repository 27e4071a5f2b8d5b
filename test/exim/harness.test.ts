/**
 * The private Exim harness itself: stop() leaves nothing behind, and a daemon left by a run that
 * died before its teardown is swept away by the next start.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { describeWithExim, startExim, type EximInstance } from '../servers/exim';
import { alive } from '../servers/postfix';

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

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

describeWithExim('the private Exim harness', () => {
  const started: EximInstance[] = [];
  afterAll(async () => {
    for (const instance of started) await instance.stop();
  });

  it('stop() leaves no daemon, no listener and no directory', async () => {
    const exim = await startExim();
    started.push(exim);
    expect(alive(exim.pid)).toBe(true);
    expect(await listening(exim.port)).toBe(true);

    await exim.stop();

    expect(alive(exim.pid)).toBe(false);
    expect(await listening(exim.port)).toBe(false);
    expect(existsSync(exim.dir)).toBe(false);
  });

  it('a start sweeps away a daemon whose owner died without stopping it', async () => {
    const crashed = await startExim();
    started.push(crashed);
    // As if the test process that started it had been killed before its teardown.
    await writeFile(
      join(crashed.dir, 'owner'),
      JSON.stringify({ pid: await deadPid(), startTime: '0' }),
    );

    started.push(await startExim());

    expect(alive(crashed.pid)).toBe(false);
    expect(existsSync(crashed.dir)).toBe(false);
  });
});
