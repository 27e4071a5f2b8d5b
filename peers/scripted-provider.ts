/**
 * A scripted SMTP provider on loopback, for the faults real servers will not produce on demand.
 *
 * By default it behaves like a well-mannered provider: 220 greeting, EHLO with the configured
 * extensions, STARTTLS (when given a certificate), AUTH PLAIN/LOGIN/CRAM-MD5 against one account,
 * ETRN answered from a per-node table, QUIT. `onLine` may take over any line to inject a fault.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { TLSSocket } from 'node:tls';

const TLS_DIR = join(import.meta.dirname, 'tls');
export const testCa = readFileSync(join(TLS_DIR, 'ca.pem'), 'utf8');
export const testCert = (name: 'localhost' | 'wrong') => ({
  cert: readFileSync(join(TLS_DIR, `${name}.pem`), 'utf8'),
  key: readFileSync(join(TLS_DIR, `${name}.key`), 'utf8'),
});

export interface ProviderConnection {
  /** Every line received on this connection, credentials included (tests assert on them). */
  readonly lines: string[];
  write(data: string | Buffer): void;
  reply(text: string): void;
  destroy(): void;
  readonly encrypted: boolean;
  authenticated: boolean;
  /** The connection is gone (either side closed it). */
  readonly closed: boolean;
}

export interface ScriptedProviderOptions {
  host?: string;
  /** The greeting; null = say nothing at all (silence before the greeting). */
  greeting?: string | null;
  extensions?: string[];
  /** Certificate for STARTTLS and implicit TLS. */
  tls?: { cert: string; key: string };
  implicitTls?: boolean;
  account?: { username: string; password: string };
  /** Reply per ETRN node (without the @/# prefix); default `250 Queuing started`. */
  etrn?: Record<string, string>;
  /** Take over a line: return true when handled. Runs before the defaults. */
  onLine?: (line: string, conn: ProviderConnection) => boolean | Promise<boolean>;
  /** Delay before each reply (ms), to make round trips visible. */
  replyDelayMs?: number;
}

export class ScriptedProvider {
  readonly connections: ProviderConnection[] = [];
  private server!: Server;
  private sockets = new Set<Socket>();
  port = 0;
  readonly host: string;

  constructor(private readonly options: ScriptedProviderOptions = {}) {
    this.host = options.host ?? '127.0.0.1';
  }

  async start(): Promise<this> {
    this.server = createServer((socket) => this.serve(socket));
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, this.host, () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** All lines received, over all connections. */
  get lines(): string[] {
    return this.connections.flatMap((c) => c.lines);
  }

  private serve(raw: Socket): void {
    const o = this.options;
    let socket: Socket =
      o.implicitTls && o.tls ? new TLSSocket(raw, { isServer: true, ...o.tls }) : raw;
    this.sockets.add(raw);
    raw.on('close', () => this.sockets.delete(raw));
    raw.on('error', () => undefined);
    socket.on('error', () => undefined);
    let buffer = '';
    let authStep: null | { mech: string; stage: number; challenge?: string; user?: string } = null;
    const conn: ProviderConnection = {
      lines: [],
      write: (data) => {
        if (!socket.destroyed) socket.write(data);
      },
      reply: (text) => conn.write(`${text}\r\n`),
      destroy: () => socket.destroy(),
      get encrypted() {
        return socket instanceof TLSSocket;
      },
      authenticated: false,
      get closed() {
        return raw.destroyed;
      },
    };
    this.connections.push(conn);
    const delay = () =>
      o.replyDelayMs ? new Promise((r) => setTimeout(r, o.replyDelayMs)) : Promise.resolve();

    const defaults = async (line: string): Promise<void> => {
      const [verbRaw = '', ...args] = line.split(' ');
      const verb = verbRaw.toUpperCase();
      const account = o.account ?? { username: 'user', password: 'secret' };
      if (authStep) {
        const step = authStep;
        if (line === '*') {
          authStep = null;
          return conn.reply('501 5.7.0 Authentication cancelled');
        }
        const decoded = Buffer.from(line, 'base64').toString('utf8');
        if (step.mech === 'LOGIN' && step.stage === 0) {
          step.user = decoded;
          step.stage = 1;
          return conn.reply('334 UGFzc3dvcmQ6');
        }
        authStep = null;
        let ok = false;
        if (step.mech === 'LOGIN')
          ok = step.user === account.username && decoded === account.password;
        if (step.mech === 'CRAM-MD5') {
          const expected = createHmac('md5', account.password)
            .update(step.challenge!)
            .digest('hex');
          ok = decoded === `${account.username} ${expected}`;
        }
        conn.authenticated = ok;
        return conn.reply(
          ok
            ? '235 2.7.0 Authentication successful'
            : '535 5.7.8 Authentication credentials invalid',
        );
      }
      switch (verb) {
        case 'EHLO': {
          const ext = [...(o.extensions ?? ['PIPELINING', 'ETRN'])];
          if (o.tls && !conn.encrypted && !o.implicitTls && !ext.includes('STARTTLS'))
            ext.push('STARTTLS');
          const lines = [
            `provider.test greets ${args[0] ?? ''}`,
            ...ext.filter((e) => !(conn.encrypted && e === 'STARTTLS')),
          ];
          return conn.write(
            lines.map((l, i) => `250${i < lines.length - 1 ? '-' : ' '}${l}\r\n`).join(''),
          );
        }
        case 'HELO':
          return conn.reply('250 provider.test');
        case 'STARTTLS': {
          if (!o.tls) return conn.reply('502 5.5.1 Not implemented');
          conn.reply('220 2.0.0 Ready to start TLS');
          socket.removeAllListeners('data');
          socket = new TLSSocket(socket, { isServer: true, ...o.tls });
          socket.on('error', () => undefined);
          socket.on('data', onData);
          return;
        }
        case 'AUTH': {
          const mech = (args[0] ?? '').toUpperCase();
          if (mech === 'PLAIN') {
            const [, user, pass] = Buffer.from(args[1] ?? '', 'base64')
              .toString('utf8')
              .split('\0');
            conn.authenticated = user === account.username && pass === account.password;
            return conn.reply(
              conn.authenticated
                ? '235 2.7.0 Authentication successful'
                : '535 5.7.8 Authentication credentials invalid',
            );
          }
          if (mech === 'LOGIN') {
            authStep = { mech, stage: 0 };
            return conn.reply('334 VXNlcm5hbWU6');
          }
          if (mech === 'CRAM-MD5') {
            const challenge = `<${randomBytes(6).toString('hex')}@provider.test>`;
            authStep = { mech, stage: 0, challenge };
            return conn.reply(`334 ${Buffer.from(challenge).toString('base64')}`);
          }
          return conn.reply('504 5.5.4 Unrecognized authentication type');
        }
        case 'ETRN': {
          const node = (args[0] ?? '').replace(/^[@#]/, '');
          return conn.reply(o.etrn?.[node] ?? '250 Queuing started');
        }
        case 'QUIT':
          conn.reply('221 2.0.0 Bye');
          socket.end();
          return;
        default:
          return conn.reply('500 5.5.2 Error: command not recognized');
      }
    };

    // Lines are handled strictly one after another, as a real server reads a pipelined group.
    let queue = Promise.resolve();
    const onData = (chunk: Buffer): void => {
      buffer += chunk.toString('latin1');
      let i: number;
      while ((i = buffer.indexOf('\n')) !== -1) {
        const line = buffer.slice(0, i).replace(/\r$/, '');
        buffer = buffer.slice(i + 1);
        conn.lines.push(line);
        queue = queue.then(async () => {
          await delay();
          if (o.onLine && (await o.onLine(line, conn))) return;
          await defaults(line);
        });
      }
    };
    socket.on('data', onData);
    if (o.greeting !== null)
      void delay().then(() => conn.reply(o.greeting ?? '220 provider.test ESMTP scripted'));
  }
}
