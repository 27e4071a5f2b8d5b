/**
 * What every real-peer harness (Postfix, INetSim, moto_server) shares: the rule for a peer that
 * is not installed, a free loopback port, and waiting for a child process.
 */
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { describe, it } from 'vitest';

/**
 * `describe` for a suite that needs a real peer. Available (`missing` undefined): an ordinary
 * describe. Missing in CI (`CI` set): a suite with one failing test carrying the plain message, so
 * CI can never pass by skipping. Missing elsewhere: skipped, and said on stderr.
 */
export function describeWithPeer(
  peer: string,
  missing: string | undefined,
  name: string,
  body: () => void,
): void {
  if (missing === undefined) {
    describe(name, body);
  } else if (process.env.CI) {
    describe(name, () => {
      it(`needs ${peer}`, () => {
        throw new Error(missing);
      });
    });
  } else {
    process.stderr.write(`skipping "${name}": ${missing}\n`);
    describe.skipIf(true)(name, body);
  }
}

/** A port that was free a moment ago on 127.0.0.1 (callers retry if it is taken meanwhile). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Resolves once the child has exited (at once if it already has). */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}
