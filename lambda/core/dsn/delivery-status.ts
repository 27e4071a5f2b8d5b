/**
 * A delivery status notification as bytes (RFC 3464): a multipart/report (RFC 6522) of
 * report-type delivery-status, from the mailer daemon of the reporting host to the message's
 * reverse-path. Three parts: a text a person reads, the machine-readable message/delivery-status
 * (one per-message block, one per-recipient block each), and the original message's header
 * section (text/rfc822-headers, RFC 3461 4.3's RET=HDRS, which is also what RFC 3461 says to
 * return when the sender asked nothing).
 *
 * The text is canonical (CRLF line ends, RFC 5322 2.1); the caller dot-stuffs it on the wire.
 * It has no file system and no clock: the dates come in.
 */
import type { HeaderSection } from './header-section';

/** One recipient the notification is about. */
export interface DsnRecipient {
  /** The forward-path we gave the server (RFC 3464 2.3.2 Final-Recipient). */
  readonly address: string;
  /** The sender's ORCPT (RFC 3461 4.2), when the stored envelope kept one. */
  readonly originalRecipient?: string;
  /** The enhanced status code (status-code.ts). */
  readonly status: string;
  /** refused: a 5xx from the server; expired: still undelivered at the give-up time. */
  readonly reason: 'refused' | 'expired';
  /** The server's reply for this recipient, code first (RFC 3464 2.3.6); null when none came. */
  readonly diagnostic: string | null;
}

export interface DsnRequest {
  /** Our name (`--helo-name`): Reporting-MTA, and the domain of From and Message-ID. */
  readonly reportingMta: string;
  /** The original message's reverse-path: the notification's To (never the null path). */
  readonly reversePath: string;
  /** The notification's own Message-ID, without brackets (the same when it is sent again). */
  readonly messageId: string;
  /** RFC 3461 4.4 ENVID, when the stored envelope kept one. */
  readonly envelopeId?: string;
  /** When we accepted the original message (RFC 3464 2.2.5 Arrival-Date). */
  readonly arrivalDate: Date;
  /** The name the provider gave in EHLO (RFC 3464 2.2.4 Received-From-MTA). */
  readonly receivedFromMta?: string;
  /** The customer's server that answered (RFC 3464 2.3.5 Remote-MTA), when it has a host name. */
  readonly remoteMta?: string;
  /** When the recipients' last attempt was made (RFC 3464 2.3.7), and the notification's Date. */
  readonly date: Date;
  /** How long we kept trying, in words, for the text of an expired recipient ("5 days"). */
  readonly giveUpAfter?: string;
  readonly recipients: readonly DsnRecipient[];
  readonly headers: HeaderSection;
}

export interface DsnText {
  /** 7-bit text: it goes to any server, with or without 8BITMIME (RFC 6152). */
  readonly text: Buffer;
}

/** Header fields are folded to lines of this many characters where they can be (RFC 5322 2.1.1). */
const FOLD_AT = 78;

export function deliveryStatusNotification(request: DsnRequest): DsnText {
  const { reportingMta: mta, recipients, headers } = request;
  if (!request.reversePath) throw new RangeError('no notification goes to the null reverse-path');
  if (!recipients.length) throw new RangeError('a notification names at least one recipient');
  const boundary = boundaryFor(request);
  const top = [
    field('From', `Mail Delivery System <MAILER-DAEMON@${safe(mta)}>`),
    field('To', `<${safe(request.reversePath)}>`),
    field('Subject', 'Undelivered Mail Returned to Sender'),
    field('Date', rfc5322Date(request.date)),
    field('Message-ID', `<${safe(request.messageId)}>`),
    // RFC 3834 5: machine-made, so that no one answers it automatically.
    field('Auto-Submitted', 'auto-replied'),
    field('MIME-Version', '1.0'),
    field('Content-Type', `multipart/report; report-type=delivery-status; boundary="${boundary}"`),
  ];
  // 8-bit original headers (RFC 6532) are carried quoted-printable (RFC 2045 6.7): a DSN that
  // needed 8BITMIME could wait forever for a bounce server without it.
  const eightBit = headers.text.some((b) => b > 0x7f);
  const parts = [
    part(['Content-Type: text/plain; charset=us-ascii'], humanText(request)),
    part(['Content-Type: message/delivery-status'], statusFields(request)),
    part(
      [
        'Content-Type: text/rfc822-headers',
        ...(eightBit ? ['Content-Transfer-Encoding: quoted-printable'] : []),
      ],
      eightBit ? quotedPrintable(headers.text) : headers.text,
    ),
  ];
  const chunks: Buffer[] = [Buffer.from(`${top.join('')}\r\n`)];
  chunks.push(Buffer.from('This is a MIME-encapsulated delivery status notification.\r\n'));
  for (const p of parts) chunks.push(Buffer.from(`\r\n--${boundary}\r\n`), p);
  chunks.push(Buffer.from(`\r\n--${boundary}--\r\n`));
  return { text: Buffer.concat(chunks) };
}

function part(fields: readonly string[], body: string | Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(`${fields.map((f) => `${f}\r\n`).join('')}\r\n`),
    typeof body === 'string' ? Buffer.from(body, 'latin1') : body,
  ]);
}

/** RFC 3464 2.2 and 2.3: the per-message block, then one block per recipient. */
function statusFields(r: DsnRequest): string {
  const perMessage = [
    field('Reporting-MTA', `dns; ${safe(r.reportingMta)}`),
    ...(r.envelopeId ? [field('Original-Envelope-Id', safe(r.envelopeId))] : []),
    ...(r.receivedFromMta ? [field('Received-From-MTA', `dns; ${safe(r.receivedFromMta)}`)] : []),
    field('Arrival-Date', rfc5322Date(r.arrivalDate)),
  ].join('');
  const blocks = r.recipients.map((p) =>
    [
      ...(p.originalRecipient
        ? [field('Original-Recipient', `rfc822; ${safe(p.originalRecipient)}`)]
        : []),
      field('Final-Recipient', `rfc822; ${safe(p.address)}`),
      field('Action', 'failed'),
      field('Status', p.status),
      ...(r.remoteMta ? [field('Remote-MTA', `dns; ${safe(r.remoteMta)}`)] : []),
      ...(p.diagnostic ? [field('Diagnostic-Code', `smtp; ${safe(p.diagnostic)}`)] : []),
      field('Last-Attempt-Date', rfc5322Date(r.date)),
    ].join(''),
  );
  // Blocks are separated by an empty line (RFC 3464 2.1); the part ends with its last field.
  return [perMessage, ...blocks].join('\r\n');
}

function humanText(r: DsnRequest): string {
  const refused = r.recipients.filter((p) => p.reason === 'refused');
  const expired = r.recipients.filter((p) => p.reason === 'expired');
  const lines = [
    `This is the mail system at ${safe(r.reportingMta)}.`,
    '',
    `Your message (received ${rfc5322Date(r.arrivalDate)}) could not be delivered`,
    'to the recipients below. This is a permanent error; we have given up.',
    '',
  ];
  if (refused.length) {
    lines.push("The recipients' mail server refused them:", '');
    for (const p of refused)
      lines.push(...wrapped(`<${safe(p.address)}>: ${safe(p.diagnostic ?? 'refused')}`));
    lines.push('');
  }
  if (expired.length) {
    lines.push(
      `Not delivered within ${safe(r.giveUpAfter ?? 'the give-up time')} of its arrival:`,
      '',
    );
    for (const p of expired)
      lines.push(
        ...wrapped(
          `<${safe(p.address)}>: ${p.diagnostic ? `last reply: ${safe(p.diagnostic)}` : 'the server could not be reached'}`,
        ),
      );
    lines.push('');
  }
  lines.push("Your message's headers follow in the last part.");
  return `${lines.join('\r\n')}\r\n`;
}

/** A header field, folded at spaces to FOLD_AT characters where it can be (RFC 5322 2.2.3). */
function field(name: string, value: string): string {
  const words = value.split(' ');
  const lines: string[] = [];
  let line = `${name}:`;
  for (const word of words) {
    if (line.length + 1 + word.length > FOLD_AT && line.trim().length > name.length + 1) {
      lines.push(line);
      line = ` ${word}`;
    } else {
      line += ` ${word}`;
    }
  }
  lines.push(line);
  return `${lines.join('\r\n')}\r\n`;
}

/** Lines of the human text, wrapped at spaces, continued with an indent. */
function wrapped(text: string): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > FOLD_AT) {
      out.push(line);
      line = `    ${word}`;
    } else line = line ? `${line} ${word}` : word;
  }
  out.push(line);
  return out;
}

/**
 * What a peer said or an envelope holds, fit for a header: line ends (a multi-line reply) become
 * spaces, other controls and non-ASCII become `?`, so nothing can end a field or add one.
 */
function safe(text: string): string {
  return text
    .replace(/\r?\n/g, ' ')
    .replace(/[^\x20-\x7e]/g, '?')
    .replace(/ {2,}/g, ' ')
    .trim();
}

/**
 * RFC 2045 6.7: every byte outside printable ASCII, and `=`, as `=XX`; a space or tab at a line's
 * end too; lines soft-broken (`=` CRLF) to at most 76 characters.
 */
export function quotedPrintable(text: Buffer): string {
  const out: string[] = [];
  const lines = text.toString('latin1').split('\r\n');
  if (lines.at(-1) === '') lines.pop();
  for (const line of lines) {
    let row = '';
    for (let i = 0; i < line.length; i++) {
      const code = line.charCodeAt(i);
      const last = i === line.length - 1;
      const literal =
        (code >= 33 && code <= 126 && code !== 61) || ((code === 32 || code === 9) && !last);
      const piece = literal ? line[i]! : `=${code.toString(16).toUpperCase().padStart(2, '0')}`;
      if (row.length + piece.length > 75) {
        out.push(`${row}=`);
        row = '';
      }
      row += piece;
    }
    out.push(row);
  }
  return `${out.join('\r\n')}\r\n`;
}

/** RFC 5322 3.3: `Mon, 07 Dec 2026 12:44:12 +0000`. */
export function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}

/**
 * A boundary of the notification's own (RFC 2046 5.1.1: 1 to 70 characters), made from its
 * Message-ID so that a notification sent again is the same text, and checked against the one
 * part that is not ours: it must not occur in the original headers.
 */
function boundaryFor(r: DsnRequest): string {
  const base = `=_dsn_${r.messageId.replace(/[^A-Za-z0-9]/g, '').slice(0, 50)}`;
  let boundary = base;
  for (let n = 1; r.headers.text.includes(`--${boundary}`); n++) boundary = `${base}_${n}`;
  return boundary;
}
