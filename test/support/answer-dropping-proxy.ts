/**
 * An HTTP proxy in front of moto_server that loses answers: a request that matches `drop` is
 * forwarded and done by moto in full, and then its client's connection is cut before the answer
 * reaches it. The SDK sees a reset connection, a transient error, and sends the same request
 * again: what a lost answer looks like to a client of AWS. Each request is dropped at most once.
 */
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type Server,
} from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxiedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface AnswerDroppingProxy {
  /** `http://127.0.0.1:<port>`: the endpoint for the SDK client under test. */
  readonly endpoint: string;
  /** Every request forwarded, in order of arrival. */
  readonly requests: ProxiedRequest[];
  /** The requests whose answers were lost. */
  readonly dropped: ProxiedRequest[];
  stop(): Promise<void>;
}

/** moto answers on loopback in milliseconds; one that never answers must not hang the test. */
const UPSTREAM_TIMEOUT_MS = 15_000;
/** The requests here are API calls of a few KiB; a body past this is refused. */
const BODY_CAP = 1024 * 1024;

/**
 * Start the proxy towards 127.0.0.1:`upstream`. `drop(request, count)` decides whether to lose
 * the answer, `count` being how many answers were lost so far.
 */
export async function startAnswerDroppingProxy(
  upstream: number,
  drop: (request: ProxiedRequest, dropped: number) => boolean,
): Promise<AnswerDroppingProxy> {
  const agent = new Agent({ keepAlive: true });
  const requests: ProxiedRequest[] = [];
  const dropped: ProxiedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > BODY_CAP) req.destroy();
      else chunks.push(chunk);
    });
    req.on('error', () => res.destroy());
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const seen: ProxiedRequest = {
        method: req.method ?? 'GET',
        url: req.url ?? '/',
        headers: req.headers,
        body: body.toString('utf8'),
      };
      requests.push(seen);
      const lose = drop(seen, dropped.length);
      const forward = httpRequest(
        {
          host: '127.0.0.1',
          port: upstream,
          method: req.method,
          path: req.url,
          headers: req.headers,
          agent,
          timeout: UPSTREAM_TIMEOUT_MS,
        },
        (answer) => {
          const parts: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => parts.push(chunk));
          answer.on('error', () => res.destroy());
          answer.on('end', () => {
            if (lose) {
              // moto has done it; the client never hears so.
              dropped.push(seen);
              res.socket?.destroy();
              return;
            }
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            res.end(Buffer.concat(parts));
          });
        },
      );
      forward.on('timeout', () => forward.destroy(new Error('moto_server did not answer')));
      forward.on('error', (e) => {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`answer-dropping proxy: ${e.message}`);
      });
      forward.end(body);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    dropped,
    stop: () =>
      new Promise<void>((resolve) => {
        agent.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
