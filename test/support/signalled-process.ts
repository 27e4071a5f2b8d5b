/**
 * A `dequeue` process the test signals (Ctrl-C, `systemctl stop`) while it works, and what it
 * printed: bin/dequeue.js under this Node, from the repository root. `exited` rejects (after
 * killing it) when it has not exited within the bound, so a lingering process fails the test.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { CLI, REPO } from './dequeue-process';

/** Far more than a run here takes; a process still alive then fails the test. */
const EXIT_BOUND_MS = 30_000;

export class Running {
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  /** `env` is added to this process's environment (AWS_ENDPOINT_URL for moto_server, ...). */
  constructor(args: readonly string[], env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(process.execPath, [CLI, ...args], {
      cwd: REPO,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.setEncoding('utf8').on('data', (c: string) => (this.stdout += c));
    this.child.stderr!.setEncoding('utf8').on('data', (c: string) => (this.stderr += c));
    this.exited = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        reject(new Error(`dequeue did not exit within ${EXIT_BOUND_MS} ms: ${this.stderr}`));
      }, EXIT_BOUND_MS);
      this.child.on('error', reject);
      this.child.on('close', (status) => {
        clearTimeout(timer);
        resolve(status);
      });
    });
  }

  signal(name: NodeJS.Signals): void {
    this.child.kill(name);
  }

  /** Resolves once stderr shows `pattern` (the process said it). */
  async said(pattern: RegExp): Promise<void> {
    while (!pattern.test(this.stderr)) {
      await new Promise<void>((resolve) => this.child.stderr!.once('data', () => resolve()));
    }
  }

  /** Each line of stdout as JSON (`--json`). */
  get results(): Record<string, any>[] {
    return this.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  }
}

/** Every file under `dir`, as paths relative to it, sorted. */
export async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(relative(dir, join(entry.parentPath, entry.name)));
  }
  return out.sort();
}
