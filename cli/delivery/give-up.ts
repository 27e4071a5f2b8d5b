/**
 * The give-up time of `deliver --give-up-after DURATION` (docs/bounces.md): a recipient still
 * without a final answer this long after we accepted the message is given up, and its sender gets
 * a delivery status notification. RFC 5321 4.5.4.1: "the give-up time generally needs to be at
 * least 4-5 days"; ours is 5 days unless told.
 */

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
export const DEFAULT_GIVE_UP_MS = 5 * UNIT_MS.d;
/** More than a year is a typo, and would overflow nothing but patience. */
const MAX_GIVE_UP_MS = 366 * UNIT_MS.d;

/**
 * `5d`, `36h`, `90m`, `3600s`, or parts together (`4d12h`). Throws an Error naming the flag when
 * the text is not one, or is not more than nothing.
 */
export function parseGiveUpAfter(text: string): number {
  const parts = /^(?:\d+[dhms])+$/.test(text) ? [...text.matchAll(/(\d+)([dhms])/g)] : [];
  const ms = parts.reduce(
    (sum, [, n, unit]) => sum + Number(n) * UNIT_MS[unit as keyof typeof UNIT_MS],
    0,
  );
  if (!parts.length || !(ms > 0) || ms > MAX_GIVE_UP_MS)
    throw new Error(
      `--give-up-after ${text}: must be a duration such as 5d, 36h, 90m or 4d12h (more than 0, at most 366d)`,
    );
  return ms;
}

/** For people: "5 days", "36 hours", "90 minutes", "45 seconds" (the largest whole unit). */
export function durationWords(ms: number): string {
  for (const [unit, size] of [
    ['day', UNIT_MS.d],
    ['hour', UNIT_MS.h],
    ['minute', UNIT_MS.m],
  ] as const)
    if (ms % size === 0) return `${ms / size} ${unit}${ms === size ? '' : 's'}`;
  const s = Math.round(ms / 1000);
  return `${s} second${s === 1 ? '' : 's'}`;
}

/** Whether a message accepted at `acceptedAt` (ISO 8601) is past the give-up time at `now`. */
export function pastGiveUp(
  acceptedAt: string | undefined,
  now: Date,
  giveUpAfterMs: number,
): boolean {
  const at = acceptedAt ? Date.parse(acceptedAt) : Number.NaN;
  // An envelope without a readable time is never given up: kept, as before, rather than guessed.
  return Number.isFinite(at) && now.getTime() - at >= giveUpAfterMs;
}
