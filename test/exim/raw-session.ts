/**
 * A raw SMTP client for looking at what a server really sends: greeting, EHLO, optionally
 * STARTTLS and EHLO again, then the given commands in ONE write (pipelined), and every reply
 * until the server closes. No pairing, no checks: the replies as they came.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export interface RawSession {
  readonly greeting: string;
  /** The last line of each reply to `commands`, in the order received. */
  readonly replies: string[];
  /** The TLS protocol of the pipelined part, or null in cleartext. */
  readonly tls: string | null;
}

const TIMEOUT_MS = 10_000;
const MAX_BYTES = 65_536;

export async function pipelinedSession(
  port: number,
  commands: readonly string[],
  { starttls = false } = {},
): Promise<RawSession> {
  const plain = connect(port, '127.0.0.1');
  let stream: Socket = plain;
  let buffer = '';
  let wake: (() => void) | undefined;
  let ended = false;
  const timer = setTimeout(
    () =>
      stream.destroy(new Error(`no end within ${TIMEOUT_MS} ms; read: ${JSON.stringify(buffer)}`)),
    TIMEOUT_MS,
  );
  let failure: Error | undefined;
  const listen = (s: Socket) => {
    s.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      if (buffer.length > MAX_BYTES)
        s.destroy(new Error(`more than ${MAX_BYTES} bytes of replies`));
      wake?.();
    });
    s.on('error', (e) => {
      failure = e;
      wake?.();
    });
    s.on('close', () => {
      ended = true;
      wake?.();
    });
  };
  /** The next complete reply's last line; undefined once the server has closed. */
  const reply = async (): Promise<string | undefined> => {
    for (;;) {
      const match = /^(?:\d{3}-[^\r\n]*\r\n)*(\d{3} [^\r\n]*)\r\n/.exec(buffer);
      if (match) {
        buffer = buffer.slice(match[0].length);
        return match[1];
      }
      if (failure) throw failure;
      if (ended) return undefined;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  };
  const must = async (what: string): Promise<string> => {
    const line = await reply();
    if (line === undefined) throw new Error(`closed before the reply to ${what}`);
    return line;
  };
  try {
    listen(plain);
    const greeting = await must('the connection');
    plain.write('EHLO mx.customer.test\r\n');
    await must('EHLO');
    let tls: string | null = null;
    if (starttls) {
      plain.write('STARTTLS\r\n');
      const go = await must('STARTTLS');
      if (!go.startsWith('220')) throw new Error(`STARTTLS was answered ${go}`);
      plain.removeAllListeners('data').removeAllListeners('close');
      const secure = tlsConnect({
        socket: plain,
        rejectUnauthorized: false,
        servername: 'provider.exim.test',
      });
      listen(secure);
      await once(secure, 'secureConnect');
      stream = secure;
      tls = secure.getProtocol();
      secure.write('EHLO mx.customer.test\r\n');
      await must('EHLO after STARTTLS');
    }
    stream.write(commands.map((c) => `${c}\r\n`).join(''));
    const replies: string[] = [];
    for (let line = await reply(); line !== undefined; line = await reply()) replies.push(line);
    return { greeting, replies, tls };
  } finally {
    clearTimeout(timer);
    stream.destroy();
  }
}
