/**
 * SIGINT (Ctrl-C) and SIGTERM (`systemctl stop`, `kill`) for a run or a `deliver`: the first one
 * asks the command to stop properly (its AbortSignal fires: sessions end with 421 or QUIT, the
 * results and the state of what finished are written, locks and temporary files removed), and the
 * command then exits 130 or 143 (128 + the signal's number, as shells report it). A second signal
 * exits at once, after the synchronous clean-ups registered for that case (the locks).
 */

/** The exit status after each signal: 128 + its number. */
export const SIGNAL_EXIT: Readonly<Record<StopSignalName, number>> = { SIGINT: 130, SIGTERM: 143 };

export type StopSignalName = 'SIGINT' | 'SIGTERM';

export interface CommandStop {
  /** Fires on the first signal; its reason is the signal's name ("SIGINT"). */
  readonly signal: AbortSignal;
  /** 130 or 143 once a signal came, else undefined. */
  readonly exitStatus: number | undefined;
  /** Run `cleanup` (synchronous) if a second signal makes the process exit at once. */
  onForcedExit(cleanup: () => void): () => void;
  /** Stop listening: the command is over. */
  dispose(): void;
}

/** What the process offers; a test gives a fake. */
export interface SignalSource {
  on(signal: StopSignalName, listener: () => void): unknown;
  off(signal: StopSignalName, listener: () => void): unknown;
  exit(status: number): never | void;
}

/**
 * Listen for SIGINT and SIGTERM for the duration of a command. `say` tells the operator what the
 * first signal does (one line on stderr).
 */
export function watchStopSignals(
  say: (line: string) => void,
  source: SignalSource = process as unknown as SignalSource,
): CommandStop {
  const controller = new AbortController();
  const cleanups = new Set<() => void>();
  let first: StopSignalName | undefined;
  const handler = (name: StopSignalName) => () => {
    if (first === undefined) {
      first = name;
      say(
        `${name}: ending the sessions under way properly and writing what finished; ${name === 'SIGINT' ? 'Ctrl-C' : 'a second signal'} again exits at once`,
      );
      controller.abort(name);
      return;
    }
    for (const cleanup of cleanups) {
      try {
        cleanup();
      } catch {
        // exiting anyway
      }
    }
    say(`${name} again: exiting at once`);
    source.exit(SIGNAL_EXIT[first]);
  };
  const onInt = handler('SIGINT');
  const onTerm = handler('SIGTERM');
  source.on('SIGINT', onInt);
  source.on('SIGTERM', onTerm);
  return {
    signal: controller.signal,
    get exitStatus() {
      return first === undefined ? undefined : SIGNAL_EXIT[first];
    },
    onForcedExit(cleanup) {
      cleanups.add(cleanup);
      return () => cleanups.delete(cleanup);
    },
    dispose() {
      source.off('SIGINT', onInt);
      source.off('SIGTERM', onTerm);
      cleanups.clear();
    },
  };
}
