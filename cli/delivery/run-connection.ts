/**
 * The run's connections to the customer's server (cli/delivery/deliver-run.ts): up to
 * `--connections` of them, each message on whichever is free.
 */
import { asDequeueError, DequeueError } from '../../lambda/core/errors';
import type { Transcript } from '../../lambda/core/ports';
import { DeliveryConnection } from './delivery-client';
import type { DeliveryOptions } from './delivery-options';
import type { Destination } from './destination';
import { type Outgoing, type TransactionResult, unanswered } from './transaction';

/**
 * Connections at once when `--connections` is not given: two. One connection waits, for every
 * message, for the server's answer to the final dot (its disk write before the 250); a second
 * sends the next message meanwhile, which is most of what parallel connections gain against a
 * small server. Two stays polite to one: it is what Debian's amavisd-new content filter runs by
 * default (max_servers 2), a tenth of Postfix's own limit per destination (20), far below the
 * connections per client Postfix's smtpd allows (50), and the order the server sees is kept
 * (ConnectionPool). A server with disks and cores to spare can be given more.
 */
export const DEFAULT_CONNECTIONS = 2;
/** The most `--connections` allows: Postfix's default_destination_concurrency_limit. */
export const MAX_CONNECTIONS = 20;

/**
 * One connection of the run: opened for its first message, opened again when it broke; once the
 * server cannot be reached on it, every message given to it is answered as not sent.
 */
export class RunConnection {
  private connection: DeliveryConnection | null = null;
  private refused: DequeueError | null = null;
  /** Whether it has ever been open: the server is up for this run. */
  private opened = false;

  constructor(
    private readonly destination: Destination,
    private readonly options: DeliveryOptions,
  ) {}

  /** Why the server could not be reached on this connection; null while it could. */
  get down(): DequeueError | null {
    return this.refused;
  }

  /** Open once at least, and not given up: proof that the server takes connections from us. */
  get working(): boolean {
    return this.opened && !this.refused;
  }

  /** Open it if it is not (first use, or it broke); on failure it is given up (`down`). */
  async ready(): Promise<void> {
    if (this.refused || this.connection?.usable) return;
    await this.connection?.close();
    this.connection = null;
    try {
      this.connection = await DeliveryConnection.open(this.destination, this.options);
      this.opened = true;
    } catch (e) {
      this.refused = asDequeueError(e);
    }
  }

  /** One message (DeliveryConnection.send); `answered` once the server answered its envelope. */
  async send(m: Outgoing, answered?: () => void): Promise<TransactionResult> {
    for (let tries = 0; ; tries++) {
      await this.ready();
      if (this.refused || !this.connection) {
        const error =
          this.refused ??
          new DequeueError('temporary', `no connection to ${this.destination.display}`);
        return { recipients: unanswered(m.recipients, error.message), error };
      }
      const result = await this.connection.send(m, answered);
      // Not taken up at all (the connection broke first): once more, on a new connection.
      if (!(result.unsent && tries === 0)) return result;
    }
  }

  async close(): Promise<void> {
    await this.connection?.close();
  }
}

/** A connection lent to one message until it is answered. */
export interface ConnectionLease {
  send(m: Outgoing): Promise<TransactionResult>;
  /**
   * Settles once the server has answered this message's envelope (MAIL, RCPT, DATA), or once
   * the lease is given back without that: the next message may then go on another connection.
   */
  readonly started: Promise<void>;
  release(): void;
}

/**
 * Up to `size` connections to one server. A message takes whichever is free, in the order the
 * run asks (oldest first, and the run asks for the next only once the server has answered this
 * one's envelope: `started`), so that the server sees no message before an older one; with more
 * than one connection a later message may be accepted while an earlier, larger one is still on
 * the wire. Waiting messages get connections in the order they asked (fair). A second connection is opened only once the first has been open (the server is up), and one
 * more each time all are busy. A connection the server refuses while another works is given up
 * (the server may limit its clients' connections) and its message goes on another; when none can
 * be opened, the server is down and every message is answered as not sent, without trying again.
 */
export class ConnectionPool {
  private readonly connections: RunConnection[] = [];
  private readonly idle: RunConnection[] = [];
  private readonly waiting: ((connection: RunConnection) => void)[] = [];
  /** Connections given up because the server refused them while others worked. */
  private retired = 0;
  /** Connections made so far, for their names in the transcript. */
  private opened = 0;

  constructor(
    private readonly destination: Destination,
    private readonly options: DeliveryOptions,
    private readonly size: number,
  ) {
    if (!Number.isInteger(size) || size < 1 || size > MAX_CONNECTIONS)
      throw new RangeError(`connections must be 1 to ${MAX_CONNECTIONS}, not ${size}`);
  }

  /** A connection for one message; waits while every connection the pool may have is busy. */
  async acquire(): Promise<ConnectionLease> {
    const connection = await this.take();
    let held: RunConnection | null = connection;
    let answered: () => void = () => undefined;
    const started = new Promise<void>((resolve) => (answered = resolve));
    return {
      started,
      send: async (m) => {
        for (;;) {
          const result = await held!.send(m, answered);
          if (!held!.down || !this.connections.some((c) => c !== held && c.working)) return result;
          // Refused here while another connection works: give this one up, try another.
          this.retire(held!);
          held = await this.take();
        }
      },
      release: () => {
        answered();
        if (held) this.give(held);
        held = null;
      },
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.connections.map((c) => c.close()));
  }

  /**
   * A free connection, open (or given up) before it is handed out: a message's MAIL then goes on
   * the wire when the run asks, so that messages start in the run's order whatever connection
   * each gets.
   */
  private async take(): Promise<RunConnection> {
    let connection = this.idle.shift();
    if (!connection) {
      const first = this.connections[0];
      const room = this.connections.length + this.retired < this.size;
      if (!first || (room && first.working)) {
        connection = new RunConnection(this.destination, this.numbered(++this.opened));
        this.connections.push(connection);
      } else {
        connection = await new Promise<RunConnection>((resolve) => this.waiting.push(resolve));
      }
    }
    await connection.ready();
    return connection;
  }

  private give(connection: RunConnection): void {
    const next = this.waiting.shift();
    if (next) next(connection);
    else this.idle.push(connection);
  }

  private retire(connection: RunConnection): void {
    this.connections.splice(this.connections.indexOf(connection), 1);
    this.retired++;
    void connection.close();
  }

  /** The transcript of connection `n` (from 1) says which it is (deliver#2 ...) when there may be several. */
  private numbered(n: number): DeliveryOptions {
    if (this.size === 1) return this.options;
    const inner = this.options.transcript;
    const transcript: Transcript = {
      line: (label, direction, text) => inner.line(`${label}#${n}`, direction, text),
    };
    return { ...this.options, transcript };
  }
}
