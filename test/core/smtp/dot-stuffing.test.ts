/**
 * RFC 5321 4.5.2 transparency with no socket: every way a message can be cut into chunks must
 * give back the same bytes and find the end at the same place.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DataUnstuffer, DotStuffer } from '../../../lambda/core/smtp/dot-stuffing';
import { stuff } from '../../../peers/atrn-provider';

/** Feed `wire` cut at `cuts`; return the content, whether it ended, and the bytes after the end. */
function unstuff(
  wire: Buffer,
  cuts: number[] = [],
): { content: Buffer; ended: boolean; rest: Buffer } {
  const u = new DataUnstuffer();
  const out: Buffer[] = [];
  let from = 0;
  for (const cut of [...cuts, wire.length]) {
    const piece = u.push(wire.subarray(from, cut));
    out.push(...piece.content);
    if (piece.ended)
      return {
        content: Buffer.concat(out),
        ended: true,
        rest: Buffer.concat([piece.rest, wire.subarray(cut)]),
      };
    from = cut;
  }
  return { content: Buffer.concat(out), ended: false, rest: Buffer.alloc(0) };
}

const b = (s: string) => Buffer.from(s, 'latin1');
const s = (buf: Buffer) => buf.toString('latin1');

describe('DataUnstuffer', () => {
  it.each([
    ['an empty message', '.\r\n', ''],
    ['one line', 'hello\r\n.\r\n', 'hello\r\n'],
    ['a stuffed dot line', '..\r\n.\r\n', '.\r\n'],
    ['a stuffed leading dot', '..hidden\r\n.\r\n', '.hidden\r\n'],
    ['an unstuffed leading dot (RFC: first dot deleted)', '.x\r\n.\r\n', 'x\r\n'],
    ['a dot after a bare LF is text', 'a\n.\r\nb\r\n.\r\n', 'a\n.\r\nb\r\n'],
    ['".\\r" not followed by LF', 'a\r\n.\rb\r\n.\r\n', 'a\r\n\rb\r\n'],
    ['a dot in the middle of a line', 'a.b\r\n.\r\n', 'a.b\r\n'],
    ['an 8-bit line', '\xe9\xff\r\n.\r\n', '\xe9\xff\r\n'],
  ])('%s', (_name, wire, content) => {
    const whole = unstuff(b(wire));
    expect(whole.ended).toBe(true);
    expect(s(whole.content)).toBe(content);
    for (let cut = 0; cut <= wire.length; cut++) {
      const split = unstuff(b(wire), [cut]);
      expect(s(split.content), `cut at ${cut}`).toBe(content);
      expect(split.ended).toBe(true);
    }
  });

  it("hands back what follows the final dot: pipelined commands, INetSim's stray empty line", () => {
    const r = unstuff(b('text\r\n.\r\n\r\nQUIT\r\n'), [7, 9]);
    expect(s(r.content)).toBe('text\r\n');
    expect(s(r.rest)).toBe('\r\nQUIT\r\n');
  });

  it('does not end on "\\n.\\r\\n" after a bare LF, nor on a final dot without its CRLF', () => {
    expect(unstuff(b('a\n.\r\n')).ended).toBe(false);
    expect(unstuff(b('a\r\n.')).ended).toBe(false);
    expect(unstuff(b('a\r\n.\r')).ended).toBe(false);
  });

  it('round-trips random messages through the reference stuffer, split every way in two and at random', () => {
    const alphabet = b('..\r\n\r\n\n\r.ab');
    for (let round = 0; round < 200; round++) {
      const raw = randomBytes(1 + (round % 40));
      const text = Buffer.from(raw.map((x) => alphabet[x % alphabet.length]!));
      const wire = stuff(text);
      const expected = s(text).endsWith('\r\n') || text.length === 0 ? s(text) : `${s(text)}\r\n`;
      for (let cut = 0; cut <= wire.length; cut++) {
        const r = unstuff(wire, [cut]);
        expect(r.ended).toBe(true);
        expect(s(r.content)).toBe(expected);
        expect(r.rest.length).toBe(0);
      }
      const cuts = [
        ...new Set(Array.from({ length: 5 }, () => Math.floor(Math.random() * wire.length))),
      ].sort((x, y) => x - y);
      expect(s(unstuff(wire, cuts).content)).toBe(expected);
    }
  });

  it('returns slices of its input, not copies (memory does not grow with the message)', () => {
    const chunk = b(`${'x'.repeat(1000)}\r\n`);
    const u = new DataUnstuffer();
    const piece = u.push(chunk);
    expect(piece.content).toHaveLength(1);
    expect(piece.content[0]!.buffer).toBe(chunk.buffer);
  });
});

describe('DotStuffer', () => {
  it('doubles leading dots, ends with CRLF "." CRLF, and makes bare LF and CR into CRLF (no smuggling through "\\n.\\r\\n")', () => {
    const st = new DotStuffer();
    const out = Buffer.concat([
      ...st.push(b('.a\r\nb.\r\n')),
      ...st.push(b('.\r\nc\n.\r\nMAIL FROM:<ceo@customer.test>\r')),
      ...st.push(b('.d\r')),
      st.end(),
    ]);
    expect(s(out)).toBe(
      '..a\r\nb.\r\n..\r\nc\r\n..\r\nMAIL FROM:<ceo@customer.test>\r\n..d\r\n.\r\n',
    );
  });

  it.each([
    [
      'the smuggling attempt',
      'Subject: hi\r\n\r\ntext\n.\r\nMAIL FROM:<ceo@customer.test>\r\nDATA\r\nevil\r\n.\r\n',
      'Subject: hi\r\n\r\ntext\r\n..\r\nMAIL FROM:<ceo@customer.test>\r\nDATA\r\nevil\r\n..\r\n.\r\n',
    ],
    ['the same after a bare CR', 'a\r.\r\nb', 'a\r\n..\r\nb\r\n.\r\n'],
    ['CR CR LF, LF CR', 'a\r\r\nb\n\rc', 'a\r\n\r\nb\r\n\r\nc\r\n.\r\n'],
    ['a CR as the last byte', 'a\r', 'a\r\n.\r\n'],
    ['an LF as the last byte', 'a\n', 'a\r\n.\r\n'],
    ['a dot line last', 'a\r\n.', 'a\r\n..\r\n.\r\n'],
    ['an empty message', '', '.\r\n'],
  ])(
    '%s: the same wire however it is cut in two or three (a CR at the end of a chunk included)',
    (_name, text, wire) => {
      const input = b(text);
      const send = (cuts: number[]) => {
        const st = new DotStuffer();
        const out: Buffer[] = [];
        let from = 0;
        for (const cut of [...cuts, input.length]) {
          out.push(...st.push(input.subarray(from, cut)));
          from = cut;
        }
        return s(Buffer.concat([...out, st.end()]));
      };
      for (let i = 0; i <= input.length; i++) {
        for (let j = i; j <= input.length; j++)
          expect(send([i, j]), `cut at ${i} and ${j}`).toBe(wire);
      }
    },
  );

  it('round-trips through the unstuffer however the input is cut', () => {
    const alphabet = b('..\r\n\r\nx');
    for (let round = 0; round < 200; round++) {
      const text = Buffer.from(
        randomBytes(1 + (round % 30)).map((x) => alphabet[x % alphabet.length]!),
      );
      const cut = Math.floor(Math.random() * text.length);
      const st = new DotStuffer();
      const wire = Buffer.concat([
        ...st.push(text.subarray(0, cut)),
        ...st.push(text.subarray(cut)),
        st.end(),
      ]);
      const canonical = b(s(text).replace(/\r\n|\r|\n/g, '\r\n'));
      expect(s(wire)).toBe(s(stuff(canonical)));
      const expected = s(canonical).endsWith('\r\n') ? s(canonical) : `${s(canonical)}\r\n`;
      expect(s(unstuff(wire).content)).toBe(expected);
    }
  });
});
