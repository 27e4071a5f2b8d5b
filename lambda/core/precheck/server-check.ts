/**
 * One check of one server: would it take mail now? Connect, read the greeting, and leave politely.
 *
 * RFC 5321 3.1: a server that will take mail greets with 220; 554 (or a 421 before closing) means
 * it will not talk now, and a refused connection or silence means the provider's delivery attempt
 * would fail the same way. So the check passes on 220 and fails on anything else. After a 220 it
 * says QUIT (RFC 5321 4.1.1.10) and waits for the 221 only briefly (the shared sayGoodbye), so the
 * customer's server logs a clean session, not a lost connection.
 *
 * With `tls: "required"` it also says EHLO and STARTTLS (RFC 3207), for a provider that delivers
 * only over TLS; `implicit` starts TLS at once. Certificates are not verified: a delivering MTA
 * does not verify them either (RFC 7435), and the question is whether mail could land.
 *
 * The whole check is bounded: the connection and then the greeting each wait at most
 * `timeoutMs`, never past the run's deadline, and the socket is closed before it resolves.
 */
import { DequeueError, RefusalError, TimeoutError } from '../errors';
import type { Transcript } from '../ports';
import { silentTranscript } from '../ports';
import { peerName } from '../smtp/connection';
import { openClientSession, QUIT_WAIT_MS, sayGoodbye } from '../smtp/client-handshake';
import { PRECHECK_TLS_WORDS } from '../smtp/tls-policy';
import type { PrecheckTls } from './precheck-config';
import type { ServerCheck } from './precheck-report';

export type { ServerCheck } from './precheck-report';

export interface ServerCheckOptions {
  readonly host: string;
  readonly port: number;
  readonly tls: PrecheckTls;
  readonly timeoutMs: number;
  /** The transcript's label (the target's name). */
  readonly label: string;
  readonly transcript?: Transcript;
  /** EHLO name for `tls: "required"`; default an address literal of our end. */
  readonly helloName?: string;
  /** Epoch ms no wait may pass. */
  readonly deadline?: number;
  readonly now?: () => number;
  /** Extra trusted CA; irrelevant to the verdict (nothing is verified) but kept for the handshake. */
  readonly tlsCa?: string;
  /**
   * Added to a timeout on port 25: where outbound 25 is dropped without a word (Lambda outside a
   * VPC) a silent timeout is otherwise a mystery (docs/deploy.md, static egress).
   */
  readonly port25Hint?: string;
}

/** Longest reply text kept from a greeting: one line, a status item stays small. */
const MAX_GREETING_TEXT = 200;

export async function checkServer(options: ServerCheckOptions): Promise<ServerCheck> {
  const server = peerName(options.host, options.port);
  const transcript = options.transcript ?? silentTranscript;
  const now = options.now ?? Date.now;
  const bound = (): number =>
    options.deadline === undefined
      ? options.timeoutMs
      : Math.max(0, Math.min(options.timeoutMs, options.deadline - now()));
  const seconds = Math.round(options.timeoutMs / 100) / 10;
  try {
    const session = await openClientSession({
      host: options.host,
      port: options.port,
      tls: options.tls,
      tlsVerify: false,
      tlsCa: options.tlsCa,
      tlsWords: PRECHECK_TLS_WORDS,
      ehlo: options.tls === 'required',
      helloName: options.helloName,
      label: options.label,
      transcript,
      bound,
      deadline: options.deadline,
      now,
    });
    await sayGoodbye(session.channel, session.socket, Math.min(QUIT_WAIT_MS, bound()));
    const how = session.encrypted ? ', TLS' : '';
    return { server, passed: true, text: `greeted 220${how}` };
  } catch (e) {
    return { server, passed: false, text: failureText(e, seconds, options) };
  }
}

/** What a failed check says: the server's own reply, or what the network did. */
function failureText(e: unknown, seconds: number, options: ServerCheckOptions): string {
  if (e instanceof RefusalError) {
    const text = e.text.replace(/\s+/g, ' ').slice(0, MAX_GREETING_TEXT);
    return e.command === '(greeting)'
      ? `greeted ${e.code} ${text}`.trim()
      : `refused ${e.command}: ${e.code} ${text}`.trim();
  }
  if (e instanceof TimeoutError) {
    const hint = options.port === 25 && options.port25Hint ? ` (${options.port25Hint})` : '';
    return `did not answer within ${seconds} s${hint}`;
  }
  const code = causeCode(e);
  switch (code) {
    case 'ECONNREFUSED':
      return 'refused the connection';
    case 'ENOTFOUND':
      return 'has no address in the DNS';
    case 'EAI_AGAIN':
      return 'could not be looked up in the DNS now';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `could not be reached (${code})`;
    case 'ECONNRESET':
      return 'closed the connection before greeting';
    default:
      break;
  }
  if (e instanceof DequeueError && /closed the connection/.test(e.message))
    return 'closed the connection before greeting';
  const message = e instanceof Error ? e.message : String(e);
  // A mistake in the configuration (implicit TLS on a plain port) is said in our own words,
  // bounded already, and its fix is at the end: kept whole.
  if (e instanceof DequeueError && e.kind === 'config') return `failed: ${message}`;
  return `failed: ${message.replace(/\s+/g, ' ').slice(0, MAX_GREETING_TEXT)}`;
}

function causeCode(e: unknown): string | undefined {
  for (let at: unknown = e; at instanceof Error; at = (at as Error).cause) {
    const code = (at as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}
