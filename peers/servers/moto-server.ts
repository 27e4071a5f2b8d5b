/**
 * moto_server as a real server for the tests: real AWS APIs (SSM, Secrets Manager, DynamoDB, S3, ...) on loopback.
 *
 * moto_server is installed with pip on this kind of machine and cannot be installed from the npm
 * registry, so its absence must be loud where it matters:
 * - in CI (`CI` set), a suite that needs it FAILS with a plain message;
 * - on a developer's machine, the suite is skipped and stderr says why.
 *
 * Usage in a test file:
 *
 *   import { describeWithMotoServer, startMotoServer, type MotoServer } from '../servers/moto-server';
 *   describeWithMotoServer('the handler against SSM', () => {
 *     let moto: MotoServer;
 *     beforeAll(async () => { moto = await startMotoServer(); });
 *     afterAll(() => moto?.stop());
 *     it('...', async () => { new SSMClient(moto.clientConfig) ... });
 *   });
 *
 * Each call to startMotoServer() runs its own process on a free port, so test files never share
 * state; `reset()` empties it between tests when a file wants that.
 *
 * `startMotoServer({ serialised: true })`: moto_server serves each request on its own thread and
 * its DynamoDB TransactWriteItems is not atomic across threads (it checks every condition, then
 * writes, and restores a copy of the whole table when one fails, so two transactions that run at
 * once can both pass the same condition, or undo each other's writes). DynamoDB runs each
 * transaction atomically, isolated from any other request. Its S3 conditional writes are no
 * better: PutObject with If-None-Match or If-Match checks the key, then writes it, so two runs
 * claiming one message at once could both win; S3 decides each one atomically. A serialised
 * server gets that from a
 * proxy in front of moto that lets one request in at a time: the clients still overlap as much as
 * they like between requests (read, then a conditional write that may lose), which is what a test
 * of a read-then-transact algorithm is about.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { Agent, createServer as createHttpServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { delimiter, join } from 'node:path';
import { exited, freePort, sleep } from './harness';

export interface MotoServer {
  /** `http://127.0.0.1:<port>`: pass as AWS_ENDPOINT_URL or as a client's `endpoint`. */
  readonly endpoint: string;
  readonly port: number;
  /** Everything an SDK v3 client needs to talk to this server and nowhere else. */
  readonly clientConfig: {
    readonly endpoint: string;
    readonly region: string;
    readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string };
  };
  /** Forget every resource (POST /moto-api/reset). */
  reset(): Promise<void>;
  /** Stop the process (SIGTERM, then SIGKILL after a bound) and wait for it to exit. */
  stop(): Promise<void>;
  /** Serialised only: every request served, in order (its X-Amz-Target, or method and path). */
  readonly served?: readonly ServedRequest[];
}

export interface ServedRequest {
  readonly operation: string;
  readonly status: number;
}

export const MOTO_REGION = 'us-east-1';
/** moto starts in under a second here; a slow CI machine gets far more than that. */
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 3_000;

/** The moto_server executable on PATH, or undefined. */
export function findMotoServer(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, 'moto_server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export const MOTO_MISSING_MESSAGE =
  'moto_server is missing: it is installed with pip (moto 5 with Flask: pip install "moto[server]"), ' +
  'not from npm; the tests that need real SSM, Secrets Manager, DynamoDB and S3 APIs cannot run without it';

export const hasMotoServer: boolean = findMotoServer() !== undefined;

export interface MotoServerOptions {
  /** One request at a time, as DynamoDB isolates each transaction (above). */
  readonly serialised?: boolean;
}

/** Start one moto_server on a free loopback port and wait until it answers. */
export async function startMotoServer(options: MotoServerOptions = {}): Promise<MotoServer> {
  const moto = await startMotoProcess();
  if (!options.serialised) return moto;
  const proxy = await oneRequestAtATime(moto.port);
  const endpoint = `http://127.0.0.1:${proxy.port}`;
  return {
    served: proxy.served,
    endpoint,
    port: proxy.port,
    clientConfig: { ...moto.clientConfig, endpoint },
    reset: () => moto.reset(),
    stop: async () => {
      await proxy.stop();
      await moto.stop();
    },
  };
}

/** moto answers on loopback in milliseconds; a request it never answers must not hang the queue. */
const UPSTREAM_TIMEOUT_MS = 30_000;

/**
 * An HTTP proxy that forwards one request at a time to 127.0.0.1:`upstream`: the next one goes
 * once moto has answered the previous one in full (or failed: 502), or its client went away. Requests wait
 * in arrival order; one whose client gave up while it waited (an SDK call with a short bound) is
 * dropped, not forwarded.
 */
async function oneRequestAtATime(
  upstream: number,
): Promise<{ port: number; served: ServedRequest[]; stop: () => Promise<void> }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const served: ServedRequest[] = [];
  let queue: Promise<void> = Promise.resolve();
  const server = createHttpServer((req, res) => {
    // The response is over: sent in full, or its client went away (before or during its turn).
    let over = false;
    const closed = new Promise<void>((resolve) =>
      res.once('close', () => {
        over = true;
        resolve();
      }),
    );
    queue = queue.then(async () => {
      if (over) return;
      let answered = false;
      // The turn ends when moto has answered in full (the answer is held here and then sent at
      // the client's own pace: a client that reads a large object slowly while it makes other
      // requests, as deliver does when it renews a claim mid-message, must not hold the queue).
      let upstreamDone!: () => void;
      const done = new Promise<void>((resolve) => (upstreamDone = resolve));
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
          const target = req.headers['x-amz-target'];
          served.push({
            operation: typeof target === 'string' ? target : `${req.method} ${req.url}`,
            status: answer.statusCode ?? 0,
          });
          const body: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => body.push(chunk));
          answer.on('end', () => {
            answered = true;
            upstreamDone();
            if (over) return;
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            res.end(Buffer.concat(body));
          });
          answer.on('error', () => {
            upstreamDone();
            res.destroy();
          });
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
        upstreamDone();
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`serialising proxy: ${e.message}`);
      });
      req.on('error', () => forward.destroy(new Error('the client went away')));
      req.pipe(forward);
      await Promise.race([done, closed]);
      // The client went away before moto answered: moto's connection goes too, the next request gets its own.
      if (!answered) forward.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    served,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}

async function startMotoProcess(): Promise<MotoServer> {
  const executable = findMotoServer();
  if (!executable) throw new Error(MOTO_MISSING_MESSAGE);
  let lastError = '';
  // A free port can be taken between probing and binding: try a few.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const child = spawn(executable, ['-H', '127.0.0.1', '-p', String(port)], {
      stdio: ['ignore', 'ignore', 'pipe'],
      // Its own process group, so stop() reaches a wrapper (pyenv shim) and its python alike.
      detached: true,
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      // Keep only the tail: moto logs every request here.
      stderr = (stderr + chunk).slice(-4000);
    });
    const killGroup = (signal: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        // already gone
      }
    };
    const onExit = () => killGroup('SIGKILL');
    process.once('exit', onExit);

    const endpoint = `http://127.0.0.1:${port}`;
    const started = Date.now();
    let up = false;
    while (Date.now() - started < START_TIMEOUT_MS && child.exitCode === null) {
      try {
        const response = await fetch(`${endpoint}/moto-api/`, {
          signal: AbortSignal.timeout(1000),
        });
        await response.arrayBuffer();
        if (response.ok) {
          up = true;
          break;
        }
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    if (up) {
      const stop = async () => {
        process.removeListener('exit', onExit);
        if (child.exitCode !== null || child.signalCode !== null) return;
        killGroup('SIGTERM');
        const timer = setTimeout(() => killGroup('SIGKILL'), STOP_TIMEOUT_MS);
        await exited(child);
        clearTimeout(timer);
      };
      const reset = async () => {
        const response = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
        await response.arrayBuffer();
        if (!response.ok) throw new Error(`moto_server reset answered ${response.status}`);
      };
      return {
        endpoint,
        port,
        clientConfig: {
          endpoint,
          region: MOTO_REGION,
          credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
        },
        reset,
        stop,
      };
    }
    killGroup('SIGKILL');
    await exited(child);
    process.removeListener('exit', onExit);
    lastError = `moto_server on port ${port} did not answer within ${START_TIMEOUT_MS} ms (exit ${child.exitCode}); its stderr ended: ${stderr.trim().slice(-500)}`;
  }
  throw new Error(lastError);
}
