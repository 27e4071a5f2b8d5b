/**
 * The private Postfix instances' processes (postfix.ts): waiting for a greeting, finding an
 * instance's processes in /proc (liveness that sees through zombies), killing them all, and
 * sweeping instances left behind by runs that died before their teardown.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from './harness';
import { alive, procInfo, signal, sweepStale } from './private-instances';

export const POSTFIX_BASE_DIR = join(tmpdir(), 'dequeue-postfix');
/** A directory without an owner file younger than this is still being set up by someone. */
const SETUP_GRACE_MS = 120_000;

// --- small socket helper -------------------------------------------------------------------------

/** Resolves with the first line the server sends, or rejects; either way within `timeoutMs`. */
export function firstLine(port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let buffer = '';
    const done = (error?: Error) => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(buffer.split('\n')[0]!.replace(/\r$/, ''));
    };
    const timer = setTimeout(
      () => done(new Error(`no greeting within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      if (buffer.includes('\n')) {
        socket.write('QUIT\r\n');
        done();
      }
    });
    socket.on('error', (e) => done(e));
    socket.on('close', () => done(new Error('closed before greeting')));
  });
}

// --- /proc: liveness that sees through zombies, and an instance's processes ---------------------

/** Pids whose environment names a config directory matching `match` (Postfix exports MAIL_CONFIG). */
function processesByConfig(match: (configDir: string) => boolean): number[] {
  const pids: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return pids;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    let environ: string;
    try {
      environ = readFileSync(`/proc/${entry}/environ`, 'latin1');
    } catch {
      continue;
    }
    const config = environ.split('\0').find((v) => v.startsWith('MAIL_CONFIG='));
    if (config && match(config.slice('MAIL_CONFIG='.length)) && alive(pid)) pids.push(pid);
  }
  return pids;
}

export async function waitGone(pids: readonly number[], timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (pids.some(alive)) {
    if (Date.now() > until) return false;
    await sleep(50);
  }
  return true;
}

/** Kill everything of one instance: the master's process group first, then any straggler. */
export async function killInstance(configDir: string, masterPid?: number): Promise<void> {
  const pids = new Set(processesByConfig((c) => c === configDir));
  if (masterPid && alive(masterPid)) pids.add(masterPid);
  for (const pid of pids) {
    const info = procInfo(pid);
    if (info && info.pgrp === pid) signal(-pid, 'SIGKILL');
    signal(pid, 'SIGKILL');
  }
  await waitGone([...pids], 3_000);
}

export function readPid(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

// --- the stale sweep ------------------------------------------------------------------------------

/** Remove instances left behind by runs that died before their teardown. */
export async function sweepStalePostfix(): Promise<void> {
  await sweepStale(POSTFIX_BASE_DIR, SETUP_GRACE_MS, (dir) =>
    killInstance(join(dir, 'etc'), readPid(join(dir, 'queue', 'pid', 'master.pid'))),
  );
  // Masters whose directory is already gone (deleted by hand, or by a tmp cleaner).
  const orphans = processesByConfig((c) => {
    if (!c.startsWith(`${POSTFIX_BASE_DIR}/`)) return false;
    try {
      statSync(c);
      return false;
    } catch {
      return true;
    }
  });
  for (const pid of orphans) signal(pid, 'SIGKILL');
}
