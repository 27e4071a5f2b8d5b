/**
 * An in-process ODMR provider (RFC 2645) for tests and the benchmark: it holds a queue of
 * messages, speaks as the server until ATRN (EHLO advertising AUTH CRAM-MD5 and ATRN, AUTH
 * required), answers 250, then turns into the SMTP client and delivers its queue to us.
 *
 * It behaves like a real MTA about what it keeps: a message leaves the queue only on our 250
 * (delivered) or a 5xx (bounced); after a 4xx, a cut, or our 421 it stays for the next
 * connection. Recipients refused with 452 are queued again as a new message (RFC 5321
 * 4.5.3.1.10). Faults are injected on request: a cut or silence at any byte of DATA, a line that
 * never ends, RCPTs that keep coming after 452, INetSim's stray empty line after the final dot.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { Lines, stuff, writeSlowly } from './smtp-lines';

export { stuff, writeSlowly } from './smtp-lines';

export interface HeldMessage {
  readonly from: string;
  readonly to: readonly string[];
  /** The message text as held (before dot-stuffing), CRLF line ends. */
  readonly text: Buffer;
  /** The text already dot-stuffed with its final dot (benchmarks prepare it once). */
  readonly wire?: Buffer;
  /** Sent as MAIL's BODY parameter (RFC 6152) when given. */
  readonly body?: '7BIT' | '8BITMIME';
}

export interface DataFault {
  /** Which delivery attempt of this connection (0 = the first DATA it sends). */
  readonly message: number;
  /** Bytes of the dot-stuffed data sent before the fault. */
  readonly afterBytes: number;
}

export interface AtrnFaults {
  /** Close the connection in the middle of DATA (`reset`: with a TCP RST). */
  readonly cutInData?: DataFault & { readonly reset?: boolean };
  /** Stop sending in the middle of DATA, keeping the connection open. */
  readonly silenceInData?: DataFault;
  /** After our 220, never say anything. */
  readonly silentAfterGreeting?: boolean;
  /** After our 220, send one line that never ends (up to this many bytes, then stall). */
  readonly endlessLineBytes?: number;
  /** Keep sending RCPTs after 452 instead of starting another transaction. */
  readonly ignore452?: boolean;
  /** Send "\r\n" after the final dot, as INetSim does. */
  readonly strayEmptyLine?: boolean;
  /** Send this many bytes of data without the final dot and without SIZE (an oversize stream). */
  readonly endlessDataBytes?: number;
  /** After EHLO, send this many unknown commands (one per round trip) before any mail. */
  readonly garbageCommands?: number;
  /**
   * Write the last message's final dot and QUIT in one write, then half-close (FIN) before
   * reading the replies: Exim does that on a message's first try when nothing else waits.
   */
  readonly quitWithLastDot?: boolean;
  /** Close the connection right after the 250 to ATRN, before the customer's greeting. */
  readonly closeAfterAtrn?: boolean;
}

export interface AtrnProviderOptions {
  readonly account?: { readonly username: string; readonly password: string };
  /** Offer STARTTLS with this certificate (RFC 3207); the turn then happens inside TLS. */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** The reply to ATRN; default `250 OK now reversing the connection`. */
  readonly atrnReply?: string;
  readonly queue?: readonly HeldMessage[];
  /** Send MAIL, RCPT... and DATA in one write when we advertise PIPELINING (RFC 2920). */
  readonly pipelining?: boolean;
  /** Send SIZE= with MAIL when we advertise SIZE (RFC 1870). */
  readonly declareSize?: boolean;
  /** DATA is written in pieces of this size (default 64 KiB), waiting for the socket to drain. */
  readonly chunkBytes?: number;
  /** Pause before each message (after the first), to let a deadline arrive mid-queue. */
  readonly pauseBeforeMessageMs?: number;
  readonly faults?: AtrnFaults;
  /** How long we wait for each of the customer's replies (default 30 s). */
  readonly replyTimeoutMs?: number;
  /**
   * Told when a fault is in place: `silent` once the partial data of `silenceInData` is written
   * (a test then stops the customer at a known point).
   */
  readonly onFault?: (fault: 'silent') => void;
}

export interface DeliveryAttempt {
  /** The message's number in the order it was first queued. */
  readonly number: number;
  /** The customer's reply to the final dot (or to MAIL/RCPT/DATA when it refused earlier); null if none came. */
  readonly reply: string | null;
  readonly acknowledged: boolean;
  readonly recipients: readonly string[];
}

interface Queued {
  readonly number: number;
  readonly message: HeldMessage;
}

export const ACCOUNT = { username: 'customer', password: 'odmr-secret' };

export class AtrnProvider {
  readonly attempts: DeliveryAttempt[] = [];
  /** Lines the customer sent us while we were the server (credentials included). */
  readonly serverLines: string[] = [];
  /** Replies the customer sent while we delivered. */
  readonly customerReplies: string[] = [];
  private queue: Queued[];
  private readonly bounced: Queued[] = [];
  private server!: Server;
  private readonly sockets = new Set<Socket>();
  private readonly sessions: Promise<void>[] = [];
  port = 0;

  constructor(private readonly options: AtrnProviderOptions = {}) {
    this.queue = (options.queue ?? []).map((message, number) => ({ number, message }));
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
    const session = this.deliver(socket, new Lines(socket));
    this.sessions.push(session.catch(() => undefined));
    await session;
  }

  /** Wait until every connection so far has ended. */
  async idle(): Promise<void> {
    await Promise.all(this.sessions);
  }

  /** Numbers of the messages still queued (not acknowledged, not bounced), in queue order. */
  get waiting(): number[] {
    return this.queue.map((q) => q.number);
  }

  get acknowledged(): DeliveryAttempt[] {
    return this.attempts.filter((a) => a.acknowledged);
  }

  get bouncedNumbers(): number[] {
    return this.bounced.map((q) => q.number);
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
        if (reply.startsWith('250')) return this.deliver(socket, wire);
      } else if (verb === 'QUIT') {
        socket.end('221 2.0.0 Bye\r\n');
        return;
      } else {
        socket.write('502 5.5.1 Not implemented\r\n');
      }
    }
  }

  /** After the turn: we are the client (RFC 2645 section 4). */
  private async deliver(socket: Socket, wire: Lines): Promise<void> {
    // Recipients put off (4xx) wait for a later session, however this one ends.
    const later: Queued[] = [];
    try {
      await this.deliverQueue(socket, wire, later);
    } finally {
      this.queue.push(...later);
    }
  }

  private async deliverQueue(socket: Socket, wire: Lines, later: Queued[]): Promise<void> {
    const o = this.options;
    const faults = o.faults ?? {};
    const wait = o.replyTimeoutMs ?? 30_000;
    const reply = async (): Promise<string | null> => {
      const lines: string[] = [];
      for (;;) {
        const line = await wire.next(wait);
        if (line === null) return null;
        lines.push(line);
        this.customerReplies.push(line);
        if (/^\d{3}(?: |$)/.test(line)) return lines.join('\n');
      }
    };
    const greeting = await reply();
    if (!greeting?.startsWith('220')) return void socket.destroy();
    if (faults.silentAfterGreeting) return;
    if (faults.endlessLineBytes) {
      await writeSlowly(socket, Buffer.alloc(faults.endlessLineBytes, 'X'), 64 * 1024);
      // Whatever the customer answered meanwhile is still worth recording.
      while ((await reply()) !== null);
      return;
    }
    socket.write('EHLO provider.test\r\n');
    const ehlo = await reply();
    if (!ehlo?.startsWith('250')) return void socket.destroy();
    const pipelining = o.pipelining === true && /\bPIPELINING\b/.test(ehlo);
    const sizeAdvertised = /\bSIZE\b/.test(ehlo);
    for (let i = 0; i < (faults.garbageCommands ?? 0); i++) {
      socket.write('XYZZY\r\n');
      const r = await reply();
      if (r === null || r.startsWith('421')) {
        socket.end();
        return undefined;
      }
    }

    let attempt = 0;
    while (this.queue.length) {
      if (attempt > 0 && o.pauseBeforeMessageMs)
        await new Promise((r) => setTimeout(r, o.pauseBeforeMessageMs));
      const item = this.queue[0]!;
      const { message } = item;
      const stuffed = message.wire ?? stuff(message.text);
      const size =
        (o.declareSize && sizeAdvertised ? ` SIZE=${message.text.length}` : '') +
        (message.body ? ` BODY=${message.body}` : '');
      const rcpts = message.to.map((to) => `RCPT TO:<${to}>\r\n`);
      const accepted: string[] = [];
      let deferred: string[] = [];
      /** A 452: the rest of the recipients wait for another transaction. */
      let tooMany = false;
      const finish = (replyText: string | null, acknowledged: boolean, keep: boolean) => {
        this.attempts.push({
          number: item.number,
          reply: replyText,
          acknowledged,
          recipients: accepted,
        });
        this.queue.shift();
        if (acknowledged && deferred.length && tooMany) {
          this.queue.unshift({ number: item.number, message: { ...message, to: deferred } });
        } else if (acknowledged && deferred.length) {
          // Put off (4xx) for these recipients: tried again in a later session, not this one.
          later.push({ number: item.number, message: { ...message, to: deferred } });
        } else if (keep) {
          // Put off (4xx): tried again at the next connection, as a real MTA defers it, not
          // again and again in this one.
          later.push(item);
        } else if (!acknowledged) {
          this.bounced.push(item);
        }
      };

      if (pipelining)
        socket.write(`MAIL FROM:<${message.from}>${size}\r\n${rcpts.join('')}DATA\r\n`);
      else socket.write(`MAIL FROM:<${message.from}>${size}\r\n`);
      const mail = await reply();
      if (mail === null) return this.lost(item, mail);
      if (!mail.startsWith('250')) {
        if (pipelining) {
          for (let i = 0; i <= message.to.length; i++)
            if ((await reply()) === null) return this.lost(item, mail);
        }
        finish(mail, false, mail.startsWith('4'));
        if (mail.startsWith('421')) return void socket.end();
        continue;
      }
      for (const [i, to] of message.to.entries()) {
        if (!pipelining) socket.write(rcpts[i]!);
        const r = await reply();
        if (r === null) return this.lost(item, r);
        if (r.startsWith('250')) accepted.push(to);
        else if (r.startsWith('452') && !faults.ignore452) {
          deferred = message.to.slice(i).filter((t) => !accepted.includes(t));
          tooMany = true;
        } else if (r.startsWith('4') && !r.startsWith('421')) {
          // Any other 4xx: this recipient stays queued, as a real MTA keeps it (RFC 5321 4.2.1).
          deferred.push(to);
        }
        if (r.startsWith('421')) {
          finish(r, false, true);
          return void socket.end();
        }
        if (tooMany && !pipelining) break;
      }
      if (pipelining && tooMany) deferred = message.to.filter((t) => !accepted.includes(t));
      if (!pipelining) {
        if (!accepted.length) {
          socket.write('RSET\r\n');
          await reply();
          // Every recipient refused: 4xx keeps the message, 5xx bounces it.
          finish('no recipient accepted', false, deferred.length > 0);
          continue;
        }
        socket.write('DATA\r\n');
      }
      const go = await reply();
      if (go === null) return this.lost(item, go);
      if (!go.startsWith('354')) {
        finish(go, false, !go.startsWith('5'));
        if (go.startsWith('421')) return void socket.end();
        continue;
      }

      const cut = faults.cutInData?.message === attempt ? faults.cutInData : undefined;
      const silence = faults.silenceInData?.message === attempt ? faults.silenceInData : undefined;
      const stopAt = cut?.afterBytes ?? silence?.afterBytes;
      attempt++;
      if (faults.endlessDataBytes) {
        await writeSlowly(
          socket,
          Buffer.alloc(faults.endlessDataBytes, 'y'),
          o.chunkBytes ?? 64 * 1024,
        );
        return this.lost(item, null);
      }
      if (stopAt !== undefined) {
        await writeSlowly(socket, stuffed.subarray(0, stopAt), o.chunkBytes ?? 64 * 1024);
        if (cut) {
          // Let the bytes reach the customer before the connection goes.
          await new Promise((r) => setTimeout(r, 20));
          if (cut.reset) socket.resetAndDestroy();
          else socket.destroy();
        } else {
          o.onFault?.('silent');
          // Silent, but still listening: the customer's 421 (a timeout, a deadline, a stop).
          while ((await reply()) !== null);
        }
        return this.lost(item, null);
      }
      if (faults.quitWithLastDot && this.queue.length === 1) {
        const all = Buffer.concat([stuffed, Buffer.from('QUIT\r\n')]);
        if (!(await writeSlowly(socket, all, o.chunkBytes ?? 64 * 1024)))
          return this.lost(item, null);
        socket.end();
        const end = await reply();
        if (end === null) return this.lost(item, end);
        finish(end, end.startsWith('250'), end.startsWith('4'));
        await reply();
        return;
      }
      const sent = await writeSlowly(socket, stuffed, o.chunkBytes ?? 64 * 1024);
      if (!sent) return this.lost(item, null);
      if (faults.strayEmptyLine) socket.write('\r\n');
      const end = await reply();
      if (end === null) return this.lost(item, end);
      finish(end, end.startsWith('250'), end.startsWith('4'));
      if (end.startsWith('421')) return void socket.end();
    }
    socket.write('QUIT\r\n');
    await reply();
    socket.end();
  }

  /** The connection went with a message in flight: it stays queued. */
  private lost(item: Queued, replyText: string | null): void {
    this.attempts.push({
      number: item.number,
      reply: replyText,
      acknowledged: false,
      recipients: [],
    });
  }
}
