/**
 * What the reversed session takes and how long it waits: the defaults, the options a deployment
 * or a test may change (settings.mail, short bounds), and the limits one session runs with.
 */
import type { MemoryBudget } from '../memory-budget';
import { SMTP_TIMEOUTS } from '../smtp/timeouts';

/** Default SIZE limit: 50 MiB, above what most providers will send anyway. */
export const DEFAULT_MAX_MESSAGE_BYTES = 50 * 1024 * 1024;
/** RFC 5321 4.5.3.1.8: at least 100 recipients must be accepted; more is common. */
export const DEFAULT_MAX_RECIPIENTS = 1000;
/** RFC 5321 4.5.3.1.4 sets 512 octets; extensions and sloppy senders go past it. */
export const MAX_COMMAND_LINE_BYTES = 2048;
/** Kept before the turn's deadline to send 421 and close. */
export const CLOSE_RESERVE_MS = 1_000;

export interface ReceiverOptions {
  /** Advertised as SIZE and enforced as the message streams in. Default 50 MiB. */
  readonly maxMessageBytes?: number;
  /** RCPTs accepted per message; more get 452 (RFC 5321 4.5.3.1.10). Default 1000. */
  readonly maxRecipients?: number;
  /** The wait for the next command or data. Default 5 minutes (RFC 5321 4.5.3.2.7). */
  readonly commandTimeoutMs?: number;
  /**
   * The time to store a message before our reply to its final dot. Default 10 minutes: the
   * provider waits that long for it (RFC 5321 4.5.3.2.6).
   */
  readonly dataEndTimeoutMs?: number;
  readonly maxCommandLineBytes?: number;
  readonly closeReserveMs?: number;
  readonly now?: () => number;
  /** The run's in-flight mail memory, shared by every session (core/memory-budget.ts). */
  readonly memory?: MemoryBudget;
}

/** The limits of one session: every option, with its default where it was left out. */
export type ReceiverLimits = Required<Omit<ReceiverOptions, 'now' | 'memory'>>;

export function receiverLimits(options: ReceiverOptions): ReceiverLimits {
  return {
    maxMessageBytes: options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    maxRecipients: options.maxRecipients ?? DEFAULT_MAX_RECIPIENTS,
    commandTimeoutMs: options.commandTimeoutMs ?? SMTP_TIMEOUTS.serverCommand,
    dataEndTimeoutMs: options.dataEndTimeoutMs ?? SMTP_TIMEOUTS.finalDot,
    maxCommandLineBytes: options.maxCommandLineBytes ?? MAX_COMMAND_LINE_BYTES,
    closeReserveMs: options.closeReserveMs ?? CLOSE_RESERVE_MS,
  };
}
