/**
 * What a `deliver` connection is opened with (cli/delivery/delivery-client.ts): our name, the TLS
 * policy, the transcript, and the bound of each step. RFC 5321 4.5.3.2 gives the client's bound
 * for each step of a transaction (lambda/core/smtp/timeouts.ts); connecting and QUIT are ours.
 * `--timeout` replaces them all (cli/commands/deliver.ts).
 */
import type { Transcript } from '../../lambda/core/ports';
import { SMTP_TIMEOUTS } from '../../lambda/core/smtp/timeouts';
import type { TlsPolicy } from '../../lambda/core/smtp/tls-policy';

const { greeting, command, dataStart, dataBlock, finalDot } = SMTP_TIMEOUTS;
export const DELIVERY_TIMEOUTS = {
  connect: 30_000,
  greeting,
  command,
  dataStart,
  dataBlock,
  finalDot,
  quit: 2_000,
};
export type DeliveryTimeouts = typeof DELIVERY_TIMEOUTS;

export interface DeliveryOptions {
  readonly helloName: string;
  /**
   * TLS towards the server: `--tls`, `--tls-verify`, `--tls-ca` (delivery-tls.ts); undefined:
   * the destination's defaults.
   */
  readonly tls?: TlsPolicy;
  /** CA certificates (PEM) to trust when the policy names none (tests: the loopback peers' CA). */
  readonly tlsCa?: string;
  readonly transcript: Transcript;
  readonly timeouts?: Partial<DeliveryTimeouts>;
  /** A line the operator should see without --verbose: mail about to go in cleartext. */
  readonly onNotice?: (text: string) => void;
}
