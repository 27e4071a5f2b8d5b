/**
 * A stored envelope checked as it is read back (issue 17 item 3): the store is a boundary, and
 * whoever can write it (an older version, a bug, someone with `s3:PutObject`) must not be able to
 * put anything on the wire but one well-formed MAIL and well-formed RCPTs. Every field that
 * `deliver` uses is checked for its type; the addresses against RFC 5321: no CR, LF, NUL or other
 * control character (one of them is a second command on the wire, 2.3.8), no `<` or `>` inside
 * the path (4.1.2), a local part of at most 64 octets, a domain of at most 255 (4.5.3.1.1-2), a
 * path of at most 256 octets with its brackets (4.5.3.1.3); and at least one recipient.
 *
 * A bad envelope is never "fixed": `deliver` moves its message to failed/ with the reason.
 */
import { MAX_PATH_LENGTH } from '../smtp/command';
import { ENVELOPE_VERSION, type EnvelopeRecord } from './envelope-record';

/** RFC 5321 4.5.3.1.1 and 4.5.3.1.2. */
export const MAX_LOCAL_PART_OCTETS = 64;
export const MAX_DOMAIN_OCTETS = 255;

const octets = (s: string) => Buffer.byteLength(s, 'utf8');

/**
 * Why `address` cannot go into a MAIL or RCPT command, or null. `''` is the null reverse-path,
 * allowed only for MAIL (`nullAllowed`).
 */
export function addressProblem(address: string, nullAllowed: boolean): string | null {
  if (address === '') return nullAllowed ? null : 'is empty';
  const control = /[\x00-\x1f\x7f]/.exec(address);
  if (control) {
    const c = control[0].charCodeAt(0);
    const name =
      c === 13
        ? 'CR'
        : c === 10
          ? 'LF'
          : c === 0
            ? 'NUL'
            : `control character 0x${c.toString(16).padStart(2, '0')}`;
    return `contains ${name} (RFC 5321 2.3.8: it would end the command)`;
  }
  if (/[<>]/.test(address)) return 'contains "<" or ">" (RFC 5321 4.1.2)';
  if (octets(address) + 2 > MAX_PATH_LENGTH)
    return `is longer than ${MAX_PATH_LENGTH} octets with its brackets (RFC 5321 4.5.3.1.3)`;
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return 'is not local-part@domain';
  if (octets(address.slice(0, at)) > MAX_LOCAL_PART_OCTETS)
    return `has a local part longer than ${MAX_LOCAL_PART_OCTETS} octets (RFC 5321 4.5.3.1.1)`;
  if (octets(address.slice(at + 1)) > MAX_DOMAIN_OCTETS)
    return `has a domain longer than ${MAX_DOMAIN_OCTETS} octets (RFC 5321 4.5.3.1.2)`;
  if (/\s/.test(address.slice(at + 1))) return 'has white space in its domain';
  return null;
}

/** A value as a reason can quote it: short, control characters escaped. */
function shown(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : String(JSON.stringify(value));
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

export type EnvelopeCheck =
  | { readonly ok: true; readonly envelope: EnvelopeRecord }
  | { readonly ok: false; readonly problem: string };

type Kind = 'string' | 'number' | 'boolean';
/** Optional fields and their types (absent in older versions' envelopes is fine). */
const OPTIONAL: Record<string, Kind> = {
  version: 'number',
  id: 'string',
  declaredSize: 'number',
  receivedAt: 'string',
  provider: 'string',
  target: 'string',
  heloName: 'string',
  tls: 'boolean',
  traceBytes: 'number',
  message: 'string',
  bytes: 'number',
  storedAt: 'string',
  crc32: 'string',
  relayedTo: 'string',
};

/** The envelope as parsed from its JSON, checked whole; the first problem found is the reason. */
export function checkStoredEnvelope(raw: unknown): EnvelopeCheck {
  const bad = (problem: string): EnvelopeCheck => ({ ok: false, problem });
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return bad('the envelope is not a JSON object');
  const e = raw as Record<string, unknown>;
  for (const [field, kind] of Object.entries(OPTIONAL))
    if (e[field] !== undefined && typeof e[field] !== kind)
      return bad(`envelope field ${field} must be a ${kind}, not ${shown(e[field])}`);
  for (const field of ['bytes', 'declaredSize', 'traceBytes'])
    if (e[field] !== undefined && !(Number.isSafeInteger(e[field]) && (e[field] as number) >= 0))
      return bad(`envelope field ${field} must be a whole number of bytes, not ${shown(e[field])}`);
  if (typeof e.mailFrom !== 'string')
    return bad(`envelope field mailFrom must be a string, not ${shown(e.mailFrom)}`);
  const from = addressProblem(e.mailFrom, true);
  if (from) return bad(`envelope field mailFrom ${shown(e.mailFrom)} ${from}`);
  if (!Array.isArray(e.rcptTo))
    return bad(`envelope field rcptTo must be an array of addresses, not ${shown(e.rcptTo)}`);
  if (e.rcptTo.length === 0) return bad('envelope field rcptTo is empty: no recipient to send to');
  for (const [i, r] of e.rcptTo.entries()) {
    if (typeof r !== 'string')
      return bad(`envelope field rcptTo[${i}] must be a string, not ${shown(r)}`);
    const problem = addressProblem(r, false);
    if (problem) return bad(`envelope field rcptTo[${i}] ${shown(r)} ${problem}`);
  }
  if (e.body !== undefined && e.body !== '7BIT' && e.body !== '8BITMIME')
    return bad(`envelope field body must be "7BIT" or "8BITMIME", not ${shown(e.body)}`);
  if (e.smtputf8 !== undefined && e.smtputf8 !== true)
    return bad(`envelope field smtputf8 must be true when present, not ${shown(e.smtputf8)}`);
  if (
    e.domains !== undefined &&
    !(Array.isArray(e.domains) && e.domains.every((d) => typeof d === 'string'))
  )
    return bad(`envelope field domains must be an array of domain names, not ${shown(e.domains)}`);
  return { ok: true, envelope: raw as EnvelopeRecord };
}

/**
 * What a claim carries for a message whose envelope failed its check: nothing of it is used,
 * the message goes to failed/ with the reason.
 */
export function unusableEnvelope(id: string, target: string): EnvelopeRecord {
  return {
    version: ENVELOPE_VERSION,
    id,
    mailFrom: '',
    rcptTo: [],
    receivedAt: '',
    provider: '',
    target,
    heloName: '',
    tls: false,
    traceBytes: 0,
    message: '',
    bytes: 0,
    storedAt: '',
  };
}
