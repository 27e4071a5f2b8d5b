/**
 * How long an SMTP client and server wait for each other, in one place: RFC 5321 section
 * 4.5.3.2's table for the relay after ATRN (lambda/adapters/relay-sink.ts), `deliver`
 * (cli/delivery/) and our server after the ATRN turn (core/odmr/); and the bound on one reply
 * of a release signal, which a target's or a relay's `timeoutSeconds` replaces.
 */

/** RFC 5321 4.5.3.2: the least time each side should wait at each step. */
export interface SmtpTimeouts {
  /** 4.5.3.2.1: the client waits 5 minutes for the server's 220 greeting. */
  readonly greeting: number;
  /** 4.5.3.2.2, 4.5.3.2.3: 5 minutes for the reply to MAIL and to each RCPT (and the others). */
  readonly command: number;
  /** 4.5.3.2.4: 2 minutes for the 354 to DATA. */
  readonly dataStart: number;
  /** 4.5.3.2.5: 3 minutes for each block of the message to be taken. */
  readonly dataBlock: number;
  /** 4.5.3.2.6: 10 minutes for the reply to the final dot, while the server stores the message. */
  readonly finalDot: number;
  /** 4.5.3.2.7: the server waits 5 minutes for the next command, or the next of the data. */
  readonly serverCommand: number;
}

export const SMTP_TIMEOUTS: SmtpTimeouts = {
  greeting: 5 * 60_000,
  command: 5 * 60_000,
  dataStart: 2 * 60_000,
  dataBlock: 3 * 60_000,
  finalDot: 10 * 60_000,
  serverCommand: 5 * 60_000,
};

/** The bound on any one complete reply of a release signal when `timeoutSeconds` is unset. */
export const DEFAULT_REPLY_TIMEOUT_MS = 30_000;

/**
 * A configured `timeoutSeconds` (a target's, a relay's) in milliseconds, or `otherwise` when it
 * is unset: the configured bound replaces the default of every step it applies to.
 */
export function replyTimeoutMs(
  timeoutSeconds: number | undefined,
  otherwise: number = DEFAULT_REPLY_TIMEOUT_MS,
): number {
  return timeoutSeconds ? timeoutSeconds * 1000 : otherwise;
}
