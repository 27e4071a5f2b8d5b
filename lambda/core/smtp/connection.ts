/**
 * Opening the connection to a provider: TCP (IPv4, IPv6 or a host name), implicit TLS, and the
 * TLS upgrade after STARTTLS (RFC 3207). Certificate verification is on unless the target says
 * `tlsVerify: false`; a certificate that does not verify is a permanent failure (retrying will not
 * make it trusted) and names the reason OpenSSL gave.
 */
import { connect as tcpConnect, isIP, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { DequeueError, TimeoutError } from '../errors';
import { TARGET_TLS_WORDS, type TlsWords } from './tls-policy';

export interface TlsTrust {
  readonly verify: boolean;
  /** Extra trusted CA certificates (PEM), e.g. a test CA. Undefined: the system's store. */
  readonly ca?: string;
  /** The caller's TLS settings as named in its errors (tls-policy.ts); default a target's. */
  readonly words?: TlsWords;
}

export function peerName(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Open a TCP connection, bounded by `timeoutMs`. */
export function openTcp(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host, port });
    const timer = setTimeout(
      () => {
        socket.destroy();
        reject(
          new TimeoutError(
            `no connection to ${peerName(host, port)} within ${Math.round(timeoutMs / 1000)} s`,
          ),
        );
      },
      Math.max(0, timeoutMs),
    );
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.setNoDelay(true);
      resolve(socket);
    });
    // The listener stays: a later error must not go unhandled (the channel reports it anyway).
    socket.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(connectError(host, port, e));
    });
  });
}

/** The DNS says the name does not exist, or has no address: asking again will not change it. */
export function neverResolves(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOTFOUND' || code === 'ENODATA';
}

/**
 * Why a connection could not be made. A name the DNS says does not exist (NXDOMAIN: getaddrinfo's
 * ENOTFOUND, or ENODATA for a name without an address) never resolves by itself: it is a mistake
 * in the configuration, reported as one, where a resolver that fails or does not answer in time
 * (EAI_AGAIN, EAI_FAIL) stays temporary.
 */
function connectError(host: string, port: number, e: NodeJS.ErrnoException): DequeueError {
  const peer = peerName(host, port);
  if (neverResolves(e))
    return new DequeueError(
      'config',
      `cannot connect to ${peer}: no such host: the DNS says ${host} does not exist (${e.code}): check the host name`,
      { cause: e },
    );
  if (e.code === 'EAI_AGAIN' || e.code === 'EAI_FAIL')
    return new DequeueError(
      'temporary',
      `cannot connect to ${peer}: the DNS did not answer for ${host} (${e.code})`,
      { cause: e },
    );
  return new DequeueError('temporary', `cannot connect to ${peer}: ${whyNot(e, 'port')}`, {
    cause: e,
  });
}

/**
 * The socket error in words a person acts on, its code kept in parentheses for a search. Node's
 * own text (`connect ECONNREFUSED 127.0.0.1:25`) repeats the address and says nothing more.
 */
function whyNot(e: NodeJS.ErrnoException, at: 'port' | 'socket'): string {
  switch (e.code) {
    case 'ECONNREFUSED':
      return at === 'port'
        ? 'the connection was refused (ECONNREFUSED): nothing listens on that port there, or a firewall refuses it'
        : 'the connection was refused (ECONNREFUSED): nothing listens on that socket (is the server running?)';
    case 'ENOENT':
      return 'no such socket (ENOENT): is the server running, and is this the path of its socket?';
    case 'EACCES':
      return 'permission denied (EACCES): this user may not connect to it';
    case 'ETIMEDOUT':
      return 'the connection was not answered (ETIMEDOUT): a firewall on the way may drop it';
    case 'EHOSTUNREACH':
      return 'no route to the host (EHOSTUNREACH)';
    case 'ENETUNREACH':
      return 'the network is unreachable (ENETUNREACH)';
    case 'ECONNRESET':
      return 'the connection was reset (ECONNRESET)';
    default:
      return e.message;
  }
}

/** Open a unix-domain socket (LMTP, e.g. Dovecot's), bounded by `timeoutMs`. */
export function openUnixSocket(path: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ path });
    const timer = setTimeout(
      () => {
        socket.destroy();
        reject(
          new TimeoutError(`no connection to ${path} within ${Math.round(timeoutMs / 1000)} s`),
        );
      },
      Math.max(0, timeoutMs),
    );
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new DequeueError('temporary', `cannot connect to ${path}: ${whyNot(e, 'socket')}`, {
          cause: e,
        }),
      );
    });
  });
}

/**
 * Start TLS: over an existing socket (after STARTTLS) or from the first byte (implicit TLS).
 * SNI is sent for host names only (RFC 6066 section 3 forbids literal addresses).
 */
export function startTls(
  host: string,
  port: number,
  trust: TlsTrust,
  timeoutMs: number,
  over?: Socket,
  /** `implicit`: TLS from the first byte (RFC 8314), else after STARTTLS (RFC 3207). */
  mode: 'implicit' | 'starttls' = 'starttls',
): Promise<TLSSocket> {
  // node:tls is loaded when a connection first needs it, not at start: a `deliver` to a server
  // without STARTTLS, and every command that talks to no server, skip it (~10-20 ms of a start).
  return import('node:tls').then(({ connect: tlsConnect }) =>
    tlsOver(tlsConnect, host, port, trust, timeoutMs, over, mode),
  );
}

function tlsOver(
  tlsConnect: typeof import('node:tls').connect,
  host: string,
  port: number,
  trust: TlsTrust,
  timeoutMs: number,
  over: Socket | undefined,
  mode: 'implicit' | 'starttls',
): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    if (over?.destroyed) {
      reject(
        new DequeueError(
          'temporary',
          `${peerName(host, port)} closed the connection before TLS began`,
        ),
      );
      return;
    }
    const socket = tlsConnect({
      ...(over ? { socket: over } : { host, port }),
      servername: isIP(host) === 0 ? host : undefined,
      rejectUnauthorized: trust.verify,
      ...(trust.ca ? { ca: trust.ca } : {}),
      minVersion: 'TLSv1.2',
    });
    const timer = setTimeout(
      () => {
        socket.destroy();
        reject(
          new TimeoutError(
            `TLS handshake with ${peerName(host, port)} did not finish within ${Math.round(timeoutMs / 1000)} s`,
          ),
        );
      },
      Math.max(0, timeoutMs),
    );
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.on('error', (e: NodeJS.ErrnoException & { reason?: string }) => {
      clearTimeout(timer);
      socket.destroy();
      reject(tlsError(host, port, e, mode, trust.words ?? TARGET_TLS_WORDS));
    });
  });
}

/**
 * Why TLS failed, in words a person can act on. OpenSSL's own message is an error stack
 * (`80EC...:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/...:350:` and
 * a newline): its `reason` says the same in a few words.
 */
function tlsError(
  host: string,
  port: number,
  e: NodeJS.ErrnoException & { reason?: string },
  mode: 'implicit' | 'starttls',
  words: TlsWords,
): DequeueError {
  const peer = peerName(host, port);
  // Node adds its own advice to certificate errors ("...; if the root CA is installed locally,
  // try running Node.js with --use-system-ca"): a flag of a program the user does not run.
  const said = e.reason ?? e.message.trim().replace(/;[^;]*\bNode\.js\b.*$/s, '');
  // Certificate problems carry OpenSSL codes (CERT_HAS_EXPIRED, ERR_TLS_CERT_ALTNAME_INVALID,
  // DEPTH_ZERO_SELF_SIGNED_CERT, UNABLE_TO_VERIFY_LEAF_SIGNATURE, ...): not worth retrying.
  if (/CERT|SIGNATURE|ALTNAME|ISSUER/i.test(e.code ?? ''))
    return new DequeueError('permanent', `TLS with ${peer} failed: ${said} (${words.relax})`, {
      cause: e,
    });
  // Implicit TLS against a port that answers in plain text (OpenSSL's "wrong version number",
  // which tells a person nothing, so it is left out): the caller's words say which mode to use.
  if (
    mode === 'implicit' &&
    (e.code === 'ERR_SSL_WRONG_VERSION_NUMBER' || e.code === 'ERR_SSL_HTTP_REQUEST')
  )
    return new DequeueError('config', `TLS with ${peer} failed: ${words.plainPort}`, {
      cause: e,
    });
  return new DequeueError('temporary', `TLS with ${peer} failed: ${said}`, { cause: e });
}

/**
 * Close a connection and resolve once it is closed, so that nothing of it outlives its session.
 * `end()` first (under TLS it sends close_notify before the FIN, so the peer sees a clean TLS
 * close, not "non-properly terminated"); the peer's close is awaited at most `graceMs`, then the
 * socket is destroyed. `graceMs` 0 destroys at once (a connection no longer worth a goodbye).
 */
export function closeSocket(socket: Socket, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (socket.closed) return resolve();
    // A reset during the goodbye is no news: the session's result is already decided.
    socket.on('error', () => undefined);
    const timer = setTimeout(() => socket.destroy(), Math.max(0, graceMs));
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    if (graceMs <= 0) socket.destroy();
    else if (!socket.destroyed) socket.end();
  });
}
