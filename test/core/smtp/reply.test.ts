import { describe, expect, it } from 'vitest';
import { MAX_REPLY_LINE_BYTES, ReplyParser, replyText } from '../../../lambda/core/smtp/reply';

const feed = (p: ReplyParser, s: string) => p.push(Buffer.from(s, 'latin1'));

describe('ReplyParser', () => {
  it('parses a one-line reply and a bare code', () => {
    const p = new ReplyParser();
    expect(feed(p, '250 Queuing started\r\n221\r\n')).toEqual([
      { code: 250, lines: ['Queuing started'] },
      { code: 221, lines: [''] },
    ]);
  });

  it('joins a multi-line reply and waits for its last line', () => {
    const p = new ReplyParser();
    expect(feed(p, '250-mx.provider.test\r\n250-PIPELINING\r\n')).toEqual([]);
    const [reply] = feed(p, '250 ETRN\r\n');
    expect(reply).toEqual({ code: 250, lines: ['mx.provider.test', 'PIPELINING', 'ETRN'] });
    expect(replyText(reply!)).toBe('mx.provider.test\nPIPELINING\nETRN');
  });

  it('handles a reply split at every byte, and bare LF line ends', () => {
    const p = new ReplyParser();
    const out = [...'251 No messages\n250-a\r\n250 b\r\n'].flatMap((ch) => feed(p, ch));
    expect(out).toEqual([
      { code: 251, lines: ['No messages'] },
      { code: 250, lines: ['a', 'b'] },
    ]);
  });

  it('keeps bytes after the last line for the ATRN hand-over', () => {
    const p = new ReplyParser();
    feed(p, '250 OK now reversing the connection\r\nEHLO prov');
    expect(p.remainder().toString()).toBe('EHLO prov');
  });

  it('rejects garbage, a code change inside a reply, and codes outside 2xx-5xx', () => {
    expect(() => feed(new ReplyParser(), 'hello there\r\n')).toThrow(
      /not an SMTP reply line: "hello there"/,
    );
    expect(() => feed(new ReplyParser(), '250-a\r\n550 b\r\n')).toThrow(
      /reply code changed from 250 to 550/,
    );
    expect(() => feed(new ReplyParser(), '199 early\r\n')).toThrow(/not an SMTP reply line/);
    expect(() => feed(new ReplyParser(), '250x\r\n')).toThrow(/not an SMTP reply line/);
  });

  it('fails an endless line as soon as it passes 8 KiB, without waiting for its end', () => {
    const p = new ReplyParser();
    feed(p, `250 ${'x'.repeat(MAX_REPLY_LINE_BYTES - 10)}`);
    expect(() => feed(p, 'y'.repeat(20))).toThrow(/longer than 8192 bytes/);
  });

  it('accepts a line of exactly 8 KiB', () => {
    const text = 'x'.repeat(MAX_REPLY_LINE_BYTES - 4);
    expect(feed(new ReplyParser(), `250 ${text}\r\n`)[0]!.lines[0]).toBe(text);
  });

  it('accepts a line of exactly 8 KiB whose CR and LF arrive in different chunks', () => {
    const p = new ReplyParser();
    const text = 'x'.repeat(MAX_REPLY_LINE_BYTES - 4);
    expect(feed(p, `250 ${text}\r`)).toEqual([]);
    expect(feed(p, '\n')).toEqual([{ code: 250, lines: [text] }]);
  });

  it('still refuses a line one byte over 8 KiB when its CR ends a chunk', () => {
    expect(() => feed(new ReplyParser(), `250 ${'x'.repeat(MAX_REPLY_LINE_BYTES - 3)}\r`)).toThrow(
      /longer than 8192 bytes/,
    );
  });

  it('caps the number of lines in one reply', () => {
    const p = new ReplyParser();
    expect(() => feed(p, '250-x\r\n'.repeat(200))).toThrow(/more than 128 lines/);
  });
});
