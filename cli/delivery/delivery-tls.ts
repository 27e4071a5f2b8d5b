/**
 * TLS towards the customer's server when stored mail is handed on (`deliver --to`, and whatever
 * else sends through the delivery client): the operator's `--tls`, `--tls-verify` /
 * `--no-tls-verify` and `--tls-ca`, checked against each other and the destination, with the
 * defaults filled in (docs/odmr.md "TLS towards your server").
 *
 * Defaults, by where the server is:
 * - a loopback host (127.0.0.0/8, ::1, localhost) over SMTP: `opportunistic`, unverified. Nobody
 *   sits on a loopback path to strip STARTTLS or to impersonate the server, so authentication
 *   adds nothing there, and a stock local MTA (Debian's Postfix and its snakeoil certificate)
 *   must just work (RFC 7435: encryption without authentication).
 * - any other host over SMTP: `required`, verified. The mail crosses a network on which anyone
 *   could strip STARTTLS or answer in the server's place, and this is the customer's mail.
 * - `smtps://`: `implicit` (the scheme says TLS from the first byte), verified.
 * - LMTP (TCP or a unix socket): `none`. LMTP is for the mailbox server beside the MTA (RFC 2033
 *   5), and a unix socket's file permissions, not TLS, say who may talk to it.
 */
import { isIP } from 'node:net';
import type { TlsMode } from '../../lambda/core/config';
import {
  type TlsPolicy,
  type TlsWords,
  useStartTls,
  verifiesByDefault,
} from '../../lambda/core/smtp/tls-policy';
import type { Destination } from './destination';

export const TLS_MODES: readonly TlsMode[] = ['none', 'opportunistic', 'required', 'implicit'];

/** What the operator said; each absent field takes its default. */
export interface TlsChoice {
  readonly mode?: TlsMode;
  readonly verify?: boolean;
  /** The CA certificates (PEM) of `--tls-ca`, already read and checked. */
  readonly ca?: string;
}

/** deliver's errors name its flags. */
export const DELIVER_TLS_WORDS: TlsWords = {
  required: '--tls is required: nothing was sent',
  relax:
    'give the CA that signed it with --tls-ca FILE, or --no-tls-verify to encrypt without authenticating the server',
  plainPort: useStartTls('smtp:// with --tls opportunistic or required'),
  tlsPort: 'smtps:// (or --tls implicit)',
};

/** 127.0.0.0/8, ::1 (and IPv4-mapped loopback), `localhost` and its subdomains (RFC 6761 6.3). */
export function isLoopback(host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  if (isIP(name) === 4) return name.startsWith('127.');
  if (isIP(name) === 6) return name === '::1' || /^::ffff:127\./.test(name);
  return false;
}

/** The mode when `--tls` is not given (the reasons are at the top of this file). */
export function defaultTlsMode(destination: Destination): TlsMode {
  if (destination.protocol === 'smtps') return 'implicit';
  if (destination.protocol === 'lmtp') return 'none';
  return isLoopback(destination.host) ? 'opportunistic' : 'required';
}

/**
 * The policy for `destination`, or an Error naming the flag that cannot go with the others or
 * with the destination (a usage error for the command line).
 */
export function deliveryTls(destination: Destination, choice: TlsChoice = {}): TlsPolicy {
  const mode = choice.mode ?? defaultTlsMode(destination);
  if (destination.protocol === 'smtps' && mode !== 'implicit')
    throw new Error(
      `--tls ${mode}: ${destination.display} is TLS from the first byte (smtps://); for STARTTLS use smtp://`,
    );
  const none =
    choice.mode === undefined
      ? `--tls none, the default for ${destination.protocol} (give --tls opportunistic, required or implicit)`
      : '--tls none';
  if (mode === 'none' && choice.verify === true)
    throw new Error(`--tls-verify: there is no certificate to verify with ${none}`);
  if (mode === 'none' && choice.ca !== undefined)
    throw new Error(`--tls-ca: there is no certificate to verify with ${none}`);
  if (choice.ca !== undefined && choice.verify === false)
    throw new Error(
      '--tls-ca: a CA is for verifying the certificate, and --no-tls-verify says not to',
    );
  // A CA given is a CA to verify against, whatever the mode would do by itself.
  const verify = choice.verify ?? (choice.ca !== undefined || verifiesByDefault(mode));
  return { mode, verify, ...(choice.ca !== undefined ? { ca: choice.ca } : {}) };
}
