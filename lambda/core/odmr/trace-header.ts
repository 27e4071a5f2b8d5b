/**
 * The trace header we prepend to each received message (RFC 5321 section 4.4: an SMTP server
 * that accepts a message "MUST insert trace information"), so whoever reads the stored message
 * later sees the hop from the provider to us.
 *
 * Everything in it that came from the provider (its EHLO name) is reduced to the characters a
 * domain or address literal may hold: a header line is never built from raw peer input.
 */
import { isIP } from 'node:net';

export interface TraceFacts {
  /** What the provider said in EHLO/HELO. */
  readonly heloName: string;
  /** The provider's IP address, when known. */
  readonly remoteAddress?: string;
  /** Our name (the helloName we used towards the provider). */
  readonly by: string;
  /** EHLO (true) or HELO (false); with TLS, ESMTPS (RFC 3848). */
  readonly esmtp: boolean;
  readonly tls: boolean;
  readonly id: string;
  readonly date: Date;
}

const DOMAIN = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_.])?$/;

/** A domain, or an address literal (RFC 5321 4.1.3): `[192.0.2.1]` or `[IPv6:2001:db8::1]`. */
function safeName(name: string): string {
  if (DOMAIN.test(name)) return name;
  const literal = /^\[(?:(IPv6:)([0-9A-Fa-f:.]{2,45})|([0-9.]{7,15}))\]$/i.exec(name);
  if (literal?.[3] && isIP(literal[3]) === 4) return name;
  if (literal?.[2] && isIP(literal[2]) === 6) return `[IPv6:${literal[2]}]`;
  return 'unknown';
}

function literal(address: string): string {
  const plain =
    address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  return isIP(plain) === 6 ? `[IPv6:${plain}]` : isIP(plain) === 4 ? `[${plain}]` : '';
}

/** RFC 5322 3.3 date-time, in UTC: "Mon, 02 Jan 2006 15:04:05 +0000". */
export function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}

export function receivedHeader(facts: TraceFacts): Buffer {
  const tcpInfo = facts.remoteAddress ? literal(facts.remoteAddress) : '';
  const protocol = facts.esmtp ? (facts.tls ? 'ESMTPS' : 'ESMTP') : 'SMTP';
  const text =
    `Received: from ${safeName(facts.heloName)}${tcpInfo ? ` (${tcpInfo})` : ''}\r\n` +
    `\tby ${safeName(facts.by)} (dequeue ODMR) with ${protocol} id ${facts.id};\r\n` +
    `\t${rfc5322Date(facts.date)}\r\n`;
  return Buffer.from(text, 'latin1');
}
