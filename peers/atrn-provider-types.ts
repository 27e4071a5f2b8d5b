/**
 * What the in-process ODMR provider (atrn-provider.ts) holds and can be told: the messages it
 * holds, the faults it injects, and what it records of each delivery attempt.
 */
export interface HeldMessage {
  readonly from: string;
  readonly to: readonly string[];
  /** The message text as held (before dot-stuffing), CRLF line ends. */
  readonly text: Buffer;
  /** The text already dot-stuffed with its final dot (benchmarks prepare it once). */
  readonly wire?: Buffer;
  /** Sent as MAIL's BODY parameter (RFC 6152) when given. */
  readonly body?: '7BIT' | '8BITMIME';
}

export interface DataFault {
  /** Which delivery attempt of this connection (0 = the first DATA it sends). */
  readonly message: number;
  /** Bytes of the dot-stuffed data sent before the fault. */
  readonly afterBytes: number;
}

export interface AtrnFaults {
  /** Close the connection in the middle of DATA (`reset`: with a TCP RST). */
  readonly cutInData?: DataFault & { readonly reset?: boolean };
  /** Stop sending in the middle of DATA, keeping the connection open. */
  readonly silenceInData?: DataFault;
  /** After our 220, never say anything. */
  readonly silentAfterGreeting?: boolean;
  /** After our 220, send one line that never ends (up to this many bytes, then stall). */
  readonly endlessLineBytes?: number;
  /** Keep sending RCPTs after 452 instead of starting another transaction. */
  readonly ignore452?: boolean;
  /** Send "\r\n" after the final dot, as INetSim does. */
  readonly strayEmptyLine?: boolean;
  /** Send this many bytes of data without the final dot and without SIZE (an oversize stream). */
  readonly endlessDataBytes?: number;
  /** After EHLO, send this many unknown commands (one per round trip) before any mail. */
  readonly garbageCommands?: number;
  /**
   * Write the last message's final dot and QUIT in one write, then half-close (FIN) before
   * reading the replies: Exim does that on a message's first try when nothing else waits.
   */
  readonly quitWithLastDot?: boolean;
  /** Close the connection right after the 250 to ATRN, before the customer's greeting. */
  readonly closeAfterAtrn?: boolean;
}

export interface AtrnProviderOptions {
  readonly account?: { readonly username: string; readonly password: string };
  /** Offer STARTTLS with this certificate (RFC 3207); the turn then happens inside TLS. */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** The reply to ATRN; default `250 OK now reversing the connection`. */
  readonly atrnReply?: string;
  readonly queue?: readonly HeldMessage[];
  /** Send MAIL, RCPT... and DATA in one write when we advertise PIPELINING (RFC 2920). */
  readonly pipelining?: boolean;
  /** Send SIZE= with MAIL when we advertise SIZE (RFC 1870). */
  readonly declareSize?: boolean;
  /** DATA is written in pieces of this size (default 64 KiB), waiting for the socket to drain. */
  readonly chunkBytes?: number;
  /** Pause before each message (after the first), to let a deadline arrive mid-queue. */
  readonly pauseBeforeMessageMs?: number;
  readonly faults?: AtrnFaults;
  /** How long we wait for each of the customer's replies (default 30 s). */
  readonly replyTimeoutMs?: number;
  /**
   * Told when a fault is in place: `silent` once the partial data of `silenceInData` is written
   * (a test then stops the customer at a known point).
   */
  readonly onFault?: (fault: 'silent') => void;
}

export interface DeliveryAttempt {
  /** The message's number in the order it was first queued. */
  readonly number: number;
  /** The customer's reply to the final dot (or to MAIL/RCPT/DATA when it refused earlier); null if none came. */
  readonly reply: string | null;
  readonly acknowledged: boolean;
  readonly recipients: readonly string[];
}

export interface Queued {
  readonly number: number;
  readonly message: HeldMessage;
}

/** The provider's queue as delivery changes it. */
export interface HeldQueue {
  /** Waiting, in the order they are tried. */
  queue: Queued[];
  /** Refused for good (5xx): returned to their senders. */
  readonly bounced: Queued[];
  readonly attempts: DeliveryAttempt[];
  /** Replies the customer sent while we delivered. */
  readonly customerReplies: string[];
}
