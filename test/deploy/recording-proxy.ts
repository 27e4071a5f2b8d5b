/**
 * An HTTP proxy in front of moto_server that keeps a copy of every request and response: the
 * function under test gets AWS_ENDPOINT_URL pointing here, so each AWS API call it makes is seen
 * exactly as it left the SDK (headers, query, body), whatever client, middleware or protocol it
 * used. Bodies are forwarded whole and as they stream; the recorded copy of each is capped.
 */
import {
  createServer,
  request as httpRequest,
  Agent,
  type IncomingHttpHeaders,
  type Server,
} from 'node:http';
import type { AddressInfo } from 'node:net';

/** A copy of at most this much of each body is kept (large mail uploads are forwarded in full). */
export const RECORDED_BODY_CAP = 1024 * 1024;
/** moto answers on loopback in milliseconds; a stuck upstream must not hang the function. */
const UPSTREAM_TIMEOUT_MS = 30_000;

export interface RecordedExchange {
  readonly method: string;
  /** Path and query as received. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly bodyBytes: number;
  readonly status: number;
  readonly responseHeaders: IncomingHttpHeaders;
  readonly responseBody: Buffer;
}

export interface RecordingProxy {
  /** `http://127.0.0.1:<port>`: the AWS_ENDPOINT_URL of the function. */
  readonly endpoint: string;
  readonly port: number;
  /** Exchanges completed since start or the last clear(), in order of completion. */
  readonly exchanges: RecordedExchange[];
  clear(): void;
  stop(): Promise<void>;
}

class CappedCopy {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  total = 0;
  add(chunk: Buffer): void {
    this.total += chunk.length;
    if (this.kept >= RECORDED_BODY_CAP) return;
    const piece = chunk.subarray(0, RECORDED_BODY_CAP - this.kept);
    this.chunks.push(piece);
    this.kept += piece.length;
  }
  get buffer(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

export async function startRecordingProxy(upstream: {
  host: string;
  port: number;
}): Promise<RecordingProxy> {
  const exchanges: RecordedExchange[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const server: Server = createServer((req, res) => {
    const requestBody = new CappedCopy();
    const forward = httpRequest(
      {
        host: upstream.host,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent,
        timeout: UPSTREAM_TIMEOUT_MS,
      },
      (upstreamRes) => {
        const responseBody = new CappedCopy();
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.on('data', (chunk: Buffer) => {
          responseBody.add(chunk);
          if (!res.write(chunk)) {
            upstreamRes.pause();
            res.once('drain', () => upstreamRes.resume());
          }
        });
        upstreamRes.on('end', () => {
          exchanges.push({
            method: req.method ?? '',
            url: req.url ?? '',
            headers: req.headers,
            body: requestBody.buffer,
            bodyBytes: requestBody.total,
            status: upstreamRes.statusCode ?? 0,
            responseHeaders: upstreamRes.headers,
            responseBody: responseBody.buffer,
          });
          res.end();
        });
        upstreamRes.on('error', () => res.destroy());
      },
    );
    forward.on('timeout', () =>
      forward.destroy(
        new Error(
          `moto_server did not answer ${req.method} ${req.url} within ${UPSTREAM_TIMEOUT_MS} ms`,
        ),
      ),
    );
    forward.on('error', (e) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`recording proxy: ${e.message}`);
    });
    req.on('data', (chunk: Buffer) => {
      requestBody.add(chunk);
      if (!forward.write(chunk)) {
        req.pause();
        forward.once('drain', () => req.resume());
      }
    });
    req.on('end', () => forward.end());
    req.on('error', () => forward.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    exchanges,
    clear: () => {
      exchanges.length = 0;
    },
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
