/**
 * The customer's MX for the Postfix tests: where Postfix delivers what an ETRN released.
 * smtp-server on a free loopback port, no AUTH or STARTTLS (Postfix's smtp client sends neither
 * here), keeping every message it accepted so that a test can wait for one by its Message-ID.
 */
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMessage {
  readonly mailFrom: string;
  readonly rcptTo: readonly string[];
  /** The client's EHLO/HELO name: Postfix's myhostname. */
  readonly heloName: string;
  readonly text: string;
  header(name: string): string | undefined;
}

export interface CustomerMx {
  readonly port: number;
  readonly received: readonly ReceivedMessage[];
  /** Resolves with the message carrying this Message-ID, or rejects after `timeoutMs`. */
  waitFor(messageId: string, timeoutMs?: number): Promise<ReceivedMessage>;
  stop(): Promise<void>;
}

/** Cap on one message: the tests send a few hundred bytes. */
const MAX_MESSAGE_BYTES = 1 << 20;

function headerOf(text: string, name: string): string | undefined {
  const head = text.split(/\r?\n\r?\n/, 1)[0] ?? '';
  const unfolded = head.replace(/\r?\n[ \t]+/g, ' ');
  const line = unfolded
    .split(/\r?\n/)
    .find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line?.slice(name.length + 1).trim();
}

/** `port`: a given loopback port (a customer's server that comes up where Postfix already points); default a free one. */
export async function startCustomerMx(port = 0): Promise<CustomerMx> {
  const received: ReceivedMessage[] = [];
  const waiters = new Set<() => void>();
  const server = new SMTPServer({
    name: 'customer-mx.test',
    logger: false,
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    size: MAX_MESSAGE_BYTES,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      let bytes = 0;
      stream.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes <= MAX_MESSAGE_BYTES) chunks.push(chunk);
      });
      stream.on('end', () => {
        if (bytes > MAX_MESSAGE_BYTES)
          return callback(new Error('552 message too big for this test sink'));
        const text = Buffer.concat(chunks).toString('utf8');
        const envelope = session.envelope;
        received.push({
          mailFrom: envelope.mailFrom ? envelope.mailFrom.address : '',
          rcptTo: envelope.rcptTo.map((r) => r.address),
          heloName: session.hostNameAppearsAs,
          text,
          header: (name) => headerOf(text, name),
        });
        callback();
        for (const wake of waiters) wake();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const bound = (server.server.address() as AddressInfo).port;

  return {
    port: bound,
    received,
    waitFor(messageId, timeoutMs = 15_000) {
      const find = () => received.find((m) => m.header('Message-ID') === messageId);
      return new Promise((resolve, reject) => {
        const wake = () => {
          const found = find();
          if (!found) return;
          clearTimeout(timer);
          waiters.delete(wake);
          resolve(found);
        };
        const timer = setTimeout(() => {
          waiters.delete(wake);
          reject(
            new Error(
              `no message ${messageId} reached the customer MX on port ${bound} within ${timeoutMs} ms (got ${received.length})`,
            ),
          );
        }, timeoutMs);
        waiters.add(wake);
        wake();
      });
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
