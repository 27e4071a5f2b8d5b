/**
 * SMTP transparency (RFC 5321 section 4.5.2), both ways, chunk by chunk, never holding a line.
 *
 * Incoming (`DataUnstuffer`): the message text arrives as lines; a line that is a single "."
 * ends it, and a line that starts with "." has that dot removed. Outgoing (`DotStuffer`, for the
 * relay and `deliver`): every line end made CRLF, a line that starts with "." gets one more, and the
 * text ends with CRLF "." CRLF.
 *
 * A line starts after CRLF only (and at the start of the data): a bare LF is not a line end in
 * SMTP (RFC 5321 2.3.8), so the dot after one is kept and never ends the data. Senders that
 * went through a real MTA never produce one; a sender that does gets its bytes back unchanged.
 *
 * Only slices of the input are returned, never copies, and only what cannot yet be decided is
 * held over between chunks: the state of the current line start, at most a dot and a CR.
 */

import { needsWork, newWindow } from './stuffing-scan';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const HELD_CR = Buffer.from('\r');
const LF_DOT = Buffer.from('\n.');

enum State {
  /** Inside a line. */
  Text,
  /** At the start of a line (after CRLF, or at the start of the data). */
  LineStart,
  /** A line started with "."; the dot is dropped whatever follows, unless it ends the data. */
  Dot,
  /** A line started with ".\r"; LF now would end the data, anything else makes the CR text. */
  DotCr,
}

export interface UnstuffedPiece {
  /** Message bytes, dots removed, in order (slices of the chunk, plus a held CR at times). */
  readonly content: Buffer[];
  /** True once the final "." line arrived; `rest` then holds what followed it. */
  readonly ended: boolean;
  /** Bytes after the end of the data (commands pipelined after it, a stray empty line). */
  readonly rest: Buffer;
}

const EMPTY = Buffer.alloc(0);

export class DataUnstuffer {
  private state = State.LineStart;
  /** Was the last byte of the previous chunk a CR? (decides whether an LF at 0 ends a line) */
  private lastWasCr = false;
  private done = false;

  /** Feed the next chunk of DATA; call no more once `ended` was returned. */
  push(chunk: Buffer): UnstuffedPiece {
    if (this.done) throw new Error('DataUnstuffer: data already ended');
    const content: Buffer[] = [];
    const len = chunk.length;
    let emitFrom = 0;
    let i = 0;
    /** A dot was seen inside a line of this chunk: it is text, search for LF "." (State.Text). */
    let dotsInLines = false;
    while (i < len) {
      switch (this.state) {
        case State.Text: {
          // Only a line that starts with a dot needs attention. Search for "." first: base64,
          // the bulk of large mail, has none, and one native search crosses the whole chunk.
          // Once a dot turns up inside a line (prose), search for LF "." for the rest of the
          // chunk: one native search per line (the pattern's first byte, LF, is what is looked
          // for) however many dots the lines hold. LF "." alone took as much CPU on a 50 MB
          // base64 message as reading the socket (bench/unstuff-scan.ts, bench/odmr-receive.ts).
          if (!dotsInLines) {
            const dot = chunk.indexOf(DOT, i);
            if (dot !== -1) {
              // A dot at 0 never starts a line in this state (a chunk that ended with CRLF left
              // the state at LineStart); at 1, the CR may be the previous chunk's last byte.
              if (
                dot >= 1 &&
                chunk[dot - 1] === LF &&
                (dot >= 2 ? chunk[dot - 2] === CR : this.lastWasCr)
              ) {
                i = dot;
                this.state = State.LineStart;
              } else {
                dotsInLines = true;
              }
              break;
            }
          }
          const hit = dotsInLines ? chunk.indexOf(LF_DOT, i) : -1;
          if (hit === -1) {
            // A line may still start right after this chunk: it ends with CRLF.
            if (
              len - 1 >= i &&
              chunk[len - 1] === LF &&
              (len >= 2 ? chunk[len - 2] === CR : this.lastWasCr)
            ) {
              this.state = State.LineStart;
            }
            i = len;
            break;
          }
          const crBefore = hit > 0 ? chunk[hit - 1] === CR : this.lastWasCr;
          i = hit + 1;
          if (crBefore) this.state = State.LineStart;
          break;
        }
        case State.LineStart:
          if (chunk[i] === DOT) {
            // Drop the dot now: it is either a stuffed dot or part of the end mark.
            if (i > emitFrom) content.push(chunk.subarray(emitFrom, i));
            emitFrom = ++i;
            this.state = State.Dot;
          } else {
            this.state = State.Text;
          }
          break;
        case State.Dot:
          if (chunk[i] === CR) {
            this.state = State.DotCr;
          } else {
            // Past this byte too: it follows the dot, so it cannot start a line, and the second
            // dot of a stuffed ".." must not count as a dot inside a line (State.Text).
            this.state = State.Text;
          }
          i++;
          break;
        case State.DotCr:
          if (chunk[i] === LF) {
            // "." CRLF at a line start: the end of the data. The CR before it is not content.
            // (The CR directly follows the dropped dot, so nothing is pending before it.)
            this.done = true;
            return { content, ended: true, rest: chunk.subarray(i + 1) };
          }
          // ".\r" then something else: an unstuffed line; the CR is text (and may be held over).
          if (i === 0) content.push(HELD_CR);
          this.state = State.Text;
          break;
      }
    }
    // Hold back a CR that may turn out to be part of the end mark.
    const end = this.state === State.DotCr && len > 0 && emitFrom < len ? len - 1 : len;
    if (end > emitFrom) content.push(chunk.subarray(emitFrom, end));
    if (len > 0) this.lastWasCr = chunk[len - 1] === CR;
    return { content, ended: false, rest: EMPTY };
  }
}

/**
 * Outgoing transparency, canonical: what we pass to another server has CRLF line ends only (a
 * bare LF or a bare CR becomes CRLF, as Postfix's `smtpd_forbid_bare_newline = normalize` does),
 * every line that then starts with a dot gets one more, and `end()` gives the final mark,
 * preceded by CRLF when the message did not end with one (RFC 5321 4.1.1.4). So no server, however
 * it splits lines (at LF, CR or CRLF), can find the end of the data anywhere but at the end: the
 * "SMTP smuggling" of a second transaction through `\n.\r\n` is impossible.
 */
export class DotStuffer {
  private atLineStart = true;
  /** The previous chunk ended with a CR: CRLF either way, and an LF first in this one is its own. */
  private pendingCr = false;

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    const len = chunk.length;
    let i = 0;
    if (this.pendingCr && len > 0) {
      this.pendingCr = false;
      out.push(CRLF);
      if (chunk[0] === LF) i = 1;
      this.atLineStart = true;
    }
    if (i >= len) return out;
    // The dot goes out as part of the slice that starts here; the extra one first.
    if (this.atLineStart && chunk[i] === DOT) out.push(DOT_BUF);
    let from = i;
    // One pass over the bytes for what needs work (a bare CR, a bare LF, a dot after CRLF:
    // stuffing-scan.ts) rather than two native searches per line: canonical text (base64, the
    // bulk of large mail) has none of it and goes out as one slice. A per-line search cost as
    // much CPU as the rest of a 50 MB delivery, and a regular expression over the chunk as a
    // latin1 string half as much again, mostly copying it into a string and collecting that
    // (bench/deliver.ts).
    const window = newWindow();
    for (let at = needsWork(chunk, i, window); at !== -1; at = needsWork(chunk, at + 1, window)) {
      if (chunk[at] === CR && at + 1 < len && chunk[at + 1] === LF) {
        // CRLF "." : the line end stays inside the slice, the dot gets one more.
        out.push(chunk.subarray(from, at + 2), DOT_BUF);
        from = at + 2;
        at += 2;
        continue;
      }
      // A bare CR or LF becomes CRLF.
      if (at > from) out.push(chunk.subarray(from, at));
      from = at + 1;
      if (chunk[at] === CR && from === len) {
        // Whether an LF follows is for the next chunk to say.
        this.pendingCr = true;
        this.atLineStart = false;
        return out;
      }
      out.push(CRLF);
      if (from < len && chunk[from] === DOT) out.push(DOT_BUF);
    }
    if (len > from) out.push(chunk.subarray(from));
    // A line starts next when the chunk ended with CRLF, or with a bare LF just made one (every
    // other way to end a chunk at a line end was handled above).
    this.atLineStart =
      from === len || (len - from >= 2 && chunk[len - 2] === CR && chunk[len - 1] === LF);
    return out;
  }

  /** The end of the data: CRLF "." CRLF, or just "." CRLF after a complete last line. */
  end(): Buffer {
    if (this.pendingCr) return CRLF_FINAL_DOT;
    return this.atLineStart ? FINAL_DOT : CRLF_FINAL_DOT;
  }
}

const DOT_BUF = Buffer.from('.');
const FINAL_DOT = Buffer.from('.\r\n');
const CRLF_FINAL_DOT = Buffer.from('\r\n.\r\n');
const CRLF = Buffer.from('\r\n');
