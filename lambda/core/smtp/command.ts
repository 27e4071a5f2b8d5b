/**
 * The command grammar we serve after the ATRN turn (RFC 5321 section 4.1), as pure functions
 * tested with strings: the verb, and the paths and parameters of MAIL and RCPT.
 *
 * Liberal where real senders are sloppy and nothing is at stake (a space after "FROM:", the
 * case of the verb, a source route, which 4.1.1.3 says to accept and ignore); strict where a
 * wrong guess would misfile mail (an unbalanced path, control characters, an overlong path).
 */

/** RFC 5321 4.5.3.1.3: a path is at most 256 octets, brackets included. */
export const MAX_PATH_LENGTH = 256;

export interface CommandLine {
  /** Upper-cased; '' for an empty line. */
  readonly verb: string;
  /** What follows the verb and one space, as sent. */
  readonly args: string;
}

export function splitCommand(line: string): CommandLine {
  const m = /^([A-Za-z]+)(?:[ \t]+(.*))?$/s.exec(line.trimEnd());
  if (!m) return { verb: line.trim() === '' ? '' : '?', args: line };
  return { verb: m[1]!.toUpperCase(), args: m[2] ?? '' };
}

export type PathResult =
  | {
      readonly ok: true;
      readonly address: string;
      readonly params: ReadonlyMap<string, string | true>;
    }
  | { readonly ok: false; readonly code: number; readonly text: string };

/** `FROM:<path> [params]` (RFC 5321 4.1.1.2); the null reverse-path `<>` gives ''. */
export function parseMailFrom(args: string): PathResult {
  return parsePath(args, 'FROM', true);
}

/** `TO:<path> [params]` (RFC 5321 4.1.1.3); `<Postmaster>` is the one address without a domain. */
export function parseRcptTo(args: string): PathResult {
  return parsePath(args, 'TO', false);
}

const PATH = /^(FROM|TO):[ \t]*<((?:"(?:[^"\\\r\n]|\\[\x20-\x7e])*"|[^<>"\s])*)>(?:[ \t]+(.*))?$/is;
const KEYWORD = /^[A-Za-z0-9][A-Za-z0-9-]*$/;
/** RFC 5321 4.1.2 esmtp-value: any printable ASCII except "=" and space. */
const VALUE = /^[\x21-\x3c\x3e-\x7e]+$/;
const CONTROL = /[\x00-\x1f\x7f]/;

function parsePath(args: string, keyword: 'FROM' | 'TO', nullAllowed: boolean): PathResult {
  const m = PATH.exec(args.trim());
  if (!m || m[1]!.toUpperCase() !== keyword) {
    return {
      ok: false,
      code: 501,
      text: `5.5.4 Syntax: ${keyword === 'FROM' ? 'MAIL FROM:<address>' : 'RCPT TO:<address>'}`,
    };
  }
  let address = m[2]!;
  if (address.length + 2 > MAX_PATH_LENGTH)
    return { ok: false, code: 501, text: '5.1.3 Path too long (RFC 5321 4.5.3.1.3)' };
  if (CONTROL.test(address))
    return { ok: false, code: 501, text: '5.1.3 Control characters in the address' };
  // A source route "@a,@b:user@domain" is accepted and ignored (RFC 5321 4.1.1.3, appendix C).
  const route = /^@[^:]*:(.*)$/s.exec(address);
  if (route) address = route[1]!;
  if (address === '') {
    if (!nullAllowed)
      return { ok: false, code: 501, text: '5.1.3 An empty forward-path is not allowed' };
  } else if (
    !address.includes('@') &&
    !(keyword === 'TO' && address.toLowerCase() === 'postmaster')
  ) {
    return { ok: false, code: 501, text: '5.1.3 The address needs a domain' };
  }
  const params = new Map<string, string | true>();
  for (const item of (m[3] ?? '').split(/[ \t]+/).filter(Boolean)) {
    const eq = item.indexOf('=');
    const key = (eq === -1 ? item : item.slice(0, eq)).toUpperCase();
    const value = eq === -1 ? true : item.slice(eq + 1);
    if (!KEYWORD.test(key) || (value !== true && !VALUE.test(value))) {
      return {
        ok: false,
        code: 501,
        text: `5.5.4 Malformed parameter ${JSON.stringify(item.slice(0, 40))}`,
      };
    }
    params.set(key, value);
  }
  return { ok: true, address, params };
}

/** Printable ASCII for logs and trace headers: anything else becomes "?", the length capped. */
export function printable(text: string, max = 200): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}...` : clean;
}
