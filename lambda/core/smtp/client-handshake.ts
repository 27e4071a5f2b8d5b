/**
 * The one client handshake, for every SMTP connection we open (the release signal, the relay):
 *
 *   connect (TLS from the first byte when "implicit") -> 220 greeting -> EHLO
 *   (HELO only when EHLO is refused with 5xx) -> STARTTLS as the tls mode says -> EHLO again
 *
 * One set of rules, so that the signal and the relay cannot drift apart:
 * - RFC 5321 3.1: anything but 220 as the greeting (554, 421) means the server will not talk.
 * - RFC 5321 3.2: a server that does not know EHLO answers 5xx (500/502); then HELO. A 4xx is a
 *   refusal of the session for now, not a sign of an old server, so it ends the handshake.
 * - RFC 3207 4: "opportunistic" goes on unencrypted when STARTTLS is not offered or is refused;
 *   "required" fails in both cases. After 220 to STARTTLS the client must forget what it learnt
 *   (RFC 3207 4.2) and say EHLO again.
 * - RFC 3207 5 / CVE-2011-0411: bytes that follow the 220 before the TLS handshake were injected
 *   in cleartext by whoever sits on the path; they end the session, they are never read as replies.
 *
 * LMTP (RFC 2033, `deliver --to lmtp:`) says LHLO instead of EHLO, with no HELO to fall back to
 * (4.1), and may reach the server over a unix socket (`socketPath`, as Dovecot offers it).
 *
 * On failure the connection is closed here and the error thrown: a RefusalError (with the reply,
 * for the result's `replies`), a DequeueError for a missing STARTTLS, or the network's error.
 * Where the connection is still usable (a refused greeting, EHLO or STARTTLS, no STARTTLS on
 * offer) we say QUIT first and close TLS cleanly (RFC 5321 4.1.1.10, 3.1: after a 554 greeting
 * the server waits for our QUIT); after a timeout, garbage or a cut there is nobody to say it to.
 *
 * sayGoodbye() is the one way every client session ends: QUIT with its reply awaited only
 * briefly, our side closed, and the close awaited, so that no socket or timer outlives it.
 */
import { isIP, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { TlsMode } from '../config';
import { DequeueError, ProtocolError, RefusalError, TimeoutError } from '../errors';
import type { Transcript } from '../ports';
import { closeSocket, openTcp, openUnixSocket, peerName, startTls } from './connection';
import { ReplyChannel } from './reply-channel';
import { replyText, type SmtpReply } from './reply';
import { TARGET_TLS_WORDS, type TlsWords } from './tls-policy';

/**
 * QUIT's 221, and the peer's close after it, are awaited this long at most each: a courtesy,
 * never the reply timeout (a provider that never answers QUIT must not hold the process).
 */
export const QUIT_WAIT_MS = 1_000;

/** Reply text kept in an error or a result. */
export const MAX_REPLY_TEXT = 1024;

/** What a step waits for, so that each caller can bound it its own way (RFC 5321 4.5.3.2). */
export type HandshakeStep = 'connect' | 'greeting' | 'command' | 'tls';

export interface ClientHandshakeOptions {
  readonly host: string;
  readonly port: number;
  readonly tls: TlsMode;
  readonly tlsVerify: boolean;
  /** Extra trusted CA (PEM); undefined: the system's store. */
  readonly tlsCa?: string;
  /** How the caller's TLS settings are named in errors; default a target's (tls-policy.ts). */
  readonly tlsWords?: TlsWords;
  /** false: the greeting only, no EHLO/HELO (and so no STARTTLS). */
  readonly ehlo: boolean;
  /** EHLO/HELO name; default: an address literal of our end (RFC 5321 4.1.3). */
  readonly helloName?: string;
  /** How the peer is named in errors and the transcript, e.g. "relay 192.0.2.1:25". */
  readonly peer?: string;
  /** The transcript's label for this connection (a target name, "relay"). */
  readonly label: string;
  readonly transcript: Transcript;
  /** 'LHLO' for LMTP (RFC 2033 4.1): no HELO fallback. Default 'EHLO'. */
  readonly hello?: 'EHLO' | 'LHLO';
  /** Connect to this unix socket instead of host:port (LMTP). */
  readonly socketPath?: string;
  /** The bound of each wait, in ms, already clipped to any overall deadline. */
  readonly bound: (step: HandshakeStep) => number;
  /** Epoch ms no reply may pass (the run's deadline). */
  readonly deadline?: number;
  readonly now?: () => number;
  /** The run was told to stop: replies get only STOP_GRACE_MS more (reply-channel.ts). */
  readonly stop?: AbortSignal;
}

export interface ClientSession {
  readonly socket: Socket;
  readonly channel: ReplyChannel;
  readonly peer: string;
  /** TLS is on (implicit, or STARTTLS succeeded). */
  readonly encrypted: boolean;
  /**
   * TLS is on and the certificate verified (chain and name), whether or not verification was
   * demanded: `tlsVerify: false` still learns whether the server could have been trusted.
   */
  readonly verified: boolean;
  /** EHLO keywords -> parameters, as learnt last (after TLS when it started); empty after HELO. */
  readonly extensions: ReadonlyMap<string, readonly string[]>;
  /** The name we gave in EHLO/HELO. */
  readonly helloName: string;
  /** EHLO was refused with 5xx and HELO answered instead: no extensions, no AUTH. */
  readonly helo: boolean;
}

/** Parse an EHLO reply into its extensions: keyword -> parameters (RFC 5321 4.1.1.1). */
export function parseExtensions(reply: SmtpReply): Map<string, string[]> {
  const ext = new Map<string, string[]>();
  for (const line of reply.lines.slice(1)) {
    // Old servers also write "AUTH=LOGIN PLAIN"; treat it as AUTH.
    const [keyword = '', ...params] = line
      .trim()
      .replace(/^AUTH=/i, 'AUTH ')
      .split(/\s+/);
    if (!keyword) continue;
    const key = keyword.toUpperCase();
    ext.set(key, [...(ext.get(key) ?? []), ...params]);
  }
  return ext;
}

/** A reply's text as a result or an error keeps it: bounded. */
export function boundedText(reply: SmtpReply): string {
  const text = replyText(reply);
  return text.length > MAX_REPLY_TEXT ? `${text.slice(0, MAX_REPLY_TEXT)}...` : text;
}

/** Node sets `authorized` after the chain and the name checked out, even when not enforced. */
function verifiedOn(socket: Socket): boolean {
  return (socket as Partial<TLSSocket>).authorized === true;
}

export function addressLiteral(socket: Socket): string {
  const address = socket.localAddress ?? '127.0.0.1';
  return isIP(address) === 6 ? `[IPv6:${address}]` : `[${address}]`;
}

/** Connect and say hello; resolves once the session is ready for AUTH or MAIL. */
export async function openClientSession(options: ClientHandshakeOptions): Promise<ClientSession> {
  const { host, port } = options;
  const peer = options.peer ?? peerName(host, port);
  const words = options.tlsWords ?? TARGET_TLS_WORDS;
  const trust = { verify: options.tlsVerify, ca: options.tlsCa, words };
  let socket: Socket = options.socketPath
    ? await openUnixSocket(options.socketPath, options.bound('connect'))
    : await openTcp(host, port, options.bound('connect'));
  let channel: ReplyChannel | undefined;
  /** Set when the step that failed left the connection in step: a QUIT can still be said. */
  let usable = false;
  try {
    let encrypted = false;
    if (options.tls === 'implicit') {
      socket = await startTls(host, port, trust, options.bound('tls'), socket, 'implicit');
      encrypted = true;
    }
    const helloName = options.helloName ?? addressLiteral(socket);
    const say = (text: string) => options.transcript.line(options.label, '*', text);
    say(`connected to ${peer}${encrypted ? ' (TLS)' : ''}`);
    const open = () =>
      new ReplyChannel(
        socket,
        peer,
        options.label,
        options.transcript,
        options.deadline,
        options.now,
        options.stop,
      );
    channel = open();
    const demand = (command: string, reply: SmtpReply, expected: number): SmtpReply => {
      if (reply.code === expected) return reply;
      usable = true;
      throw new RefusalError(command, reply.code, boundedText(reply), peer);
    };

    const greeting = await channel
      .expect('the greeting', options.bound('greeting'))
      .catch((e: unknown) => {
        // A port that speaks TLS from the first byte (RFC 8314 3.3: 465) waits for our
        // ClientHello and says nothing: the mode is the likely mistake, so say which to use.
        if (e instanceof TimeoutError && !encrypted && e.message.includes(' within '))
          throw new TimeoutError(
            `${e.message}: if this port speaks TLS from the first byte (465), use ${words.tlsPort}`,
          );
        throw e;
      });
    demand('(greeting)', greeting, 220);
    if (!options.ehlo)
      return {
        socket,
        channel,
        peer,
        encrypted,
        verified: verifiedOn(socket),
        extensions: new Map(),
        helloName,
        helo: false,
      };

    const hello = async (
      on: ReplyChannel,
    ): Promise<{ ext: Map<string, string[]>; helo: boolean }> => {
      const verb = options.hello ?? 'EHLO';
      const ehlo = await on.command(`${verb} ${helloName}`, options.bound('command'));
      if (ehlo.code === 250) return { ext: parseExtensions(ehlo), helo: false };
      if (ehlo.code < 500 || verb === 'LHLO') demand(verb, ehlo, 250);
      demand('HELO', await on.command(`HELO ${helloName}`, options.bound('command')), 250);
      return { ext: new Map(), helo: true };
    };
    let { ext, helo } = await hello(channel);

    if (options.tls === 'opportunistic' || options.tls === 'required') {
      if (ext.has('STARTTLS')) {
        const reply = await channel.command('STARTTLS', options.bound('command'));
        if (reply.code === 220) {
          const leftover = channel.detach();
          // A complete injected reply has already broken the channel ("a reply nobody asked for").
          if (channel.broken) throw channel.broken;
          if (leftover.length)
            throw new ProtocolError(
              `${peer} sent data after its 220 to STARTTLS, before TLS began`,
            );
          socket = await startTls(host, port, trust, options.bound('tls'), socket);
          encrypted = true;
          say(`TLS started (${(socket as TLSSocket).getProtocol?.() ?? 'TLS'})`);
          channel = open();
          ({ ext, helo } = await hello(channel));
        } else if (options.tls === 'required') {
          demand('STARTTLS', reply, 220);
        } else {
          say(`STARTTLS refused (${reply.code}); going on unencrypted as "opportunistic" allows`);
        }
      } else if (options.tls === 'required') {
        usable = true;
        throw new DequeueError(
          'permanent',
          `${peer} does not offer STARTTLS and ${words.required}`,
        );
      }
    }
    return {
      socket,
      channel,
      peer,
      encrypted,
      verified: verifiedOn(socket),
      extensions: ext,
      helloName,
      helo,
    };
  } catch (e) {
    if (channel && usable && !channel.broken) {
      await sayGoodbye(channel, socket, Math.min(QUIT_WAIT_MS, options.bound('command')));
    } else {
      channel?.detach();
      await closeSocket(socket, 0);
    }
    throw e;
  }
}

export interface Goodbye {
  /** The reply to QUIT; null when none came (silence, a cut, or a channel already broken). */
  readonly reply: SmtpReply | null;
  /** Why QUIT got no reply, when it was said. */
  readonly error: DequeueError | null;
  /**
   * A reply that came when no command was waiting (before the QUIT, or after its reply), or what
   * the peer sent after its reply to QUIT (garbage, a partial line); null when nothing. Either
   * means the replies of the session were not paired with their commands.
   */
  readonly after: string | null;
}

/**
 * End a session: QUIT (unless the channel is already broken, or `sent` carries a QUIT already
 * written, as in a pipelined group), its reply awaited at most `waitMs`; then our side closed
 * (TLS: close_notify), the peer's close awaited at most `waitMs`, the socket destroyed. The
 * channel reads until the close, so that anything sent after the 221 is reported in `after`.
 * Resolves once the socket is closed; never rejects.
 */
export async function sayGoodbye(
  channel: ReplyChannel,
  socket: Socket,
  waitMs: number,
  sent?: Promise<SmtpReply>,
): Promise<Goodbye> {
  let reply: SmtpReply | null = null;
  let error: DequeueError | null = null;
  // Broken before any QUIT: a cut, a timeout, garbage; nobody to say goodbye to.
  const gone = !sent && channel.broken !== null;
  if (!gone) {
    try {
      reply = await (sent ?? channel.command('QUIT', waitMs));
    } catch (e) {
      error =
        e instanceof DequeueError ? e : new DequeueError('temporary', String(e), { cause: e });
    }
  }
  // Even when the peer has already ended its side (221 and its FIN or close_notify), ours is
  // ended in order: Node's end() after theirs is our close_notify, which a destroy would drop.
  await closeSocket(socket, gone ? 0 : waitMs);
  let after: string | null = null;
  const surplus = channel.unexpected;
  if (surplus) {
    // A reply nobody asked for, before or after the QUIT: either way one reply too many.
    after = `the reply ${surplus.code} ${(surplus.lines[0] ?? '').slice(0, 80)}, for no command,`;
  } else if (reply) {
    if (channel.broken instanceof ProtocolError) after = channel.broken.message;
    else if (channel.midReply) after = 'a partial reply';
  }
  channel.detach();
  return { reply, error, after };
}
