/**
 * Where `dequeue deliver` hands the mail (`--to`): the customer's own server over SMTP (STARTTLS
 * when offered), SMTPS, or LMTP (RFC 2033) on TCP or a unix socket.
 */
import { peerName } from '../../lambda/core/smtp/connection';

export interface Destination {
  readonly protocol: 'smtp' | 'smtps' | 'lmtp';
  readonly host: string;
  readonly port: number;
  /** LMTP over a unix socket. */
  readonly socketPath?: string;
  /** As given, for messages: `smtp://host:port`, `lmtp:/path`. */
  readonly display: string;
}

/** `--to`: smtp://host[:port], smtps://host[:port], lmtp://host:port, lmtp:/path/to/socket. */
export function parseDestination(text: string): Destination {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // URL refuses a port past 65535 as "Invalid URL": say which part is wrong.
    const port = /^[a-z]+:\/\/[^/]*:(\d+)\/?$/i.exec(text)?.[1];
    if (port !== undefined) throw new Error(`--to ${text}: port ${port}: must be 1 to 65535`);
    throw new Error(
      `--to ${text}: not a URL (smtp://host[:port], smtps://host[:port], lmtp://host:port or lmtp:/path/to/socket)`,
    );
  }
  const protocol = url.protocol.slice(0, -1);
  if (protocol !== 'smtp' && protocol !== 'smtps' && protocol !== 'lmtp') {
    throw new Error(`--to ${text}: the scheme must be smtp, smtps or lmtp`);
  }
  if (url.username || url.password || url.search || url.hash)
    throw new Error(
      `--to ${text}: only a host and port (or, for lmtp, a socket path) may be given`,
    );
  if (protocol === 'lmtp' && !url.host) {
    if (!url.pathname || url.pathname === '/')
      throw new Error(
        `--to ${text}: lmtp needs host:port or a socket path (lmtp:/run/dovecot/lmtp)`,
      );
    return {
      protocol,
      host: 'localhost',
      port: 0,
      socketPath: decodeURIComponent(url.pathname),
      display: `lmtp:${decodeURIComponent(url.pathname)}`,
    };
  }
  if (!url.hostname) throw new Error(`--to ${text}: a host is required`);
  if (url.pathname && url.pathname !== '/')
    throw new Error(`--to ${text}: ${protocol}:// takes no path`);
  // RFC 2033 5: LMTP must not be run on port 25, and has no port of its own.
  if (protocol === 'lmtp' && !url.port)
    throw new Error(
      `--to ${text}: lmtp://host needs a port (LMTP has no default port; Dovecot's is usually 24)`,
    );
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port ? Number(url.port) : protocol === 'smtps' ? 465 : 25;
  if (port === 0) throw new Error(`--to ${text}: port 0: must be 1 to 65535`);
  return { protocol, host, port, display: `${protocol}://${peerName(host, port)}` };
}
