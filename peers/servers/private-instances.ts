/**
 * What the private-instance harnesses (Postfix, Exim) share. Each instance lives in a directory
 * of its own under the harness's base folder, with an `owner` file naming the process that
 * started it (pid and start time, so that a reused pid is not taken for it). A test run that dies
 * before its teardown leaves its instances running; the next start sweeps them (sweepStale), and
 * a process `exit` hook kills the daemons this process started if it never got to stop them
 * (killAtExit). Everything reads /proc, so it sees through zombies: on this machine PID 1 reaps
 * orphans only lazily.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

// --- /proc ---------------------------------------------------------------------------------------

export interface ProcInfo {
  readonly state: string;
  readonly pgrp: number;
  readonly startTime: string;
}

export function procInfo(pid: number): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0]!, pgrp: Number(fields[2]), startTime: fields[19]! };
  } catch {
    return undefined;
  }
}

/** Alive = exists and is not a zombie (nor being reaped). */
export function alive(pid: number): boolean {
  const info = procInfo(pid);
  return info !== undefined && info.state !== 'Z' && info.state !== 'X';
}

/** Send a signal; a process already gone is not an error. */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** SIGKILL a daemon's whole process group, then the daemon itself (if it left its group). */
export function killGroup(pid: number): void {
  signal(-pid, 'SIGKILL');
  signal(pid, 'SIGKILL');
}

// --- owners and the stale sweep --------------------------------------------------------------------

interface Owner {
  readonly pid: number;
  readonly startTime: string;
}

/** Write `<dir>/owner`: this process, which the sweep of a later run must leave alone while it lives. */
export async function writeOwner(dir: string): Promise<void> {
  const owner: Owner = { pid: process.pid, startTime: procInfo(process.pid)?.startTime ?? '' };
  await writeFile(join(dir, 'owner'), JSON.stringify(owner));
}

/**
 * The process that made `dir` still runs: same pid, same start time. A directory with no owner
 * file yet counts as owned while it is younger than `setupGraceMs`: a sibling may be creating it.
 */
export function ownerAlive(dir: string, setupGraceMs: number): boolean {
  let owner: Owner;
  try {
    owner = JSON.parse(readFileSync(join(dir, 'owner'), 'utf8')) as Owner;
  } catch {
    try {
      return Date.now() - statSync(dir).mtimeMs < setupGraceMs;
    } catch {
      return false;
    }
  }
  return alive(owner.pid) && procInfo(owner.pid)?.startTime === owner.startTime;
}

/**
 * Remove the instances under `baseDir` whose owner is gone: `kill(dir)` stops what of one still
 * runs (each harness knows its own daemon), then its directory is removed.
 */
export async function sweepStale(
  baseDir: string,
  setupGraceMs: number,
  kill: (dir: string) => Promise<void>,
): Promise<void> {
  let entries: string[];
  try {
    entries = readdirSync(baseDir);
  } catch {
    return;
  }
  for (const entry of entries) {
    const dir = join(baseDir, entry);
    if (ownerAlive(dir, setupGraceMs)) continue;
    await kill(dir);
    await rm(dir, { recursive: true, force: true });
  }
}

// --- the exit hook ---------------------------------------------------------------------------------

const running = new Set<number>();
let exitHookInstalled = false;

/** Kill this daemon (and its process group) when this process exits, unless forgotten first. */
export function killAtExit(pid: number): void {
  running.add(pid);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort when a test run dies before its afterAll: take the daemons down with us.
  process.once('exit', () => {
    for (const daemon of running) killGroup(daemon);
  });
}

/** The daemon was stopped: nothing to kill at exit. */
export function forgetAtExit(pid: number): void {
  running.delete(pid);
}
