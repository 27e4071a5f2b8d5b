/**
 * The precheck in the deployed function's world, on moto_server: the handler (wired as in Lambda)
 * checks the customer's own server before each ETRN, writes what it found into the target's
 * status item, publishes ServerDownTargets once the server has been down for
 * DEQUEUE_SERVER_DOWN_AFTER_CYCLES cycles, spends no claim on a failed check, and
 * `dequeue status --table` shows the server down, then its recovery.
 */
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { main } from '../../cli/main';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { freePort } from '../../peers/servers/harness';
import { describeWithMotoServer, startMotoServer, type MotoServer } from '../servers/moto-server';
import { AwsWorld, CapturedOutput, contextWith, TABLE } from './aws-world';

describeWithMotoServer('precheck: status items, ServerDownTargets and status --table', () => {
  let moto: MotoServer;
  let world: AwsWorld;
  let provider: ScriptedProvider;
  let output: CapturedOutput;
  let customerPort: number;
  let customer: { server: Server; sockets: Set<Socket> } | undefined;

  beforeAll(async () => {
    moto = await startMotoServer();
    world = new AwsWorld(moto);
    provider = await new ScriptedProvider({ extensions: ['ETRN'] }).start();
    customerPort = await freePort();
  });
  afterAll(async () => {
    await stopCustomer();
    await provider?.stop();
    await moto?.stop();
  });
  beforeEach(async () => {
    await world.reset();
    output = new CapturedOutput();
  });
  afterEach(() => output.restore());

  /** The customer's own server comes up on the port the precheck names. */
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
  async function stopCustomer(): Promise<void> {
    if (!customer) return;
    for (const s of customer.sockets) s.destroy();
    await new Promise<void>((r) => customer!.server.close(() => r()));
    customer = undefined;
  }

  async function cli(argv: string[]) {
    let stdout = '';
    const status = await main(argv, {
      stdout: { write: (t: string) => (stdout += t) },
      stderr: { write: () => true },
      aws: moto.clientConfig,
    });
    return { status, stdout };
  }

  const get = async (pk: string) =>
    (
      await world.dynamodb.send(
        new GetItemCommand({ TableName: TABLE, Key: { pk: { S: pk } }, ConsistentRead: true }),
      )
    ).Item;

  const serverDownMetric = () =>
    output.emf.filter((d) => 'ServerDownTargets' in d).map((d) => d.ServerDownTargets);

  it('a server down two cycles raises ServerDownTargets; no ETRN, no claim; its recovery releases at once', async () => {
    await world.putSettings({});
    await world.putTarget('guarded', {
      name: 'guarded',
      host: '127.0.0.1',
      port: provider.port,
      tls: 'none',
      command: 'ETRN guarded.test',
      precheck: { host: '127.0.0.1', port: customerPort, timeoutSeconds: 2 },
    });
    const handler = world.handler({
      health: { failingAfterCycles: 3, staleAfterHours: 24, serverDownAfterCycles: 2 },
    });
    const before = provider.lines.length;

    const first = await handler({}, contextWith());
    expect(first.results).toEqual([
      expect.objectContaining({
        target: 'guarded',
        outcome: 'skipped',
        reason: `127.0.0.1:${customerPort} refused the connection: the provider could not deliver now; ETRN guarded.test not sent`,
      }),
    ]);
    const down = await get('status#guarded');
    expect(down).toMatchObject({
      lastOutcome: { S: 'skipped' },
      // A server that is down is not a failing target: the cycle is not a failure of ours.
      consecutiveFailures: { N: '0' },
      serverDownSince: { S: expect.stringMatching(/^\d{4}-/) },
      serverDownChecks: { N: '1' },
      lastPrecheck: {
        M: {
          passed: { BOOL: false },
          text: { S: `127.0.0.1:${customerPort} refused the connection` },
          at: { S: down!.serverDownSince!.S },
        },
      },
    });
    // The claim of cycle 1 was never taken: nothing was spent on the down server.
    expect(await get('claim#1#guarded')).toBeUndefined();

    await handler({}, contextWith());
    const still = await get('status#guarded');
    expect(still?.serverDownSince).toEqual(down!.serverDownSince);
    expect(still?.serverDownChecks).toEqual({ N: '2' });
    expect(serverDownMetric()).toEqual([0, 1]);
    expect(provider.lines.slice(before).filter((l) => l.startsWith('ETRN'))).toEqual([]);

    const table = await cli(['status', '--table', TABLE]);
    expect(table.stdout).toMatch(
      new RegExp(
        `^guarded\\s+SERVER DOWN\\s+.*your server is down since ${down!.serverDownSince!.S!.slice(0, 19)}Z: 127\\.0\\.0\\.1:${customerPort} refused the connection`,
        'm',
      ),
    );
    const json = JSON.parse((await cli(['status', '--table', TABLE, '--json'])).stdout);
    expect(json).toMatchObject({
      serverDownSince: down!.serverDownSince!.S,
      lastPrecheck: { passed: false, text: `127.0.0.1:${customerPort} refused the connection` },
    });

    await startCustomer();
    const third = await handler({}, contextWith());
    expect(third.results).toEqual([expect.objectContaining({ outcome: 'signalled' })]);
    expect(provider.lines.slice(before).filter((l) => l.startsWith('ETRN'))).toEqual([
      'ETRN guarded.test',
    ]);
    const up = await get('status#guarded');
    expect(up).not.toHaveProperty('serverDownSince');
    expect(up).toMatchObject({
      serverDownChecks: { N: '0' },
      lastPrecheck: { M: { passed: { BOOL: true } } },
    });
    expect(serverDownMetric()).toEqual([0, 1, 0]);
  });
});
