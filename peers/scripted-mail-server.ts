/**
 * A scripted mail server on loopback (TCP or a unix socket), SMTP or LMTP (RFC 2033): the
 * customer's own server that `dequeue deliver` and the relay hand mail to, with the faults a real
 * server will not produce on demand: a reply of our choice per recipient (250, 451, 550), per
 * recipient after the final dot (LMTP), a cut in the middle of DATA, no 8BITMIME, STARTTLS
 * missing or refused, or a certificate (peers/tls/) for STARTTLS or TLS from the first byte.
 *
 * It keeps what it accepted (envelope, the data as it came on the wire, and unstuffed) so that a
 * test can check that every message arrived exactly once, with its own envelope, canonical
 * (CRLF line ends only, stuffed) whatever the store held.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

export interface AcceptedMessage {
  readonly mailFrom: string;
  /** The recipients it was accepted for (RCPT accepted, and the final reply 2xx). */
  readonly rcptTo: readonly string[];
  readonly mailParams: string;
  /** The data as it came, dot-stuffed, up to (not including) the final "." line. */
  readonly wire: Buffer;
  /** The message text, unstuffed. */
  readonly text: Buffer;
  /** Which connection it came on: 1 for the server's first, and so on. */
  readonly connection: number;
}

export interface ScriptedMailServerOptions {
  readonly lmtp?: boolean;
  /** Listen on this unix socket instead of a loopback port. */
  readonly socketPath?: string;
  /** EHLO/LHLO keywords; default PIPELINING, 8BITMIME, SIZE, ENHANCEDSTATUSCODES. */
  readonly extensions?: readonly string[];
  /** The reply to each RCPT; default 250. */
  readonly rcpt?: (address: string) => string;
  /** The reply to the final dot: per accepted recipient in LMTP, once (with the first) in SMTP. */
  readonly final?: (address: string, message: number) => string;
  /** Destroy the connection after this many bytes of DATA of message `n` (0-based, counted per server). */
  readonly cutInData?: { readonly message: number; readonly afterBytes: number };
  /** Send `reply` and close after this many bytes of DATA of message `n`: Dovecot's 421 on SIGTERM. */
  readonly closeInData?: {
    readonly message: number;
    readonly afterBytes: number;
    readonly reply: string;
  };
  /** Stop reading after this many bytes of DATA of message `n` until `until()` settles (a stalled server). */
  readonly stallInData?: {
    readonly message: number;
    readonly afterBytes: number;
    readonly until: () => Promise<void>;
  };
  /**
   * End the data at LF "." CRLF, as servers did before their 2023-24 smuggling fixes, rather than
   * at CRLF "." CRLF only: what a smuggled second message would need.
   */
  readonly naiveEndOfData?: boolean;
  /** Replace the reply to EHLO (e.g. a 421) or to STARTTLS (e.g. 454; offer it in `extensions`). */
  readonly replies?: { readonly EHLO?: string; readonly STARTTLS?: string };
  /** Reply to MAIL; default 250. */
  readonly mail?: (from: string) => string;
  /** Answer the final dot of message `n` (0-based) only once this settles: a server slow to take it. */
  readonly holdFinal?: (message: number) => Promise<void> | undefined;
  /**
   * Read command `line` (and what follows it on its connection) only once this settles: a server
   * slow to decide, e.g. a recipient check that looks something up.
   */
  readonly holdCommand?: (line: string) => Promise<void> | undefined;
  /** Greet connections past this many at once with 421 and close them (a per-client limit). */
  readonly maxConnections?: number;
  /** A certificate: STARTTLS is offered (and done) with it, or, with `implicitTls`, TLS from the first byte. */
  readonly tls?: { readonly cert: string; readonly key: string };
  readonly implicitTls?: boolean;
}

export class ScriptedMailServer {
  readonly accepted: AcceptedMessage[] = [];
  /** Every command line received, in order, all connections. */
  readonly lines: string[] = [];
  connections = 0;
  /** The most connections open at once (refused ones included). */
  mostAtOnce = 0;
  /** Connections that went over to TLS (STARTTLS, or implicit). */
  encryptedConnections = 0;
  /** DATA phases begun (the message number the faults count by). */
  private dataCount = 0;
  private server!: Server;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly options: ScriptedMailServerOptions = {}) {}

  async start(): Promise<this> {
    this.server = createServer((socket) => {
      const connection = ++this.connections;
      this.sockets.add(socket);
      this.mostAtOnce = Math.max(this.mostAtOnce, this.sockets.size);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
      if (this.options.maxConnections && this.sockets.size > this.options.maxConnections) {
        socket.end('421 4.7.0 mx.customer.test too many connections from you\r\n');
        return;
      }
      this.serve(socket, connection);
    });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      if (this.options.socketPath) this.server.listen(this.options.socketPath, () => resolve());
      else this.server.listen(0, '127.0.0.1', () => resolve());
    });
    if (!this.options.socketPath) this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private serve(raw: Socket, connection: number): void {
    const o = this.options;
    const secure = (over: Socket) => {
      this.encryptedConnections++;
      const tls = new TLSSocket(over, { isServer: true, ...o.tls! });
      tls.on('error', () => undefined);
      return tls;
    };
    let socket: Socket = o.tls && o.implicitTls ? secure(raw) : raw;
    const ext = [
      ...(o.extensions ?? ['PIPELINING', '8BITMIME', 'SIZE 104857600', 'ENHANCEDSTATUSCODES']),
      ...(o.tls && !o.implicitTls && !o.extensions?.includes('STARTTLS') ? ['STARTTLS'] : []),
    ];
    let buffer = Buffer.alloc(0);
    let mailFrom: string | null = null;
    let mailParams = '';
    let rcpts: string[] = [];
    let inData = false;
    let dataNumber = -1;
    const send = (text: string) => socket.write(`${text}\r\n`);
    send(`220 mx.customer.test ${o.lmtp ? 'LMTP' : 'ESMTP'} scripted`);

    const finishData = (wire: Buffer) => {
      const text = Buffer.from(wire.toString('latin1').replace(/(^|\r\n)\./g, '$1'), 'latin1');
      const ok: string[] = [];
      const replies = (o.lmtp ? rcpts : rcpts.slice(0, 1)).map((address) => {
        const reply = o.final?.(address, dataNumber) ?? '250 2.0.0 Ok: queued';
        if (reply.startsWith('2')) ok.push(address);
        return reply;
      });
      const accepted = o.lmtp ? ok : ok.length ? rcpts : [];
      const answer = () => {
        if (accepted.length)
          this.accepted.push({
            mailFrom: mailFrom ?? '',
            rcptTo: [...accepted],
            mailParams,
            wire,
            text,
            connection,
          });
        socket.write(replies.map((r) => `${r}\r\n`).join(''));
        mailFrom = null;
        rcpts = [];
      };
      const hold = o.holdFinal?.(dataNumber);
      if (!hold) return answer();
      // Nothing more is read until the answer is out (what follows waits in the buffer).
      holding = true;
      void hold.then(() => {
        holding = false;
        if (socket.destroyed) return;
        answer();
        serveBuffered();
      });
    };
    let holding = false;
    /** The command at the head of the buffer was held once already (holdCommand). */
    let commandReleased = false;
    let stalled = false;

    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      serveBuffered();
    };
    socket.on('data', onData);

    const serveBuffered = (): void => {
      for (;;) {
        if (holding) return;
        if (inData) {
          const cut = o.cutInData;
          if (cut && cut.message === dataNumber && buffer.length >= cut.afterBytes) {
            socket.destroy();
            return;
          }
          const closing = o.closeInData;
          if (closing && closing.message === dataNumber && buffer.length >= closing.afterBytes) {
            socket.end(`${closing.reply}\r\n`);
            return;
          }
          const stall = o.stallInData;
          if (
            stall &&
            !stalled &&
            stall.message === dataNumber &&
            buffer.length >= stall.afterBytes
          ) {
            stalled = true;
            socket.pause();
            void stall.until().then(() => socket.resume());
          }
          const atStart = buffer.subarray(0, 3).toString('latin1') === '.\r\n';
          const lf = o.naiveEndOfData ? buffer.indexOf('\n.\r\n') : -1;
          const crlf = buffer.indexOf('\r\n.\r\n');
          if (!atStart && lf === -1 && crlf === -1) return;
          // [end of the text, start of what follows the final dot]
          const [to, next] = atStart
            ? [0, 3]
            : lf !== -1 && (crlf === -1 || lf <= crlf + 1)
              ? [lf + 1, lf + 4]
              : [crlf + 2, crlf + 5];
          const wire = buffer.subarray(0, to);
          buffer = buffer.subarray(next);
          inData = false;
          finishData(wire);
          continue;
        }
        const lf = buffer.indexOf('\n');
        if (lf === -1) return;
        const line = buffer.subarray(0, lf).toString('latin1').replace(/\r$/, '');
        const hold = commandReleased ? undefined : o.holdCommand?.(line);
        if (hold) {
          holding = true;
          void hold.then(() => {
            holding = false;
            commandReleased = true;
            if (!socket.destroyed) serveBuffered();
          });
          return;
        }
        commandReleased = false;
        buffer = buffer.subarray(lf + 1);
        this.lines.push(line);
        const verb = line.split(' ')[0]!.toUpperCase();
        if (verb === 'EHLO' && o.replies?.EHLO) {
          send(o.replies.EHLO);
        } else if (verb === 'STARTTLS' && o.replies?.STARTTLS) {
          send(o.replies.STARTTLS);
        } else if (verb === 'STARTTLS' && o.tls && !(socket instanceof TLSSocket)) {
          // RFC 3207 4.2: everything learnt before is forgotten; anything sent after the
          // STARTTLS line in cleartext is dropped, never read inside TLS.
          send('220 2.0.0 Ready to start TLS');
          socket.off('data', onData);
          buffer = Buffer.alloc(0);
          socket = secure(socket);
          socket.on('data', onData);
          return;
        } else if (verb === (o.lmtp ? 'LHLO' : 'EHLO')) {
          const lines = [
            'mx.customer.test',
            ...ext.filter((e) => !(socket instanceof TLSSocket && e === 'STARTTLS')),
          ];
          send(lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}`).join('\r\n'));
        } else if (verb === 'HELO' && !o.lmtp) {
          send('250 mx.customer.test');
        } else if (verb === 'MAIL') {
          const m = /^MAIL FROM:<([^>]*)>(.*)$/i.exec(line);
          if (!m) {
            send('501 5.5.4 Syntax');
            continue;
          }
          const reply = o.mail?.(m[1]!) ?? '250 2.1.0 Ok';
          if (reply.startsWith('250')) {
            mailFrom = m[1]!;
            mailParams = m[2]!.trim();
            rcpts = [];
          }
          send(reply);
        } else if (verb === 'RCPT') {
          const m = /^RCPT TO:<([^>]*)>/i.exec(line);
          if (mailFrom === null || !m) {
            send('503 5.5.1 Need MAIL');
            continue;
          }
          const reply = o.rcpt?.(m[1]!) ?? '250 2.1.5 Ok';
          if (reply.startsWith('25')) rcpts.push(m[1]!);
          send(reply);
        } else if (verb === 'DATA') {
          if (mailFrom === null || rcpts.length === 0) {
            send('554 5.5.1 No valid recipients');
            continue;
          }
          inData = true;
          dataNumber = this.dataCount++;
          send('354 End data with <CR><LF>.<CR><LF>');
        } else if (verb === 'RSET') {
          mailFrom = null;
          rcpts = [];
          send('250 2.0.0 Ok');
        } else if (verb === 'NOOP') {
          send('250 2.0.0 Ok');
        } else if (verb === 'QUIT') {
          socket.end('221 2.0.0 Bye\r\n');
          return;
        } else {
          send('502 5.5.2 Not implemented');
        }
      }
    };
  }
}
