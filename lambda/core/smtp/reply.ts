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
  /** The partial line: chunks kept as they came, joined only once its LF arrives. */
  private held: Buffer[] = [];
  private heldBytes = 0;
  private current: { code: number; lines: string[] } | null = null;
  private failure: ProtocolError | null = null;

  /**
   * Feed bytes: every reply they complete, and the error that stopped the parse, if any. Replies
   * completed before the error in the same chunk are kept, so that what a peer said does not
   * depend on how TCP cut it into segments. After an error the parser takes nothing more.
   * Work is linear in the bytes received, however small the chunks (a peer dripping one byte per
   * segment does not make each byte cost a copy of the partial line).
   */
  read(chunk: Buffer): { replies: SmtpReply[]; error: ProtocolError | null } {
    const replies: SmtpReply[] = [];
    if (this.failure) return { replies, error: this.failure };
    try {
      if (chunk.indexOf(0x0a) === -1) {
        // No line ends here: keep the bytes (copied, so a large chunk's buffer is not pinned).
        if (chunk.length) this.held.push(Buffer.from(chunk));
        this.heldBytes += chunk.length;
        this.checkPending();
        return { replies, error: null };
      }
      let data = this.held.length ? Buffer.concat([...this.held, chunk]) : chunk;
      this.held = [];
      this.heldBytes = 0;
      let lf: number;
      while ((lf = data.indexOf(0x0a)) !== -1) {
        const end = lf > 0 && data[lf - 1] === 0x0d ? lf - 1 : lf;
        if (end > MAX_REPLY_LINE_BYTES) throw this.overlong();
        const reply = this.line(data.subarray(0, end).toString('utf8'));
        if (reply) replies.push(reply);
        data = data.subarray(lf + 1);
      }
      if (data.length) this.held.push(Buffer.from(data));
      this.heldBytes = data.length;
      this.checkPending();
    } catch (e) {
      this.failure = e as ProtocolError;
      this.held = [];
      this.heldBytes = 0;
      this.current = null;
      return { replies, error: this.failure };
    }
    return { replies, error: null };
  }

  /**
   * The partial line may not pass the limit. A CR at its very end may be the first half of a
   * CRLF whose LF comes in the next chunk: not part of the line, so a line of exactly the limit
   * split between its CR and LF is accepted.
   */
  private checkPending(): void {
    const last = this.held.at(-1);
    const pending = last && last[last.length - 1] === 0x0d ? this.heldBytes - 1 : this.heldBytes;
    if (pending > MAX_REPLY_LINE_BYTES) throw this.overlong();
  }

  /** Feed bytes; returns every reply completed by them. Throws the ProtocolError read() reports. */
  push(chunk: Buffer): SmtpReply[] {
    const { replies, error } = this.read(chunk);
    if (error) throw error;
    return replies;
  }

  /** Bytes received after the last complete line (handed over after the ATRN turn). */
  remainder(): Buffer {
    return this.held.length === 1 ? this.held[0]! : Buffer.concat(this.held);
  }

  /** True between the first byte of a reply and its last line. */
  get inReply(): boolean {
    return this.current !== null || this.heldBytes > 0;
  }

  /** How many bytes of a partial line are held (at most the line limit and its CR). */
  get pendingBytes(): number {
    return this.heldBytes;
  }

  private line(text: string): SmtpReply | null {
    const m = LINE.exec(text);
    if (!m) {
      throw new ProtocolError(
        `not an SMTP reply line: ${JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text)}`,
      );
    }
    const code = Number(m[1]);
    const more = m[2] === '-';
    const body = m[3] ?? '';
    if (this.current && this.current.code !== code) {
      throw new ProtocolError(
        `reply code changed from ${this.current.code} to ${code} inside one reply (RFC 5321 4.2.1)`,
      );
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
