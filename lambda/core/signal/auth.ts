/**
 * ESMTP AUTH (RFC 4954) with PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login) and CRAM-MD5
 * (RFC 2195).
 *
 * Choice, when the target pins no mechanism:
 * - over TLS whose certificate was verified: PLAIN first (one round trip with an initial
 *   response; the channel protects the password, and the server may keep only a hash of it,
 *   where CRAM-MD5 needs the server to keep the password itself, and rests on HMAC-MD5), then
 *   LOGIN, then CRAM-MD5;
 * - on cleartext, or TLS with `tlsVerify: false` (whoever sits on the path may be the far end of
 *   that TLS): CRAM-MD5 first, because it never sends the password (and RFC 2645 section 5
 *   expects it for ODMR), then PLAIN, then LOGIN.
 * PLAIN and LOGIN send the password itself, so they are never used on a connection that is not
 * encrypted unless the target sets `allowPlaintextAuth`. When nothing is left, no AUTH exchange
 * happens at all and the target fails permanently, saying why.
 *
 * Credentials are redacted where the lines are produced: the transcript sees only placeholders.
 */
import { createHmac } from 'node:crypto';
import type { AuthMechanism, Target } from '../config';
import { DequeueError, RefusalError } from '../errors';
import type { AuthCredentials } from '../ports';
import type { ReplyChannel } from '../smtp/reply-channel';
import { replyText, type SmtpReply } from '../smtp/reply';

/** The order on cleartext (or unverified TLS), and over verified TLS. */
export const STRENGTH_ORDER: readonly AuthMechanism[] = ['CRAM-MD5', 'PLAIN', 'LOGIN'];
export const VERIFIED_TLS_ORDER: readonly AuthMechanism[] = ['PLAIN', 'LOGIN', 'CRAM-MD5'];

/** What the connection is, as far as the choice of mechanism goes. */
export interface AuthConnection {
  readonly encrypted: boolean;
  /** Encrypted, and the provider's certificate verified (tlsVerify). */
  readonly verified: boolean;
  /** EHLO was refused and HELO answered: no extensions, so no AUTH on offer at all. */
  readonly helo?: boolean;
}
const SENDS_PASSWORD: ReadonlySet<AuthMechanism> = new Set(['PLAIN', 'LOGIN']);

/** Pick the mechanism, or explain (permanent failure) why none may be used. */
export function chooseMechanism(
  target: Target,
  offered: readonly string[],
  connection: AuthConnection,
): AuthMechanism {
  const { encrypted } = connection;
  if (connection.helo) {
    throw new DequeueError(
      'permanent',
      'the provider refused EHLO and answered HELO, so it offers no ESMTP extensions and no AUTH (RFC 4954 needs EHLO)',
    );
  }
  const upper = offered.map((m) => m.toUpperCase());
  const mayUse = (m: AuthMechanism) =>
    !SENDS_PASSWORD.has(m) || encrypted || target.allowPlaintextAuth;
  const list = upper.length ? upper.join(' ') : 'none';
  const pinned = target.auth?.mechanism;
  if (pinned) {
    if (!upper.includes(pinned)) {
      throw new DequeueError(
        'permanent',
        `AUTH ${pinned} is not offered by the provider (offered: ${list})`,
      );
    }
    if (!mayUse(pinned)) {
      throw new DequeueError(
        'permanent',
        `AUTH ${pinned} would send the password over an unencrypted connection; use TLS, CRAM-MD5, or set "allowPlaintextAuth": true`,
      );
    }
    return pinned;
  }
  const usable = (connection.verified ? VERIFIED_TLS_ORDER : STRENGTH_ORDER).find(
    (m) => upper.includes(m) && mayUse(m),
  );
  if (usable) return usable;
  if (upper.length === 0) {
    throw new DequeueError(
      'permanent',
      `the provider does not offer AUTH${encrypted ? '' : ' on an unencrypted connection (it may after STARTTLS: check "tls")'}`,
    );
  }
  throw new DequeueError(
    'permanent',
    `no AUTH mechanism may be used: offered ${list}, and PLAIN/LOGIN would send the password unencrypted (use TLS or set "allowPlaintextAuth": true)`,
  );
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** Run the AUTH exchange. Resolves on 235; throws a DequeueError otherwise. */
export async function authenticate(
  channel: ReplyChannel,
  mechanism: AuthMechanism,
  credentials: AuthCredentials,
  timeoutMs: number,
  peer: string,
  /** Where the credentials came from, named in a refusal so the operator knows what to fix. */
  secretId?: string,
): Promise<void> {
  const step = (line: string, shown: string) => channel.command(line, timeoutMs, shown);
  let reply: SmtpReply;
  switch (mechanism) {
    case 'PLAIN':
      // RFC 4616: authzid NUL authcid NUL passwd, sent as the initial response (RFC 4954 section 4).
      reply = await step(
        `AUTH PLAIN ${b64(`\0${credentials.username}\0${credentials.password}`)}`,
        'AUTH PLAIN <credentials redacted>',
      );
      break;
    case 'LOGIN':
      reply = await step('AUTH LOGIN', 'AUTH LOGIN');
      if (reply.code === 334) reply = await step(b64(credentials.username), '<username redacted>');
      if (reply.code === 334) reply = await step(b64(credentials.password), '<password redacted>');
      break;
    case 'CRAM-MD5': {
      reply = await step('AUTH CRAM-MD5', 'AUTH CRAM-MD5');
      if (reply.code === 334) {
        // RFC 2195 section 2: the response is "user SP hex(HMAC-MD5(password, challenge))".
        const challenge = Buffer.from(reply.lines[0] ?? '', 'base64');
        const digest = createHmac('md5', credentials.password).update(challenge).digest('hex');
        reply = await step(b64(`${credentials.username} ${digest}`), '<credentials redacted>');
      }
      break;
    }
  }
  if (reply.code === 235) return;
  if (reply.code === 334) {
    // The server wants more than the mechanism defines: cancel the exchange (RFC 4954 section 4).
    await channel.command('*', timeoutMs).catch(() => undefined);
    throw new DequeueError(
      'permanent',
      `AUTH ${mechanism}: the provider asked for more than the mechanism defines`,
    );
  }
  const refused = new RefusalError(`AUTH ${mechanism}`, reply.code, replyText(reply), peer);
  // RFC 4954 section 6: 535 means the username or password is wrong; say which secret holds them.
  if (secretId)
    refused.message +=
      reply.code === 535
        ? ` (the username or password of secretId "${secretId}" was refused: fix that secret)`
        : ` (credentials: secretId "${secretId}")`;
  throw refused;
}
