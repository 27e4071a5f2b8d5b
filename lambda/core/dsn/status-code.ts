/**
 * The status a delivery status notification gives each recipient (RFC 3464 2.3.4): the enhanced
 * status code (RFC 3463) the server put at the start of its reply (RFC 2034 3) when its class
 * agrees with the reply code, else the class's "other or undefined" code. A recipient given up
 * after the give-up time keeps the server's last temporary code when there was one; without one it
 * gets 4.4.7, "delivery time expired" (RFC 3463 3.5).
 */

/** RFC 3463 2: class.subject.detail; subject and detail up to three digits. */
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)/;

/** The enhanced status code at the start of a reply's text, when its class matches `code`. */
export function enhancedStatus(code: number, text: string): string | null {
  const m = ENHANCED.exec(text.trimStart());
  if (!m || Number(m[1]) !== Math.floor(code / 100)) return null;
  return `${m[1]}.${Number(m[2])}.${Number(m[3])}`;
}

/** A recipient refused for good: its reply's enhanced code, else 5.0.0 (RFC 3463 3.1). */
export function refusedStatus(code: number, text: string): string {
  return enhancedStatus(code, text) ?? '5.0.0';
}

/**
 * A recipient given up after the give-up time: the last temporary reply's enhanced code, else
 * 4.4.7 (message expired). RFC 3464 2.3.4 keeps a 4.x.x status on a failed action: the last
 * attempt failed only for now, it is our patience that ran out.
 */
export function expiredStatus(code: number | null, text: string | null): string {
  if (code !== null && code >= 400 && code < 500 && text !== null)
    return enhancedStatus(code, text) ?? '4.4.7';
  return '4.4.7';
}
