/**
 * The command grammar we serve after the turn, as properties: any line a provider may send (any
 * bytes, as the stream decodes them) gives a verb and either a parsed path or a bounded 501, never
 * a throw, never an address longer than RFC 5321 allows, never a control character in it.
 */
import fc from 'fast-check';
import { describe, it } from 'vitest';
import {
  MAX_PATH_LENGTH,
  parseMailFrom,
  parseRcptTo,
  printable,
  splitCommand,
} from '../../../lambda/core/smtp/command';
import { checkProperty } from '../../support/fuzz';

/** What the provider stream hands over: up to a command line's worth of any bytes, decoded as UTF-8. */
const anyLine = fc.oneof(
  fc.uint8Array({ maxLength: 2048 }).map((bytes) => Buffer.from(bytes).toString('utf8')),
  fc.string({ unit: 'binary', maxLength: 600 }),
  // Near misses: the grammar's own pieces in any order.
  fc
    .array(
      fc.constantFrom(
        'MAIL',
        'RCPT',
        ' ',
        '\t',
        'FROM:',
        'TO:',
        '<',
        '>',
        '"',
        '\\',
        '@',
        'a',
        '.',
        '=',
        'SIZE',
        'BODY',
        '8BITMIME',
        '@x,@y:',
        '\r',
        '\x00',
        'é',
      ),
      { maxLength: 60 },
    )
    .map((p) => p.join('')),
);

type Parsed = ReturnType<typeof parseMailFrom>;

function bounded(result: Parsed): boolean {
  if (!result.ok)
    return result.code === 501 && result.text.length <= 120 && !/[\r\n]/.test(result.text);
  if (result.address.length + 2 > MAX_PATH_LENGTH || /[\x00-\x1f\x7f]/.test(result.address))
    return false;
  for (const [key, value] of result.params) {
    if (!/^[A-Z0-9][A-Z0-9-]*$/.test(key)) return false;
    if (value !== true && !/^[\x21-\x3c\x3e-\x7e]+$/.test(value)) return false;
  }
  return true;
}

describe('command grammar properties', () => {
  it('any line: a verb, then a parsed path or a bounded 501, never a throw', async () => {
    await checkProperty(
      'command grammar total and bounded',
      fc.property(anyLine, (line) => {
        const { verb, args } = splitCommand(line);
        if (!/^(?:[A-Z]+|\?|)$/.test(verb) || typeof args !== 'string') return false;
        const shown = printable(line);
        if (shown.length > 203 || /[^\x20-\x7e]/.test(shown)) return false;
        return (
          bounded(parseMailFrom(args)) &&
          bounded(parseRcptTo(args)) &&
          bounded(parseMailFrom(line)) &&
          bounded(parseRcptTo(line))
        );
      }),
      { ci: 2000 },
    );
  });

  it('a well-formed path with parameters parses to the same address and keywords', async () => {
    const local = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,40}$/);
    const domain = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]{1,10}){0,3}$/);
    const param = fc.tuple(
      fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9-]{0,10}$/),
      fc.option(fc.stringMatching(/^[\x21-\x3c\x3e-\x7e]{1,20}$/), { nil: undefined }),
    );
    await checkProperty(
      'well-formed paths parse',
      fc.property(
        local,
        domain,
        fc.uniqueArray(param, { selector: ([k]) => k.toUpperCase(), maxLength: 4 }),
        fc.constantFrom(' ', '', '\t'),
        (l, d, params, gap) => {
          const address = `${l}@${d}`;
          const tail = params.map(([k, v]) => (v === undefined ? k : `${k}=${v}`)).join(' ');
          const parsed = parseMailFrom(`FROM:${gap}<${address}>${tail ? ` ${tail}` : ''}`);
          if (address.length + 2 > MAX_PATH_LENGTH) return !parsed.ok;
          return (
            parsed.ok &&
            parsed.address === address &&
            [...parsed.params.keys()].join() === params.map(([k]) => k.toUpperCase()).join()
          );
        },
      ),
      { ci: 500 },
    );
  });
});
