/**
 * Where a JSON text first goes wrong, as line:column and a short description that never quotes
 * the text itself. JSON.parse's own message quotes the characters around the error (and its
 * wording and position format change between Node versions), which must never happen for a
 * secrets file: a stray quote there would print part of a password.
 *
 * A small validating scanner of RFC 8259, run only after JSON.parse has already refused the text.
 */
export interface JsonSyntaxProblem {
  /** 1-based. */
  readonly line: number;
  /** 1-based, in characters. */
  readonly column: number;
  readonly problem: string;
}

const MAX_DEPTH = 512;

class Stop {
  constructor(
    readonly at: number,
    readonly problem: string,
  ) {}
}

/** The first syntax error of `text`, or null when it is valid JSON. */
export function jsonSyntaxProblem(text: string): JsonSyntaxProblem | null {
  let i = 0;
  const fail = (problem: string, at = i): never => {
    throw new Stop(at, problem);
  };
  const space = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const describe = (expected: string) =>
    i >= text.length
      ? `the text ends where ${expected} was expected`
      : `${expected} was expected here`;

  const string = () => {
    const start = i++;
    for (;;) {
      if (i >= text.length) fail('a string is not closed (a missing ")', start);
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20)
        fail(
          'a line break or control character inside a string (strings stay on one line; write \\n)',
        );
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === 'u') {
          if (!/^[0-9A-Fa-f]{4}$/.test(text.slice(i + 2, i + 6)))
            fail('a \\u escape needs four hexadecimal digits');
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) {
          i += 2;
        } else {
          fail('an unknown escape after \\ (only \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)');
        }
        continue;
      }
      i++;
    }
  };

  const number = () => {
    const match = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (!match || match[0] === '-') fail('a number is malformed');
    i += match![0].length;
  };

  const value = (depth: number): void => {
    if (depth > MAX_DEPTH) fail('the document is nested too deeply');
    space();
    const c = text[i];
    if (c === '{') {
      i++;
      space();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        space();
        if (text[i] !== '"')
          fail(
            text[i] === '}'
              ? 'a comma before } (a trailing comma is not allowed)'
              : describe('a field name in double quotes'),
          );
        string();
        space();
        if (text[i] !== ':') fail(describe('":" after the field name'));
        i++;
        value(depth + 1);
        space();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return;
        }
        fail(describe('"," or "}"'));
      }
    }
    if (c === '[') {
      i++;
      space();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        space();
        if (text[i] === ']') fail('a comma before ] (a trailing comma is not allowed)');
        value(depth + 1);
        space();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return;
        }
        fail(describe('"," or "]"'));
      }
    }
    if (c === '"') return string();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return number();
    for (const word of ['true', 'false', 'null']) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return;
      }
    }
    if (c === "'") fail('strings and field names take double quotes, not single');
    fail(describe('a value (an object, array, string, number, true, false or null)'));
  };

  try {
    value(0);
    space();
    if (i < text.length) fail('more text after the end of the JSON value');
    return null;
  } catch (e) {
    if (!(e instanceof Stop)) throw e;
    const before = text.slice(0, e.at);
    const line = before.split('\n').length;
    const column = e.at - (before.lastIndexOf('\n') + 1) + 1;
    return { line, column, problem: e.problem };
  }
}
