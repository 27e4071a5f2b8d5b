/**
 * A run told to stop before its deadline (the CLI on SIGINT or SIGTERM): an AbortSignal whose
 * reason names why ("SIGINT"). Nothing is cut mid-sentence: a target not yet started is not
 * started, a release session ends with QUIT once the reply it waits for has come (or after
 * STOP_GRACE_MS), and the reversed session after ATRN answers 421 at its next wait, the message
 * in flight not acknowledged, so that the provider keeps it (RFC 5321 3.8: 421 when the service
 * shuts down).
 */
import { DequeueError } from './errors';

/** How long a reply already asked for may still take once the run is told to stop. */
export const STOP_GRACE_MS = 2_000;

/** Why the run was stopped, for messages: the signal's name, or "a stop request". */
export function stopReason(stop: AbortSignal): string {
  return typeof stop.reason === 'string' ? stop.reason : 'a stop request';
}

/** The error of what a stop left undone; temporary: the next cycle does it. */
export function stoppedError(stop: AbortSignal, what: string): DequeueError {
  return new DequeueError('temporary', `the run was stopped (${stopReason(stop)}): ${what}`);
}

/**
 * Call `then` once when `stop` fires (at once when it already has); returns the unsubscribe, so
 * that nothing of a finished session stays attached to the run's signal.
 */
export function onStop(stop: AbortSignal | undefined, then: () => void): () => void {
  if (!stop) return () => undefined;
  if (stop.aborted) {
    then();
    return () => undefined;
  }
  stop.addEventListener('abort', then, { once: true });
  return () => stop.removeEventListener('abort', then);
}
