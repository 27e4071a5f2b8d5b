/**
 * What we pass to another server (the relay, `deliver`) is canonical: CRLF line ends only, then
 * dot-stuffed. Property tests (fast-check, fixed seed) over any bytes and any chunk cuts: the
 * result never holds anything that a server splitting lines at a bare LF or a bare CR would read
 * as the end of the data, and a canonical message comes through unchanged.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalLines, LineCanonicaliser } from '../../../lambda/core/smtp/canonical-lines';
import { DotStuffer } from '../../../lambda/core/smtp/dot-stuffing';

const b = (s: string) => Buffer.from(s, 'latin1');
const s = (buf: Buffer) => buf.toString('latin1');
const SEED = 20261201;
const RUNS = 300;

/** Feed `text` cut at `cuts` through a fresh writer; the whole wire, final dot included. */
function wire(text: Buffer, cuts: number[]): Buffer {
  // As deliver sends a stored message: canonical already (the store is), then stuffed.
  const lines = new LineCanonicaliser();
  const writer = new DotStuffer();
  const out: Buffer[] = [];
  let from = 0;
  for (const cut of [...cuts.filter((c) => c <= text.length).sort((x, y) => x - y), text.length]) {
    for (const piece of lines.push(text.subarray(from, cut))) out.push(...writer.push(piece));
    from = cut;
  }
  for (const piece of lines.end()) out.push(...writer.push(piece));
  out.push(writer.end());
  return Buffer.concat(out);
}

/** Bytes where the awkward ones are frequent. */
const messageBytes = fc
  .array(fc.oneof(fc.constantFrom(0x0d, 0x0a, 0x2e, 0x0d, 0x0a, 0x2e, 0x41), fc.integer({ min: 0, max: 255 })), { maxLength: 300 })
  .map((a) => Buffer.from(a));
const cutsOf = fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 6 });

/**
 * Where the dot of the first end-of-data line is, to a server that ends lines at CRLF only, at
 * LF (a trailing CR dropped), or at any of CR, LF and CRLF: -1 when none.
 */
const END_MARKS = {
  crlf: /(?:^|\r\n)\.\r\n/,
  lf: /(?:^|\n)\.\r?\n/,
  any: /(?:^|[\r\n])\.(?:\r\n|\r|\n)/,
};
function endsAt(data: string, mark: RegExp): number {
  const m = mark.exec(data);
  return m ? m.index + m[0].indexOf('.') : -1;
}

describe('LineCanonicaliser', () => {
  it.each([
    ['a bare LF', 'a\nb', 'a\r\nb'],
    ['a bare CR', 'a\rb', 'a\r\nb'],
    ['CRLF stays', 'a\r\nb\r\n', 'a\r\nb\r\n'],
    ['CR CR LF', 'a\r\r\nb', 'a\r\n\r\nb'],
    ['LF CR', 'a\n\rb', 'a\r\n\r\nb'],
    ['a CR at the end', 'a\r', 'a\r\n'],
    ['the smuggling pattern', 'x\n.\r\nMAIL FROM:<ceo@customer.test>\r\n', 'x\r\n.\r\nMAIL FROM:<ceo@customer.test>\r\n'],
  ])('%s', (_name, input, output) => {
    expect(s(canonicalLines(b(input)))).toBe(output);
  });

  it('is the same whatever the chunks, and only ever ends lines with CRLF (property)', () => {
    fc.assert(
      fc.property(messageBytes, cutsOf, (text, cuts) => {
        const whole = canonicalLines(text);
        const c = new LineCanonicaliser();
        const parts: Buffer[] = [];
        let from = 0;
        for (const cut of [...cuts.filter((x) => x <= text.length).sort((x, y) => x - y), text.length]) {
          parts.push(...c.push(text.subarray(from, cut)));
          from = cut;
        }
        parts.push(...c.end());
        const chunked = Buffer.concat(parts);
        expect(chunked.equals(whole)).toBe(true);
        // No CR without LF after it, no LF without CR before it.
        expect(/\r(?!\n)|(?<!\r)\n/.test(s(whole))).toBe(false);
        // Nothing but line ends changed.
        expect(s(whole).replace(/\r\n/g, '')).toBe(s(text).replace(/\r\n|\r|\n/g, ''));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('gives canonical text back unchanged, as slices of the input', () => {
    const text = b('Subject: x\r\n\r\n.line\r\nbody\r\n');
    const out = new LineCanonicaliser().push(text);
    expect(out).toHaveLength(1);
    expect(out[0]!.buffer).toBe(text.buffer);
  });
});

describe('a stored message on its way out in DATA (LineCanonicaliser, then DotStuffer)', () => {
  it('nothing that a server splitting at LF, at CR or at CRLF reads as the end of data comes before our final dot (property)', () => {
    fc.assert(
      fc.property(messageBytes, cutsOf, (text, cuts) => {
        const data = s(wire(text, cuts));
        // Our final dot is the last three bytes, and the data before it ends a line.
        expect(data.endsWith('\r\n.\r\n') || data === '.\r\n').toBe(true);
        const last = data.length - 3;
        expect(endsAt(data, END_MARKS.crlf)).toBe(last);
        expect(endsAt(data, END_MARKS.lf)).toBe(last);
        expect(endsAt(data, END_MARKS.any)).toBe(last);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('a canonical message round-trips: unstuffed, it is the text again', () => {
    fc.assert(
      fc.property(fc.array(fc.stringMatching(/^[.a-z ]{0,12}$/), { maxLength: 20 }), cutsOf, (lines, cuts) => {
        const text = b(lines.map((l) => `${l}\r\n`).join(''));
        const data = s(wire(text, cuts));
        const body = data.slice(0, -3).replace(/(^|\r\n)\./g, '$1');
        expect(body).toBe(s(text));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('the smuggling attempt of the issue leaves as one message with a stuffed dot line', () => {
    const attack = b('Subject: hi\r\n\r\ntext\n.\r\nMAIL FROM:<ceo@customer.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\nevil\r\n.\r\n');
    expect(s(wire(attack, [3, 17]))).toBe('Subject: hi\r\n\r\ntext\r\n..\r\nMAIL FROM:<ceo@customer.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\nevil\r\n..\r\n.\r\n');
  });
});
