/**
 * The CLI run in-process as a user runs it from a shell: what it wrote on stdout and on stderr,
 * its exit status, and with --json its lines parsed. `io` adds to or replaces what the process
 * gives it (an AWS endpoint, a CA, a mail store, a resolver), so a test passes only what it plays.
 */
import { type CliIo, processIo } from '../../cli/io';
import { main } from '../../cli/main';

export interface CliRun {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
  /** With --json, each line of stdout parsed (one object per target or message); else none. */
  readonly json: any[];
}

export async function runCli(argv: readonly string[], io: Partial<CliIo> = {}): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const status = await main(argv, {
    ...processIo,
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t) },
    ...io,
  });
  return {
    status,
    stdout,
    stderr,
    // Parsed when read: a test of what --json prints on a mistake reads stdout as it is.
    get json() {
      return argv.includes('--json')
        ? stdout
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l))
        : [];
    },
  };
}
