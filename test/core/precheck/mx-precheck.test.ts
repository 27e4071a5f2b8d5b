/**
 * `"precheck": "mx"` in a cycle, with a test resolver whose MX records point at loopback
 * listeners on port 25 (the port a provider delivers to): the provider's own host among them.
 *
 *   127.0.0.1      the provider (a scripted ETRN server; it is in the MX sets too)
 *   127.0.0.51:25  nothing listens: refuses
 *   127.0.0.52:25  greets 421 (busy)
 *   127.0.0.53:25  greets 220
 *   127.0.0.54:25  greets 220, but is less preferred than the provider: never checked
 *
 * Binding port 25 takes root (as the real-server suites do): missing in CI it fails, elsewhere
 * the suite is skipped with a note (describeWithInstalled).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseSettings, parseTarget } from '../../../lambda/core/config';
import type { CycleCounter } from '../../../lambda/core/ports';
import { NO_SUCH_DOMAIN, type MxResolver } from '../../../lambda/core/precheck/mx-servers';
import { runCycle } from '../../../lambda/core/run-cycle';
import { ScriptedProvider } from '../../../peers/scripted-provider';
import { describeWithInstalled } from '../../servers/installed';
import { watchLeftovers } from '../../support/no-leftovers';

const missing = process.getuid?.() === 0 ? undefined : 'binding port 25 needs root';

/** A customer's server on `address`:25 that greets with `greeting` and counts connections. */
async function listen(address: string, greeting: string) {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server: Server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.write(`${greeting}\r\n`);
    socket.on('data', (chunk) => {
      if (/^QUIT\r\n/im.test(chunk.toString('latin1'))) socket.end('221 bye\r\n');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(25, address, () => resolve());
  });
  return {
    get connections() {
      return connections;
    },
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describeWithInstalled('root', missing, '"mx" precheck against loopback MX hosts', () => {
  let provider: ScriptedProvider;
  let busy: Awaited<ReturnType<typeof listen>>;
  let up: Awaited<ReturnType<typeof listen>>;
  let behind: Awaited<ReturnType<typeof listen>>;

  beforeAll(async () => {
    provider = await new ScriptedProvider({ extensions: ['ETRN'] }).start();
    busy = await listen('127.0.0.52', '421 4.3.2 mx-busy too many connections');
    up = await listen('127.0.0.53', '220 mx-up.customer.test ESMTP');
    behind = await listen('127.0.0.54', '220 mx-behind.customer.test ESMTP');
  });
  afterAll(async () => {
    await Promise.all([provider?.stop(), busy?.stop(), up?.stop(), behind?.stop()]);
  });

  const resolver: MxResolver = async (domain) => {
    switch (domain) {
      case 'customer.test':
        return [
          { exchange: '127.0.0.54', priority: 40 },
          { exchange: '127.0.0.1', priority: 30 },
          { exchange: '127.0.0.53', priority: 20 },
          { exchange: '127.0.0.51', priority: 10 },
        ];
      case 'busy.test':
        return [
          { exchange: '127.0.0.52', priority: 10 },
          { exchange: '127.0.0.1', priority: 20 },
          { exchange: '127.0.0.53', priority: 30 },
        ];
      case 'backup-first.test':
        return [
          { exchange: '127.0.0.1', priority: 5 },
          { exchange: '127.0.0.53', priority: 10 },
        ];
      case 'gone.test':
        return NO_SUCH_DOMAIN;
      default:
        throw new Error('SERVFAIL from the DNS');
    }
  };
  const counter: CycleCounter = {
    peek: async () => 0,
    count: async () => ({ cycle: 1, counted: true }),
  };
  const cycle = async (domains: string[]) => {
    const lines: string[] = [];
    const target = parseTarget(
      {
        name: 'isp',
        host: '127.0.0.1',
        port: provider.port,
        tls: 'none',
        command: domains.map((d) => `ETRN ${d}`),
        precheck: 'mx',
      },
      'test',
    );
    const before = provider.lines.length;
    const { results } = await runCycle(
      { settings: parseSettings({}, 'test'), targets: [target], invalid: [] },
      {},
      {
        credentials: { get: async () => ({ username: 'u', password: 'p' }) },
        counter,
        resolveMx: resolver,
        transcript: { line: (_t, d, text) => lines.push(`${d} ${text}`) },
      },
    );
    return {
      result: results[0]!,
      etrn: provider.lines.slice(before).filter((l) => l.startsWith('ETRN')),
      lines,
    };
  };

  it('tries the hosts in preference order, stops at the provider, releases only the domains whose server answered', async () => {
    const leftovers = watchLeftovers();
    const before = { busy: busy.connections, up: up.connections, behind: behind.connections };
    const { result, etrn, lines } = await cycle(['customer.test', 'busy.test']);

    expect(etrn).toEqual(['ETRN customer.test']);
    expect(result.outcome).toBe('signalled');
    expect(result.replies).toEqual([
      { command: 'ETRN customer.test', code: 250, text: expect.any(String) },
      {
        command: 'ETRN busy.test',
        code: null,
        text: 'not sent: busy.test: 127.0.0.52:25 greeted 421 4.3.2 mx-busy too many connections: the provider could not deliver now',
      },
    ]);
    expect(result.precheck?.text).toBe(
      'customer.test: 127.0.0.51:25 refused the connection, 127.0.0.53:25 greeted 220; busy.test: 127.0.0.52:25 greeted 421 4.3.2 mx-busy too many connections',
    );
    // 127.0.0.53 is behind the provider for busy.test, 127.0.0.54 for customer.test: the
    // provider would never deliver to them for those domains, so neither is asked for them.
    expect(up.connections - before.up).toBe(1);
    expect(busy.connections - before.busy).toBe(1);
    expect(behind.connections - before.behind).toBe(0);
    expect(lines).toContain(
      '* precheck: MX of customer.test: 127.0.0.51 (10), 127.0.0.53 (20), 127.0.0.1 (30), 127.0.0.54 (40); 127.0.0.1 and any not preferred to it left out (the provider)',
    );
    expect(await leftovers.settle()).toEqual([]);
  });

  it('nothing to check or no answer for every domain: skipped, no connection to the provider', async () => {
    const connections = provider.connections.length;
    const { result, etrn } = await cycle(['backup-first.test', 'gone.test', 'broken.test']);
    expect(etrn).toEqual([]);
    expect(provider.connections.length).toBe(connections);
    expect(result.outcome).toBe('skipped');
    expect(result.reason).toBe(
      'backup-first.test: the provider 127.0.0.1 is itself the most preferred MX of backup-first.test (127.0.0.1 (5), 127.0.0.53 (10)): it would not deliver to anyone else (RFC 5321 section 5.1), so there is no server of the customer to check; ' +
        'gone.test: gone.test does not exist in the DNS (NXDOMAIN): nothing can deliver to it; ' +
        'broken.test: the MX records of broken.test could not be looked up: SERVFAIL from the DNS: ' +
        'the provider could not deliver now; ETRN backup-first.test | ETRN gone.test | ETRN broken.test not sent',
    );
  });
});
