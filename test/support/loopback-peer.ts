/**
 * A scripted peer on a loopback port, for tests that play a server by hand (a hostile provider, a
 * hostile mail server, a quirky MTA): it listens on a free port, keeps track of the connections it
 * accepted and the timers it armed, and stop() leaves none of them behind, so that a test's
 * leftover check (no-leftovers.ts) sees only what the product left.
 */
import { createServer, type Server, type Socket } from 'node:net';

export abstract class LoopbackPeer {
  port = 0;
  private server!: Server;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();

  async start(): Promise<this> {
    this.server = createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
      this.serve(socket);
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** Run `fn` after `ms`, unless the peer is stopped first. */
  protected later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  /** One accepted connection (already tracked, its errors swallowed). */
  protected abstract serve(socket: Socket): void;
}
