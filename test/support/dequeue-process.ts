/**
 * `dequeue ...` as the process a user (or cron) starts: bin/dequeue.js under this Node, from the
 * repository root. Resolves with its exit status and output; rejects (after killing it) when it
 * has not exited within the bound, so a lingering process fails the test with its stderr.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

export const REPO = join(import.meta.dirname, '..', '..');
export const CLI = join(REPO, 'bin', 'dequeue.js');

export interface CliRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  /** Added to this process's environment (AWS_ENDPOINT_URL for moto_server, ...). */
  readonly env?: NodeJS.ProcessEnv;
  /** A command that runs dequeue, e.g. `['unshare', '--mount', 'sh', '-c', '... && exec "$@"', 'sh']`. */
  readonly via?: readonly string[];
}

export function runDequeue(
  args: readonly string[],
  timeoutMs = 30_000,
  options: RunOptions = {},
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const argv = [process.execPath, CLI, ...args];
    const [command, ...rest] = [...(options.via ?? []), ...argv];
    const child = spawn(command!, rest, {
      cwd: REPO,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `dequeue ${args.join(' ')} did not exit within ${timeoutMs} ms; stderr: ${stderr}`,
        ),
      );
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}
