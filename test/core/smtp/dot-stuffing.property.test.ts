/**
 * Transparency (RFC 5321 4.5.2) as properties, for any message and any chunk cuts:
 * - what we receive: the provider's stuffed data unstuffs to the message, the end found at the
 *   final dot and nowhere else, the bytes after it handed back untouched;
 * - what we send (the relay): nothing in it reads as the end of the data to a server that splits
 *   lines at LF, CR or CRLF (the SMTP smuggling attack of 2023), and it unstuffs to the message
 *   with its line ends made CRLF.
 */
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { DataUnstuffer, DotStuffer } from '../../../lambda/core/smtp/dot-stuffing';
import { stuff } from '../../../peers/atrn-provider';
import { checkProperty } from '../../support/fuzz';

const s = (buf: Buffer) => buf.toString('latin1');

/** Messages made of what transparency is about: dots, CRs, LFs, the end mark itself. */
const message = fc
  .array(
    fc.oneof(
      fc.constantFrom(
        '.',
        '..',
        '\r',
        '\n',
        '\r\n',
        '\r\n.\r\n',
        '\n.\r\n',
        '.\r\n',
        '\r.\r',
        'text',
        ' ',
        '\x00',
        '\xff',
      ),
      fc.string({ maxLength: 8 }),
    ),
    { maxLength: 40 },
  )
  .map((parts) => Buffer.from(parts.join(''), 'latin1'));

/** Cut `data` at the given points (any number, any place, empty pieces included). */
function pieces(data: Buffer, cuts: number[]): Buffer[] {
  const at = cuts.map((c) => c % (data.length + 1)).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const cut of [...at, data.length]) {
    out.push(data.subarray(from, cut));
    from = cut;
  }
  return out;
}

function unstuff(chunks: Buffer[]): { content: string; ended: boolean; rest: string } {
  const u = new DataUnstuffer();
  let content = '';
  for (const [i, chunk] of chunks.entries()) {
    const piece = u.push(chunk);
    content += piece.content.map(s).join('');
    if (piece.ended)
      return {
        content,
        ended: true,
        rest:
          s(piece.rest) +
          chunks
            .slice(i + 1)
            .map(s)
            .join(''),
      };
  }
  return { content, ended: false, rest: '' };
}

const withFinalLineEnd = (text: string) =>
  text === '' || text.endsWith('\r\n') ? text : `${text}\r\n`;
const cuts = fc.array(fc.nat(), { maxLength: 8 });

describe('transparency properties', () => {
  it('what we receive: any message, stuffed by the provider and cut anywhere, comes back byte for byte, with what followed the dot', async () => {
    await checkProperty(
      'unstuff(provider stuffing) round trip',
      fc.property(
        message,
        cuts,
        fc.constantFrom('', 'QUIT\r\n', '\r\n', 'MAIL FROM:<a@b>\r\n'),
        (text, at, after) => {
          const wire = Buffer.concat([stuff(text), Buffer.from(after, 'latin1')]);
          const got = unstuff(pieces(wire, at));
          return got.ended && got.content === withFinalLineEnd(s(text)) && got.rest === after;
        },
      ),
      { ci: 400 },
    );
  });

  it('what we send: no line "." between any of CR, LF and CRLF before the final dot, and it unstuffs to the message with CRLF line ends', async () => {
    await checkProperty(
      'stuffer safe for naive servers, round trip',
      fc.property(message, cuts, (text, at) => {
        const stuffer = new DotStuffer();
        const out = s(
          Buffer.concat([...pieces(text, at).flatMap((p) => stuffer.push(p)), stuffer.end()]),
        );
        // A server splitting at any line end sees "." alone only as the last line.
        const ends = [...out.matchAll(/(?:^|[\r\n])\.(?=[\r\n])/g)].map(
          (m) => m.index + m[0].length - 1,
        );
        if (ends.length !== 1 || ends[0] !== out.length - 3 || !out.endsWith('.\r\n')) return false;
        // Only CRLF line ends leave us.
        if (/\r(?!\n)|(?<!\r)\n/.test(out)) return false;
        const back = unstuff(pieces(Buffer.from(out, 'latin1'), at));
        return (
          back.ended &&
          back.rest === '' &&
          back.content === withFinalLineEnd(s(text).replace(/\r\n|\r|\n/g, '\r\n'))
        );
      }),
      { ci: 400 },
    );
  });
});
