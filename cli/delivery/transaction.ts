/**
 * One message's transaction with the server, as values: what goes out (Outgoing), the replies it
 * got (EnvelopeReplies), and what came of it for each recipient (RecipientOutcome,
 * TransactionResult). The functions here decide from the replies alone, with no socket, so that
 * each rule can be read and tested on its own; delivery-client.ts sends and reads.
 *
 * The answer for each recipient is its RCPT reply when that refused it, else the reply to DATA
 * when that refused the message, else the reply to the final dot: one reply for all of them in
 * SMTP, one per accepted recipient, in RCPT order, in LMTP (RFC 2033 4.2). 2xx and 5xx are final;
 * a 4xx or no reply at all leaves the recipient waiting for the next run.
 */
import { boundedText } from '../../lambda/core/smtp/client-handshake';
import { DequeueError } from '../../lambda/core/errors';
import type { SmtpReply } from '../../lambda/core/smtp/reply';
import type { TlsState } from '../../lambda/core/smtp/tls-policy';
import { canAnswer, canAnswerAfterRefusedMail } from '../../lambda/core/smtp/reply-pairing';

/** One message to send. */
export interface Outgoing {
  readonly id: string;
  readonly mailFrom: string;
  /** The recipients still waiting for a final answer. */
  readonly recipients: readonly string[];
  readonly body?: '7BIT' | '8BITMIME';
  /** The provider sent it with SMTPUTF8 (RFC 6531): only a server that offers it may have it. */
  readonly smtputf8?: true;
  /** Stored size, for SIZE (RFC 1870). */
  readonly size?: number;
  readonly text: () => AsyncIterable<Buffer> | Iterable<Buffer>;
}

export interface RecipientOutcome {
  readonly address: string;
  /** The reply code that decided it; null when no reply came. */
  readonly code: number | null;
  readonly text: string;
  /** 2xx or 5xx: this recipient is done with. */
  readonly final: boolean;
}

export interface TransactionResult {
  readonly recipients: readonly RecipientOutcome[];
  /**
   * The connection failed before the server answered MAIL: it cannot have taken this message, so
   * it may go again at once on a new connection (one the server dropped while it was idle).
   */
  readonly unsent?: boolean;
  /** Why some recipient has no final answer (or why nothing was sent), if so. */
  readonly error: DequeueError | null;
  /** What protected the connection that carried it; absent when none did (tls-policy.ts). */
  readonly tls?: TlsState;
}

/** A reply, or why none came (a timeout, a cut). */
export type Answer = SmtpReply | DequeueError;

/** The envelope's command lines: MAIL FROM, then one RCPT TO per recipient, in order. */
export interface EnvelopeLines {
  readonly mail: string;
  readonly rcpts: readonly string[];
}

/** What the server said to the envelope. */
export interface EnvelopeReplies {
  readonly mail: SmtpReply;
  /** One per RCPT sent, in order; none when MAIL was refused before any RCPT went out. */
  readonly rcpts: readonly Answer[];
  /** The reply to DATA, or NO_RECIPIENT when DATA was not sent. */
  readonly data: Answer;
}

/** A reply that cannot answer the command it was paired with. */
export interface Misfit {
  readonly command: string;
  readonly reply: SmtpReply;
}

/** DATA not sent because every RCPT was refused (not a fault of the connection). */
export const NO_RECIPIENT = new DequeueError('temporary', 'no recipient accepted');

const isFinal = (code: number) => code < 400 || code >= 500;

/** The envelope's lines, or, when the message cannot go to this server as stored, its result. */
export type Envelope = { readonly lines: EnvelopeLines } | { readonly notSent: TransactionResult };

/**
 * MAIL FROM with the stored reverse-path (the null path `<>` kept) and its parameters, and one
 * RCPT TO per recipient (RFC 5321 3.3); nothing sent when the server cannot take the message as
 * stored: 8-bit text to a server without 8BITMIME waits for one that has it, a message that needs
 * SMTPUTF8 fails where it is not offered.
 */
export function envelopeLines(
  m: Outgoing,
  extensions: ReadonlyMap<string, readonly string[]>,
  server: string,
): Envelope {
  if (m.body === '8BITMIME' && !extensions.has('8BITMIME')) {
    // RFC 6152 3: 8-bit data must not go to a server that did not offer it.
    const error = new DequeueError(
      'temporary',
      `${server} does not offer 8BITMIME and message ${m.id} is 8-bit; it is kept until the server takes 8-bit mail`,
    );
    return { notSent: { recipients: unanswered(m.recipients, error.message), error } };
  }
  if (m.smtputf8 && !extensions.has('SMTPUTF8')) {
    // RFC 6531 3.2: a message that needs SMTPUTF8 must not go to a server that does not offer
    // it; no server will take it as it is, so it fails for every recipient (the sender is owed
    // a DSN), with the enhanced code RFC 6533 gives for it.
    const text = `5.6.7 not sent: ${server} does not offer SMTPUTF8 (RFC 6531) and message ${m.id} needs it`;
    return {
      notSent: {
        recipients: m.recipients.map((address) => ({ address, code: 553, text, final: true })),
        error: null,
      },
    };
  }
  const params = [
    ...(m.body === '8BITMIME' ? ['BODY=8BITMIME'] : []),
    // RFC 6531 3.4: a keyword without a value.
    ...(m.smtputf8 ? ['SMTPUTF8'] : []),
    ...(extensions.has('SIZE') && m.size !== undefined ? [`SIZE=${m.size}`] : []),
  ];
  return {
    lines: {
      mail: `MAIL FROM:<${m.mailFrom}>${params.map((p) => ` ${p}`).join('')}`,
      rcpts: m.recipients.map((r) => `RCPT TO:<${r}>`),
    },
  };
}

/**
 * The pairing check of the envelope (lambda/core/smtp/reply-pairing.ts, rule 1): a reply that
 * cannot answer its command (a 354 to RCPT, a 250 to DATA), or a RCPT accepted or DATA's 354 after
 * MAIL was refused, means the replies no longer pair with the commands. The first such reply, or
 * null.
 */
export function envelopeMisfit(
  recipients: readonly string[],
  replies: EnvelopeReplies,
): Misfit | null {
  const { mail, rcpts, data } = replies;
  if (!canAnswer('MAIL', mail.code)) return { command: 'MAIL', reply: mail };
  const mailRefused = mail.code >= 300;
  for (const [i, r] of rcpts.entries()) {
    if (r instanceof DequeueError) continue;
    if (!canAnswer('RCPT', r.code)) return { command: `RCPT TO:<${recipients[i]}>`, reply: r };
    if (mailRefused && !canAnswerAfterRefusedMail('RCPT', r.code))
      return { command: `RCPT TO:<${recipients[i]}> after MAIL was refused`, reply: r };
  }
  if (data instanceof DequeueError) return null;
  if (!canAnswer('DATA', data.code)) return { command: 'DATA', reply: data };
  if (mailRefused && !canAnswerAfterRefusedMail('DATA', data.code))
    return { command: 'DATA after MAIL was refused', reply: data };
  return null;
}

/** Every recipient without a reply of its own: `text` says why. */
export function unanswered(addresses: readonly string[], text: string): RecipientOutcome[] {
  return addresses.map((address) => ({ address, code: null, text, final: false }));
}

/** MAIL refused: every recipient gets its reply; 5xx refuses the message for all of them. */
export function mailRefused(recipients: readonly string[], mail: SmtpReply): TransactionResult {
  const text = boundedText(mail);
  const final = isFinal(mail.code);
  return {
    recipients: recipients.map((address) => ({ address, code: mail.code, text, final })),
    error: final
      ? null
      : new DequeueError('temporary', `MAIL FROM refused for now: ${mail.code} ${text}`),
  };
}

/**
 * Each recipient's RCPT reply: a refusal (4xx, 5xx) or no reply is its outcome; the accepted ones,
 * in RCPT order, wait for DATA and the final dot.
 */
export function rcptOutcomes(
  recipients: readonly string[],
  rcpts: readonly Answer[],
): { readonly outcomes: RecipientOutcome[]; readonly accepted: string[] } {
  const outcomes: RecipientOutcome[] = [];
  const accepted: string[] = [];
  for (const [i, address] of recipients.entries()) {
    const r = rcpts[i];
    if (r === undefined || r instanceof DequeueError) {
      outcomes.push({ address, code: null, text: r?.message ?? 'no reply to RCPT', final: false });
    } else if (r.code < 300) {
      accepted.push(address);
    } else {
      outcomes.push({ address, code: r.code, text: boundedText(r), final: isFinal(r.code) });
    }
  }
  return { outcomes, accepted };
}

/**
 * DATA refused or unanswered: the accepted recipients get its reply (final when 5xx); the error
 * says why the message waits, unless no recipient was accepted or DATA refused it for good.
 */
export function dataRefused(
  accepted: readonly string[],
  data: Answer,
): { readonly outcomes: RecipientOutcome[]; readonly error: DequeueError | null } {
  const why =
    data instanceof DequeueError ? data.message : `DATA refused: ${data.code} ${boundedText(data)}`;
  const code = data instanceof DequeueError ? null : data.code;
  return {
    outcomes: accepted.map((address) => ({
      address,
      code,
      text: why,
      final: code !== null && code >= 500,
    })),
    error:
      accepted.length && (data instanceof DequeueError || data.code < 500)
        ? new DequeueError('temporary', why)
        : null,
  };
}

/**
 * The replies to the final dot, one per accepted recipient in LMTP (RFC 2033 4.2), one for all in
 * SMTP; a reply that cannot answer the dot (a 3xx) is a misfit, and none of them is believed.
 */
export function dotOutcomes(
  accepted: readonly string[],
  replies: readonly Answer[],
  lmtp: boolean,
):
  | { readonly outcomes: RecipientOutcome[]; readonly error: DequeueError | null }
  | { readonly misfit: Misfit } {
  let error: DequeueError | null = null;
  const outcomes: RecipientOutcome[] = [];
  for (const [i, address] of accepted.entries()) {
    const r = replies[lmtp ? i : 0]!;
    if (r instanceof DequeueError) {
      error ??= r;
      outcomes.push({
        address,
        code: null,
        text: `no reply to the final dot: ${r.message}`,
        final: false,
      });
    } else if (!canAnswer('end of data', r.code)) {
      return { misfit: { command: 'the final dot', reply: r } };
    } else {
      outcomes.push({ address, code: r.code, text: boundedText(r), final: isFinal(r.code) });
    }
  }
  return { outcomes, error };
}

/**
 * The message's result, its recipients in their own order: `error` when given, else a temporary
 * one when some recipient is still waiting.
 */
export function transactionResult(
  recipients: readonly string[],
  outcomes: readonly RecipientOutcome[],
  error: DequeueError | null,
): TransactionResult {
  const byAddress = new Map(outcomes.map((o) => [o.address, o] as const));
  const ordered = recipients.map((address) => byAddress.get(address)!);
  return {
    recipients: ordered,
    error:
      error ??
      (ordered.some((o) => !o.final)
        ? new DequeueError('temporary', 'some recipients were deferred')
        : null),
  };
}
