/**
 * Opening the connection to a provider: TCP (IPv4, IPv6 or a host name), implicit TLS, and the
 * TLS upgrade after STARTTLS (RFC 3207). Certificate verification is on unless the target says
 * `tlsVerify: false`; a certificate that does not verify is a permanent failure (retrying will not
 * make it trusted) and names the reason OpenSSL gave.
 */
import { connect as tcpConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { DequeueError, TimeoutError } from '../errors';

export interface TlsTrust {
  readonly verify: boolean;
  /** Extra trusted CA certificates (PEM), e.g. a test CA. Undefined: the system's store. */
  readonly ca?: string;
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
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(
        new DequeueError('temporary', `cannot connect to ${peerName(host, port)}: ${e.message}`, {
          cause: e,
        }),
      );
    });
  });
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
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(
        new DequeueError('temporary', `cannot connect to ${path}: ${e.message}`, { cause: e }),
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
    socket.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      // Certificate problems carry OpenSSL codes (CERT_HAS_EXPIRED, ERR_TLS_CERT_ALTNAME_INVALID,
      // DEPTH_ZERO_SELF_SIGNED_CERT, UNABLE_TO_VERIFY_LEAF_SIGNATURE, ...): not worth retrying.
      const trustProblem = /CERT|SIGNATURE|ALTNAME|ISSUER/i.test(e.code ?? '');
      const hint = trustProblem
        ? ' (set "tlsVerify": false only if you accept an unverified provider)'
        : '';
      reject(
        new DequeueError(
          trustProblem ? 'permanent' : 'temporary',
          `TLS with ${peerName(host, port)} failed: ${e.message}${hint}`,
          { cause: e },
        ),
      );
    });
  });
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
