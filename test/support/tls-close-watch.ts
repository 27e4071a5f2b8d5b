/**
 * Did the client close its TLS connection properly (a close_notify alert, RFC 8446 6.1), or just
 * drop the TCP connection? A Node TLS server cannot tell: its socket emits 'end' for both. So
 * this relay sits between the client and an implicit-TLS provider, passes every byte through,
 * and reads the record layer of what the client sends: with TLS 1.2 (the provider must cap its
 * version there) an alert record keeps its cleartext content type, 21, after the handshake;
 * the only alert a client sends at the end of a good session is close_notify.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

const ALERT = 21;

export class TlsCloseWatch {
  /** Per connection: whether the client sent an alert record (its close_notify). */
  readonly alerts: boolean[] = [];
  port = 0;
  private server!: Server;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly upstreamPort: number) {}

  async start(): Promise<this> {
    this.server = createServer((client) => this.relay(client));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private relay(client: Socket): void {
    const index = this.alerts.push(false) - 1;
    const upstream = connect(this.upstreamPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
    }
    let pending = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      // TLS record: type (1), version (2), length (2), payload.
      while (pending.length >= 5 && pending.length >= 5 + pending.readUInt16BE(3)) {
        if (pending[0] === ALERT) this.alerts[index] = true;
        pending = pending.subarray(5 + pending.readUInt16BE(3));
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => client.write(chunk));
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }
}
