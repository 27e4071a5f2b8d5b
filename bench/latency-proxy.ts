/**
 * A TCP proxy on loopback that adds a fixed one-way delay in each direction and counts the
 * conversation's turns, so that a benchmark can show round trips on a "long" line from one machine.
 *
 *   const proxy = await new LatencyProxy({ upstreamPort, oneWayDelayMs: 50 }).start();
 *   // point the client at 127.0.0.1:proxy.port
 *
 * The delay. Every chunk is forwarded `oneWayDelayMs` after the proxy received it, in order, in both
 * directions; so a request and its reply cost 2 x delay (one RTT) on top of the peers' own time.
 * TCP's handshake is modelled as half of that: the proxy opens its upstream connection one delay
 * after accepting the client, and the greeting takes one more delay back, so the greeting reaches
 * the client one RTT after it connected. Both clients compared see exactly the same model.
 *
 * What is counted, per connection, exactly:
 *
 * - `clientBursts`: how many times the client -> server direction STARTS A NEW BURST: client data
 *   that reaches the proxy when the last data the proxy saw on this connection came from the server
 *   (or when it is the first client data at all). Writes the client makes before any server reply
 *   arrives (a pipelined group, a command split over several writes) belong to one burst.
 * - `roundTrips` = 1 + clientBursts: the wait for the greeting after connecting, plus one wait per
 *   burst. This assumes the client waits for a reply after each burst, which is what both clients
 *   compared here do (each waits for the reply to its last command, QUIT). A client that closed
 *   without waiting would be charged a round trip it did not spend; the wall time would show it.
 * - `clientLines`: the lines the client sent, in order (for "commands sent"); base64 AUTH
 *   continuation lines are kept as sent, callers redact what they print.
 * - byte counts in each direction.
 *
 * The proxy observes arrivals before adding its delay, so the order it sees is the order the peers
 * produced: a server reply can only reach the proxy after the request that caused it did.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface LatencyProxyOptions {
  readonly upstreamHost?: string;
  readonly upstreamPort: number;
  /** Added to every chunk in each direction. Default 50 ms (an RTT of 100 ms). */
  readonly oneWayDelayMs?: number;
}

export interface ConnectionTrace {
  /** Epoch ms when the client connected to the proxy. */
  readonly connectedAt: number;
  /** Epoch ms when both sides had closed; undefined while open. */
  closedAt?: number;
  /** Client -> server bursts, each begun after the server had spoken (or the first). */
  clientBursts: number;
  /** Server -> client bursts (the greeting is the first). */
  serverBursts: number;
  /** 1 (connect + greeting) + clientBursts. */
  readonly roundTrips: number;
  readonly clientLines: string[];
  bytesUp: number;
  bytesDown: number;
}

export class LatencyProxy {
  readonly connections: ConnectionTrace[] = [];
  port = 0;
  private server!: Server;
  private readonly sockets = new Set<Socket>();
  private readonly delay: number;
  private readonly host: string;

  constructor(private readonly options: LatencyProxyOptions) {
    this.delay = options.oneWayDelayMs ?? 50;
    this.host = options.upstreamHost ?? '127.0.0.1';
  }

  async start(): Promise<this> {
    this.server = createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Wait (bounded) until every connection so far has closed. */
  async idle(timeoutMs = 5_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.connections.some((c) => c.closedAt === undefined)) {
      if (Date.now() > until)
        throw new Error(`the proxy still has open connections after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  private accept(client: Socket): void {
    let last: 'client' | 'server' | null = null;
    let partial = '';
    const trace: ConnectionTrace = {
      connectedAt: Date.now(),
      clientBursts: 0,
      serverBursts: 0,
      get roundTrips() {
        return 1 + this.clientBursts;
      },
      clientLines: [],
      bytesUp: 0,
      bytesDown: 0,
    };
    this.connections.push(trace);
    this.sockets.add(client);
    client.setNoDelay(true);

    let upstream: Socket | undefined;
    let open = 2;
    const closed = () => {
      if (--open === 0) trace.closedAt = Date.now();
    };
    const later = (fn: () => void) => setTimeout(fn, this.delay);

    // The SYN's one-way trip: the upstream connection opens one delay after the client's.
    later(() => {
      if (client.destroyed) {
        closed();
        return;
      }
      upstream = connect(this.options.upstreamPort, this.host);
      upstream.setNoDelay(true);
      this.sockets.add(upstream);
      upstream.on('data', (chunk: Buffer) => {
        if (last !== 'server') trace.serverBursts++;
        last = 'server';
        trace.bytesDown += chunk.length;
        later(() => client.destroyed || client.write(chunk));
      });
      upstream.on('end', () => later(() => client.end()));
      upstream.on('close', () => {
        this.sockets.delete(upstream!);
        // end(), not destroy(): replies still on their way must reach the client first.
        later(() => client.end());
        closed();
      });
      upstream.on('error', () => undefined);
    });

    client.on('data', (chunk: Buffer) => {
      if (last !== 'client') trace.clientBursts++;
      last = 'client';
      trace.bytesUp += chunk.length;
      partial += chunk.toString('latin1');
      let i: number;
      while ((i = partial.indexOf('\n')) !== -1) {
        trace.clientLines.push(partial.slice(0, i).replace(/\r$/, ''));
        partial = partial.slice(i + 1);
      }
      // Timers of equal delay fire in the order they were set: the upstream connection (set at
      // accept) exists before the first chunk is due, and chunks keep their order.
      later(() => upstream && !upstream.destroyed && upstream.write(chunk));
    });
    client.on('end', () => later(() => upstream?.end()));
    client.on('close', () => {
      this.sockets.delete(client);
      later(() => upstream?.end());
      closed();
    });
    client.on('error', () => undefined);
  }
}
