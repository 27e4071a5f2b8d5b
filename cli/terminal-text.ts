/**
 * Provider text on a terminal: control characters shown escaped, never written raw. A reply or a
 * banner may carry escape sequences (which a terminal obeys: colours, cursor moves, a new window
 * title), a bare CR (which makes a later part of the line overwrite the start), or bidirectional
 * overrides that display text in another order than it is. --json output is JSON-escaped instead.
 */

// C0 controls except TAB, DEL, C1 controls, and the Unicode bidi embeddings, overrides and isolates.
const UNSAFE = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Readonly<Record<string, string>> = { '\r': '\\r', '\n': '\\n', '\x1b': '\\e' };

/** `text` with every control character written as an escape (`\r`, `\n`, `\e`, `\xHH`, `\u{HHHH}`). */
export function printable(text: string): string {
  return text.replace(UNSAFE, (c) => {
    const named = NAMED[c];
    if (named) return named;
    const code = c.codePointAt(0)!;
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
}
