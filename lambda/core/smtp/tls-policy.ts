/**
 * TLS towards a server we hand mail to (`deliver --to`, `settings.mail.relay`, and whatever else
 * sends stored mail on): the mode, whether the certificate must verify, and which CA to trust.
 *
 * RFC 7435 (opportunistic security): encryption without authentication beats cleartext, and a
 * client that meets a certificate it cannot verify should still encrypt rather than fall back
 * or give up; that is what SMTP servers do among themselves (RFC 7435 3, RFC 3207 4.1: a
 * publicly referenced server's certificate is rarely checked). So `opportunistic` does not verify
 * unless told to; `required` and `implicit` are the operator saying "this server, authenticated",
 * and verify unless told not to.
 */
import { X509Certificate } from 'node:crypto';

/**
 * How a connection gets TLS (RFC 3207 STARTTLS or RFC 8314 implicit). Defined here, with the
 * policy, so that the wire layer does not import the configuration (config.ts re-exports it).
 */
export type TlsMode = 'none' | 'opportunistic' | 'required' | 'implicit';

export interface TlsPolicy {
  readonly mode: TlsMode;
  /** The certificate must verify (chain and name) or nothing is sent. */
  readonly verify: boolean;
  /** The CA certificates (PEM) to trust instead of the system's store. */
  readonly ca?: string;
}

/** What a connection turned out to be: TLS with a certificate that verified, TLS without, none. */
export type TlsState = 'verified' | 'unverified' | 'none';

/** RFC 7435: opportunistic encrypts without authenticating; required and implicit verify. */
export function verifiesByDefault(mode: TlsMode): boolean {
  return mode === 'required' || mode === 'implicit';
}

/**
 * How the operator's TLS settings are named in an error, so that the error says what to change
 * where it is changed (a target's fields, `deliver`'s flags, the relay's fields).
 */
export interface TlsWords {
  /** Completes "<server> does not offer STARTTLS and ...". */
  readonly required: string;
  /** How to accept a certificate that does not verify, said after the reason. */
  readonly relax: string;
  /**
   * What is said of a port that answered in plain text where implicit TLS was tried, after
   * "TLS with <server> failed: " (usually `useStartTls(...)`, naming the caller's modes).
   */
  readonly plainPort: string;
  /** The mode to use on a port that speaks TLS from the first byte (it never greeted). */
  readonly tlsPort: string;
}

/**
 * Implicit TLS against a port that speaks plain SMTP: the server's "220 ..." greeting is not a
 * TLS record. The mode is wrong, not the server: RFC 8314 3.3 keeps implicit TLS to its own
 * ports, STARTTLS (RFC 3207) is the plain port's way. `modes` names STARTTLS in the caller's words.
 */
export function useStartTls(modes: string): string {
  return `the server speaks plain SMTP on this port, not TLS from the first byte: use STARTTLS here (${modes}), or the port of its implicit TLS (465)`;
}

/** A target of the release signal (the provider). */
export const TARGET_TLS_WORDS: TlsWords = {
  required: '"tls" is "required"',
  relax: 'set "tlsVerify": false only if you accept an unverified provider',
  plainPort: useStartTls('"tls": "opportunistic" or "required"'),
  tlsPort: '"tls": "implicit"',
};

/** The relay (`settings.mail.relay`, a target's `mail.relay`): its errors name its fields. */
export const RELAY_TLS_WORDS: TlsWords = {
  required: '"mail.relay.tls" is "required": nothing was sent',
  relax:
    'give the CA that signed it in "mail.relay.tlsCa", or set "mail.relay.tlsVerify": false to encrypt without authenticating the relay',
  plainPort: useStartTls('"mail.relay.tls": "opportunistic" or "required"'),
  tlsPort: '"mail.relay.tls": "implicit"',
};

/** The check of the customer's server before the signal (`precheck.tls`: none, required, implicit). */
export const PRECHECK_TLS_WORDS: TlsWords = {
  required: '"precheck.tls" is "required"',
  // Never said: the check does not verify (RFC 7435; precheck/server-check.ts).
  relax: 'the check does not verify certificates',
  plainPort: useStartTls('"precheck.tls": "required"'),
  tlsPort: '"precheck.tls": "implicit"',
};

/** A target with `"protocol": "raw"` (FINGER, TELNET): no SMTP, so no STARTTLS either. */
export const RAW_TLS_WORDS: TlsWords = {
  ...TARGET_TLS_WORDS,
  plainPort:
    'the server answers in plain text on this port, not TLS from the first byte: "protocol": "raw" has no STARTTLS, so use "tls": "none" here, or the port of its implicit TLS',
};

/**
 * The relay's policy from its fields, as `deliver`'s from its flags: `tlsVerify` absent verifies
 * when a CA is given or the mode verifies by default (required, implicit; RFC 7435 above).
 */
export function relayTls(relay: {
  readonly tls: TlsMode;
  readonly tlsVerify?: boolean;
  readonly tlsCa?: string;
}): TlsPolicy {
  const verify = relay.tlsVerify ?? (relay.tlsCa !== undefined || verifiesByDefault(relay.tls));
  return { mode: relay.tls, verify, ...(relay.tlsCa !== undefined ? { ca: relay.tlsCa } : {}) };
}

/**
 * What is wrong with a CA bundle (PEM), or null: at least one certificate, and every
 * `CERTIFICATE` block one that parses. A key or garbage pasted instead is caught here, not as a
 * TLS failure at the first message.
 */
export function caBundleProblem(pem: string): string | null {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g);
  if (!blocks) return 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)';
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch {
      return `certificate ${i + 1} of ${blocks.length} does not parse`;
    }
  }
  return null;
}
