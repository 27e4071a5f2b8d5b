/**
 * The outgoing stuffer's search (lambda/core/smtp/stuffing-scan.ts) on chunks long enough for its
 * WebAssembly SIMD path and its 64 KiB windows: long runs of text with line ends, dots and bare
 * CRs and LFs placed anywhere, across the windows' edges and the chunks' cuts.
 * - the WebAssembly search reports exactly the places the JavaScript one does;
 * - what the stuffer sends is the message with CRLF line ends and its line-leading dots doubled,
 *   byte for byte, however the message is cut.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DotStuffer } from '../../../lambda/core/smtp/dot-stuffing';
import { needsWork, needsWorkJs, newWindow } from '../../../lambda/core/smtp/stuffing-scan';
import { checkProperty } from '../../support/fuzz';

const WINDOW = 64 * 1024;

/** Long text: runs of plain bytes (some ending right at a window's edge) between the bytes that matter. */
const longText = fc
  .array(
    fc.oneof(
      fc.constantFrom('\r\n', '\r\n.', '\r', '\n', '.', '\n.', '\r.', '\r\r\n', '\n\r'),
      fc.integer({ min: 1, max: 3 * WINDOW }).map((n) => 'x'.repeat(n)),
      fc.integer({ min: -3, max: 3 }).map((d) => 'y'.repeat(WINDOW + d)),
    ),
    { minLength: 1, maxLength: 12 },
  )
  .map((parts) => Buffer.from(parts.join(''), 'latin1'));

/** Every place needsWork reports, searching on from just after each one (as the stuffer does). */
function places(search: (from: number) => number): number[] {
  const out: number[] = [];
  for (let at = search(0); at !== -1; at = search(at + 1)) out.push(at);
  return out;
}

/** The stuffer's output, by a model: CRLF line ends, then a dot before each line's leading dot. */
function reference(text: Buffer): string {
  const crlf = text.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n');
  const stuffed = crlf.replace(/(^|\r\n)\./g, '$1..');
  return stuffed === '' || stuffed.endsWith('\r\n') ? `${stuffed}.\r\n` : `${stuffed}\r\n.\r\n`;
}

describe('the stuffer on long text (its WebAssembly search)', () => {
  it('finds exactly the places the JavaScript search finds, from any start in any slice', async () => {
    await checkProperty(
      'stuffing scan: WebAssembly = JavaScript',
      fc.property(longText, fc.nat(), fc.nat(), (text, a, b) => {
        // A slice at any offset of its buffer: the JavaScript search reads aligned words.
        const start = a % Math.min(text.length, 7);
        const chunk = text.subarray(start, start + ((b % text.length) + 1));
        const window = newWindow();
        const simd = places((from) => needsWork(chunk, from, window));
        expect(simd).toEqual(places((from) => needsWorkJs(chunk, from)));
      }),
      { ci: 60 },
    );
  });

  it('sends the message canonical and stuffed, byte for byte, however it is cut', async () => {
    await checkProperty(
      'stuffer = model on long text',
      fc.property(longText, fc.array(fc.nat(), { maxLength: 4 }), (text, cuts) => {
        const at = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((x, y) => x - y);
        const stuffer = new DotStuffer();
        const out: Buffer[] = [];
        let from = 0;
        for (const cut of [...at, text.length]) {
          out.push(...stuffer.push(text.subarray(from, cut)));
          from = cut;
        }
        out.push(stuffer.end());
        expect(Buffer.concat(out).toString('latin1')).toBe(reference(text));
      }),
      { ci: 60 },
    );
  });

  it('canonical lines need no work but a line-leading dot', () => {
    const line = `${'x'.repeat(76)}\r\n`;
    const chunk = Buffer.from(`${line.repeat(4000)}.dot\r\n${line.repeat(4000)}`, 'latin1');
    const window = newWindow();
    expect(places((from) => needsWork(chunk, from, window))).toEqual([4000 * line.length - 2]);
  });
});
