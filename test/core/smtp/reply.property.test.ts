/**
 * The reply parser and the command grammar against any input: what a hostile or broken peer can
 * send. Bytes are built from pieces that matter (reply lines, continuation lines, lines at the
 * 8 KiB limit, CR, LF, garbage, NUL, non-ASCII) and from raw random bytes, then cut into chunks
 * at random places, as TCP may deliver them.
 *
 * Invariants:
 * - the same bytes give the same replies and the same error whatever the chunking;
 * - an error is a ProtocolError with a short message, never another kind of throw;
 * - memory stays within the caps after every chunk (one partial line, one reply of at most 128
 *   lines, each line at most 8 KiB);
 * - every reply has a code 200-599 and 1..128 lines.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../../lambda/core/errors';
import {
  MAX_PATH_LENGTH,
  parseMailFrom,
  parseRcptTo,
  printable,
  splitCommand,
} from '../../../lambda/core/smtp/command';
import {
  MAX_REPLY_LINE_BYTES,
  MAX_REPLY_LINES,
  ReplyParser,
  type SmtpReply,
} from '../../../lambda/core/smtp/reply';
import { checkProperty } from '../../support/fuzz';

const code = fc.integer({ min: 100, max: 699 }).map(String);
const goodCode = fc.integer({ min: 200, max: 599 }).map(String);
const text = fc.string({
  maxLength: 40,
  unit: fc.constantFrom(...'abc XYZ.-:;=<>@\t\x00\x7f\u00e9'),
});
const eol = fc.constantFrom('\r\n', '\n', '\r', '\r\r\n', '');

/** Pieces of a reply stream: mostly well-formed lines, some near the limits, some junk. */
const piece = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.tuple(goodCode, fc.constantFrom(' ', '-'), text, eol).map((p) => p.join('')),
  },
  {
    weight: 2,
    arbitrary: fc.tuple(goodCode, fc.constantFrom(' ', '-'), eol).map((p) => p.join('')),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(code, fc.constantFrom(' ', '-', 'x', ''), text, eol).map((p) => p.join('')),
  },
  {
    weight: 2,
    // Lines around the 8 KiB limit (most often exactly at it), with their CR and LF.
    arbitrary: fc
      .tuple(
        goodCode,
        fc.constantFrom(0, 0, 0, -1, 1, -2, 2),
        fc.constantFrom('\r\n', '\r\n', '\n', '\r', ''),
      )
      .map(([c, delta, end]) => `${c} ${'x'.repeat(MAX_REPLY_LINE_BYTES - 4 + delta)}${end}`),
  },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 140 }).map((n) => '250-x\r\n'.repeat(n)) },
  { weight: 1, arbitrary: text },
);

const stream = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .array(piece, { maxLength: 12 })
      .map((parts) => Buffer.from(parts.join(''), 'latin1')),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) },
);

/**
 * Cut a buffer at the given positions (any order, duplicates allowed: empty chunks too), and
 * with `afterCr` also right after every CR, where a CRLF split between segments hides.
 */
function cut(bytes: Buffer, cuts: readonly number[], afterCr = false): Buffer[] {
  const positions = cuts.map((c) => c % (bytes.length + 1));
  if (afterCr) {
    for (const [i, b] of bytes.entries()) if (b === 0x0d) positions.push(i + 1);
  }
  const at = [...new Set(positions)].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const c of at) {
    chunks.push(bytes.subarray(from, c));
    from = c;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}

interface Parsed {
  readonly replies: SmtpReply[];
  readonly error: string | null;
  readonly remainder: string | null;
}

/** Feed chunks until the first error, checking the caps after every chunk. */
function parse(chunks: readonly Buffer[]): Parsed {
  const parser = new ReplyParser();
  const replies: SmtpReply[] = [];
  for (const chunk of chunks) {
    let read;
    try {
      read = parser.read(chunk);
    } catch (e) {
      throw new Error(`a throw instead of a reported error: ${String(e)}`);
    }
    replies.push(...read.replies);
    if (read.error) {
      if (!(read.error instanceof ProtocolError))
        throw new Error(`an error of another kind: ${String(read.error)}`);
      if (read.error.message.length > 200)
        throw new Error(`an unbounded error message (${read.error.message.length} characters)`);
      return { replies, error: read.error.message, remainder: null };
    }
    // One partial line (and its CR) at most is kept between chunks.
    if (parser.pendingBytes > MAX_REPLY_LINE_BYTES + 1)
      throw new Error(`kept ${parser.pendingBytes} bytes`);
  }
  return { replies, error: null, remainder: parser.remainder().toString('latin1') };
}

describe('reply parser against any bytes in any chunks', () => {
  it('gives the same replies and the same error whatever the chunking, within its caps', async () => {
    await checkProperty(
      'reply parser: chunking',
      fc.property(
        stream,
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.boolean(),
        (bytes, cuts, afterCr) => {
          const whole = parse([bytes]);
          const chunked = parse(cut(bytes, cuts, afterCr));
          for (const reply of chunked.replies) {
            expect(reply.code).toBeGreaterThanOrEqual(200);
            expect(reply.code).toBeLessThanOrEqual(599);
            expect(reply.lines.length).toBeGreaterThanOrEqual(1);
            expect(reply.lines.length).toBeLessThanOrEqual(MAX_REPLY_LINES);
            for (const line of reply.lines)
              expect(Buffer.byteLength(line, 'latin1')).toBeLessThanOrEqual(MAX_REPLY_LINE_BYTES);
          }
          expect(chunked).toEqual(whole);
        },
      ),
      { ci: 400 },
    );
  });

  it('one byte at a time gives what one chunk gives', async () => {
    await checkProperty(
      'reply parser: byte by byte',
      fc.property(stream, (bytes) => {
        expect(parse([...bytes].map((b) => Buffer.from([b])))).toEqual(parse([bytes]));
      }),
      { ci: 100 },
    );
  });
});

describe('command grammar against any line', () => {
  const line = fc.oneof(
    fc.string({ maxLength: 400 }),
    fc
      .tuple(
        fc.constantFrom('FROM:', 'TO:', 'from: ', 'To:\t', 'FROM:<', 'TO:<@a,@b:'),
        fc.string({ maxLength: 300, unit: fc.constantFrom(...'ab@."\\<> =\t\r\n\x00\x7f-+') }),
        fc.constantFrom('>', '> BODY=8BITMIME', '> SIZE=10 X', '', '>>', '> =x'),
      )
      .map((p) => p.join('')),
  );

  it('never throws; a path it accepts is bounded and has no control characters', async () => {
    await checkProperty(
      'command grammar',
      fc.property(line, (args) => {
        const split = splitCommand(args);
        expect(typeof split.verb).toBe('string');
        for (const result of [parseMailFrom(args), parseRcptTo(args)]) {
          if (result.ok) {
            expect(result.address.length + 2).toBeLessThanOrEqual(MAX_PATH_LENGTH);
            expect(result.address).not.toMatch(/[\x00-\x1f\x7f]/);
          } else {
            expect(result.code).toBe(501);
            expect(result.text.length).toBeLessThan(120);
          }
        }
        const shown = printable(args);
        expect(shown).toMatch(/^[\x20-\x7e]*(\.\.\.)?$/);
        expect(shown.length).toBeLessThanOrEqual(203);
      }),
      { ci: 400 },
    );
  });
});
