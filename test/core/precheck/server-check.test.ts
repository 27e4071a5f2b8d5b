/**
 * One server check against loopback peers that behave as a customer's server does when it is up,
 * busy, refusing, gone or silent. Each verdict is what the provider's own delivery attempt would
 * meet; the check leaves no socket or timer behind.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkServer } from '../../../lambda/core/precheck/server-check';
import { LoopbackPeer } from '../../support/loopback-peer';
import { watchLeftovers } from '../../support/no-leftovers';

/** Greets with `greeting` (or says nothing when null), records what the client says. */
class CustomerServer extends LoopbackPeer {
  readonly heard: string[] = [];
  constructor(private readonly greeting: string | null) {
    super();
  }
  protected serve(socket: Socket): void {
    if (this.greeting === null) return;
    socket.write(`${this.greeting}\r\n`);
    let buffered = '';
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1');
      for (let i = buffered.indexOf('\r\n'); i >= 0; i = buffered.indexOf('\r\n')) {
        const line = buffered.slice(0, i);
        buffered = buffered.slice(i + 2);
        this.heard.push(line);
        if (line.toUpperCase() === 'QUIT') socket.end('221 2.0.0 Bye\r\n');
      }
    });
  }
}

/** A port nothing listens on: bound, noted and closed again. */
async function closedPort(): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe('checking one server', () => {
  const up = new CustomerServer('220 mx1.customer.example ESMTP');
  const busy = new CustomerServer('421 4.3.2 mx1.customer.example too busy, try later');
  const closedShop = new CustomerServer('554 5.3.2 no mail service here');
  const silent = new CustomerServer(null);
  let nobody: number;

  beforeAll(async () => {
    await Promise.all([up.start(), busy.start(), closedShop.start(), silent.start()]);
    nobody = await closedPort();
  });
  afterAll(async () => {
    await Promise.all([up.stop(), busy.stop(), closedShop.stop(), silent.stop()]);
  });

  const check = (port: number, timeoutMs = 5_000) =>
    checkServer({ host: '127.0.0.1', port, tls: 'none', timeoutMs, label: 'isp' });

  it('220: passes, and leaves with QUIT after the greeting, saying nothing else', async () => {
    const leftovers = watchLeftovers();
    expect(await check(up.port)).toEqual({
      server: `127.0.0.1:${up.port}`,
      passed: true,
      text: 'greeted 220',
    });
    expect(up.heard).toEqual(['QUIT']);
    expect(await leftovers.settle()).toEqual([]);
  });

  it("a 421 or 554 greeting fails with the server's own words", async () => {
    expect(await check(busy.port)).toEqual({
      server: `127.0.0.1:${busy.port}`,
      passed: false,
      text: 'greeted 421 4.3.2 mx1.customer.example too busy, try later',
    });
    expect(await check(closedShop.port)).toMatchObject({
      passed: false,
      text: 'greeted 554 5.3.2 no mail service here',
    });
  });

  it('a refused connection fails as such', async () => {
    expect(await check(nobody)).toEqual({
      server: `127.0.0.1:${nobody}`,
      passed: false,
      text: 'refused the connection',
    });
  });

  it('"tls": "implicit" against a plain port fails saying so, whole, in precheck\'s own field', async () => {
    const result = await checkServer({
      host: '127.0.0.1',
      port: up.port,
      tls: 'implicit',
      timeoutMs: 5_000,
      label: 'isp',
    });
    expect(result).toEqual({
      server: `127.0.0.1:${up.port}`,
      passed: false,
      text: `failed: TLS with 127.0.0.1:${up.port} failed: the server speaks plain SMTP on this port, not TLS from the first byte: use STARTTLS here ("precheck.tls": "required"), or the port of its implicit TLS (465)`,
    });
  });

  it('silence fails after the bound, and a port-25 hint is added only on port 25', async () => {
    const leftovers = watchLeftovers();
    const result = await checkServer({
      host: '127.0.0.1',
      port: silent.port,
      tls: 'none',
      timeoutMs: 200,
      label: 'isp',
      port25Hint: 'AWS blocks outbound TCP port 25',
    });
    expect(result).toMatchObject({ passed: false, text: 'did not answer within 0.2 s' });
    expect(await leftovers.settle()).toEqual([]);
  });

  it("the run's deadline cuts the bound short", async () => {
    const started = Date.now();
    const result = await checkServer({
      host: '127.0.0.1',
      port: silent.port,
      tls: 'none',
      timeoutMs: 30_000,
      deadline: Date.now() + 150,
      label: 'isp',
    });
    expect(result.passed).toBe(false);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("the transcript shows the greeting and the goodbye under the target's name", async () => {
    const lines: string[] = [];
    await checkServer({
      host: '127.0.0.1',
      port: up.port,
      tls: 'none',
      timeoutMs: 5_000,
      label: 'isp',
      transcript: { line: (target, dir, text) => lines.push(`${target} ${dir} ${text}`) },
    });
    expect(lines).toEqual(
      expect.arrayContaining([
        'isp S 220 mx1.customer.example ESMTP',
        'isp C QUIT',
        'isp S 221 2.0.0 Bye',
      ]),
    );
  });
});
