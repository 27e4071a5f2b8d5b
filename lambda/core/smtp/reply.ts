/**
 * Incremental SMTP reply parser (RFC 5321 section 4.2), tested with strings alone.
 *
 * A reply is one or more lines `NNN-text` ending with `NNN text` (or a bare `NNN`). Every line of
 * one reply must carry the same code (4.2.1). Bytes are split on LF; a CR before it is dropped, and
 * a bare LF is tolerated because real servers send one now and then.
 *
 * Bounds: a line longer than MAX_REPLY_LINE_BYTES is an error as soon as the limit is passed (not
 * when its end finally arrives, which from a hostile host may be never), and so is a reply of more
 * than MAX_REPLY_LINES lines. Memory held is therefore at most one line plus one reply.
 */
import { ProtocolError } from '../errors';

/** A reply line is at most 8 KiB (README "Bounds"). RFC 5321 4.5.3.1.5 sets 512; real servers exceed it. */
export const MAX_REPLY_LINE_BYTES = 8192;
/** EHLO replies are the longest in practice, a few dozen lines at most. */
export const MAX_REPLY_LINES = 128;

export interface SmtpReply {
  readonly code: number;
  /** The text of each line, without the code and separator. */
  readonly lines: readonly string[];
}

export function replyText(reply: SmtpReply): string {
  return reply.lines.join('\n');
}

const LINE = /^([2-5][0-9][0-9])(?:([ -])(.*))?$/s;

export class ReplyParser {
  private partial: Buffer = Buffer.alloc(0);
  private current: { code: number; lines: string[] } | null = null;

  /** Feed bytes; returns every reply completed by them. Throws ProtocolError on garbage. */
  push(chunk: Buffer): SmtpReply[] {
    const replies: SmtpReply[] = [];
    let data = this.partial.length ? Buffer.concat([this.partial, chunk]) : chunk;
    let lf: number;
    while ((lf = data.indexOf(0x0a)) !== -1) {
      const end = lf > 0 && data[lf - 1] === 0x0d ? lf - 1 : lf;
      if (end > MAX_REPLY_LINE_BYTES) throw this.overlong();
      const reply = this.line(data.subarray(0, end).toString('utf8'));
      if (reply) replies.push(reply);
      data = data.subarray(lf + 1);
    }
    // A CR at the very end may be the first half of the CRLF whose LF comes in the next chunk: it
    // is not part of the line, so a line of exactly the limit split between CR and LF is accepted.
    const pending = data.length > 0 && data[data.length - 1] === 0x0d ? data.length - 1 : data.length;
    if (pending > MAX_REPLY_LINE_BYTES) throw this.overlong();
    // Copy, so a large chunk's buffer is not kept alive by a small remainder.
    this.partial = Buffer.from(data);
    return replies;
  }

  /** Bytes received after the last complete line (handed over after the ATRN turn). */
  remainder(): Buffer {
    return this.partial;
  }

  private line(text: string): SmtpReply | null {
    const m = LINE.exec(text);
    if (!m) {
      throw new ProtocolError(`not an SMTP reply line: ${JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text)}`);
    }
    const code = Number(m[1]);
    const more = m[2] === '-';
    const body = m[3] ?? '';
    if (this.current && this.current.code !== code) {
      throw new ProtocolError(`reply code changed from ${this.current.code} to ${code} inside one reply (RFC 5321 4.2.1)`);
    }
    const current = this.current ?? { code, lines: [] };
    current.lines.push(body);
    if (current.lines.length > MAX_REPLY_LINES) {
      throw new ProtocolError(`reply has more than ${MAX_REPLY_LINES} lines`);
    }
    if (more) {
      this.current = current;
      return null;
    }
    this.current = null;
    return current;
  }

  private overlong(): ProtocolError {
    return new ProtocolError(`reply line longer than ${MAX_REPLY_LINE_BYTES} bytes`);
  }
}
