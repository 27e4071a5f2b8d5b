/**
 * A target signalled every 3rd cycle whose server is down in its due cycle is not left for three
 * cycles: it is checked again every cycle until its server answers, and released then.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../cli/main';
import type { TargetResult } from '../../lambda/core/result';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { freePort } from '../../peers/servers/harness';

let provider: ScriptedProvider;
let customerPort: number;
let customer: { server: Server; sockets: Set<Socket> } | undefined;

beforeAll(async () => {
  provider = await new ScriptedProvider({ extensions: ['ETRN'] }).start();
  customerPort = await freePort();
});
afterAll(async () => {
  if (customer) {
    for (const s of customer.sockets) s.destroy();
    await new Promise<void>((r) => customer!.server.close(() => r()));
  }
  await provider.stop();
});

async function startCustomer(): Promise<void> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.write('220 mx.customer.test ESMTP\r\n');
    socket.on('data', () => socket.end('221 bye\r\n'));
  });
  await new Promise<void>((r) => server.listen(customerPort, '127.0.0.1', r));
  customer = { server, sockets };
}

async function cycle(config: string, state: string): Promise<TargetResult> {
  let stdout = '';
  const status = await main(['--config', config, '--state', state, '--json'], {
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: () => true },
  });
  expect(status).toBe(0);
  return JSON.parse(stdout.trim()) as TargetResult;
}

describe('a server down in a due cycle', () => {
  it('is checked again every cycle, due or not, and released as soon as it answers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dequeue-recheck-'));
    const config = join(dir, 'config.json');
    const state = join(dir, 'state.json');
    await writeFile(
      config,
      JSON.stringify({
        targets: [
          {
            name: 'weekly',
            host: '127.0.0.1',
            port: provider.port,
            tls: 'none',
            command: 'ETRN customer.test',
            everyNthCycle: 3,
            precheck: { host: '127.0.0.1', port: customerPort, timeoutSeconds: 2 },
          },
        ],
      }),
    );
    const etrns = () => provider.lines.filter((l) => l.startsWith('ETRN')).length;

    // Cycle 1 is due: the server is down, nothing is sent.
    expect(await cycle(config, state)).toMatchObject({
      cycle: 1,
      outcome: 'skipped',
      reason: expect.stringMatching(/refused the connection: .*ETRN customer\.test not sent$/),
    });
    // Cycle 2 is not due, but the server was down: checked again (still down).
    expect(await cycle(config, state)).toMatchObject({
      cycle: 2,
      outcome: 'skipped',
      reason: expect.stringMatching(/refused the connection/),
      precheck: expect.objectContaining({ passed: false }),
    });
    expect(etrns()).toBe(0);

    // Cycle 3 is not due either: the server is back, the mail is released at once.
    await startCustomer();
    expect(await cycle(config, state)).toMatchObject({
      cycle: 3,
      outcome: 'signalled',
      precheck: expect.objectContaining({ passed: true }),
    });
    expect(etrns()).toBe(1);

    // Cycle 4 is due again anyway (1, 4, 7, ...); cycle 5 is not, and nothing is down: not due.
    await cycle(config, state);
    expect(await cycle(config, state)).toMatchObject({
      cycle: 5,
      outcome: 'skipped',
      reason: expect.stringMatching(/^not due/),
    });
    expect(etrns()).toBe(2);
  });
});
