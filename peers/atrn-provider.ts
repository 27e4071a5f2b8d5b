/**
 * An in-process ODMR provider (RFC 2645) for tests and the benchmark: it holds a queue of
 * messages, speaks as the server until ATRN (EHLO advertising AUTH CRAM-MD5 and ATRN, AUTH
 * required), answers 250, then turns into the SMTP client and delivers its queue to us. The
 * delivery after the turn, and what it keeps
 * queued like a real MTA, is atrn-delivery.ts; what it holds and the faults it injects,
 * atrn-provider-types.ts.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { deliverHeld } from './atrn-delivery';
import type { AtrnProviderOptions, DeliveryAttempt, HeldQueue } from './atrn-provider-types';
import { Lines } from './smtp-lines';

export type {
  AtrnFaults,
  AtrnProviderOptions,
  DataFault,
  DeliveryAttempt,
  HeldMessage,
} from './atrn-provider-types';
export { stuff, writeSlowly } from './smtp-lines';

export const ACCOUNT = { username: 'customer', password: 'odmr-secret' };

export class AtrnProvider {
  /** Lines the customer sent us while we were the server (credentials included). */
  readonly serverLines: string[] = [];
  private readonly held: HeldQueue;
  private server!: Server;
  private readonly sockets = new Set<Socket>();
  private readonly sessions: Promise<void>[] = [];
  port = 0;

  constructor(private readonly options: AtrnProviderOptions = {}) {
    this.held = {
      queue: (options.queue ?? []).map((message, number) => ({ number, message })),
      bounced: [],
      attempts: [],
      customerReplies: [],
    };
  }

  async start(): Promise<this> {
    this.server = createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
      this.sessions.push(this.serve(socket).catch(() => undefined));
    });
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

  /**
   * Deliver the queue as a plain SMTP client to the server at `port`, no ATRN: the session after
   * the turn, byte for byte, towards another receiver (bench/odmr-receive.ts sends it to a
   * private Postfix). Resolves once the session has ended.
   */
  async deliverTo(port: number, host = '127.0.0.1'): Promise<void> {
    const socket = connect(port, host);
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.on('error', () => undefined);
    const session = deliverHeld(this.held, this.options, socket, new Lines(socket));
    this.sessions.push(session.catch(() => undefined));
    await session;
  }

  get attempts(): DeliveryAttempt[] {
    return this.held.attempts;
  }

  /** Replies the customer sent while we delivered. */
  get customerReplies(): string[] {
    return this.held.customerReplies;
  }

  /** Wait until every connection so far has ended. */
  async idle(): Promise<void> {
    await Promise.all(this.sessions);
  }

  /** Numbers of the messages still queued (not acknowledged, not bounced), in queue order. */
  get waiting(): number[] {
    return this.held.queue.map((q) => q.number);
  }

  get acknowledged(): DeliveryAttempt[] {
    return this.attempts.filter((a) => a.acknowledged);
  }

  get bouncedNumbers(): number[] {
    return this.held.bounced.map((q) => q.number);
  }

  private async serve(raw: Socket): Promise<void> {
    let socket: Socket = raw;
    let wire = new Lines(socket);
    const account = this.options.account ?? ACCOUNT;
    let authenticated = false;
    socket.write('220 provider.test ESMTP ODMR service ready\r\n');
    for (;;) {
      const line = await wire.next(60_000);
      if (line === null) return;
      this.serverLines.push(line);
      const verb = line.split(' ')[0]!.toUpperCase();
      if (verb === 'EHLO') {
        const starttls =
          this.options.tls && !(socket instanceof TLSSocket) ? '250-STARTTLS\r\n' : '';
        socket.write(
          `250-provider.test\r\n${starttls}250-AUTH CRAM-MD5\r\n250-ATRN\r\n250 8BITMIME\r\n`,
        );
      } else if (verb === 'STARTTLS' && this.options.tls) {
        socket.write('220 2.0.0 Ready to start TLS\r\n');
        wire.detach();
        socket = new TLSSocket(socket, { isServer: true, ...this.options.tls });
        socket.on('error', () => undefined);
        wire = new Lines(socket);
      } else if (verb === 'AUTH' && line.toUpperCase() === 'AUTH CRAM-MD5') {
        const challenge = `<${randomBytes(6).toString('hex')}@provider.test>`;
        socket.write(`334 ${Buffer.from(challenge).toString('base64')}\r\n`);
        const answer = Buffer.from((await wire.next(30_000)) ?? '', 'base64').toString('utf8');
        const expected = createHmac('md5', account.password).update(challenge).digest('hex');
        authenticated = answer === `${account.username} ${expected}`;
        socket.write(
          authenticated
            ? '235 2.7.0 Authentication successful\r\n'
            : '535 5.7.8 Authentication failed\r\n',
        );
      } else if (verb === 'ATRN') {
        if (!authenticated) {
          socket.write('530 5.7.0 Authentication required\r\n');
          continue;
        }
        const reply = this.options.atrnReply ?? '250 OK now reversing the connection';
        socket.write(`${reply}\r\n`);
        if (reply.startsWith('250') && this.options.faults?.closeAfterAtrn)
          return void socket.end();
        if (reply.startsWith('250')) return deliverHeld(this.held, this.options, socket, wire);
      } else if (verb === 'QUIT') {
        socket.end('221 2.0.0 Bye\r\n');
        return;
      } else {
        socket.write('502 5.5.1 Not implemented\r\n');
      }
    }
  }
}
