/**
 * The canonical form of a message's text: every line ends with CRLF (RFC 5321 2.3.8). A bare LF
 * and a bare CR each become CRLF, as Postfix's `smtpd_forbid_bare_newline = normalize` does.
 *
 * Why (SMTP smuggling, 2023-24): a message that holds `\n.\r\n` or `\r.\r\n` is one message to a
 * server that ends the data only at CRLF "." CRLF, and two to a server that also accepts a bare
 * LF (or CR) as a line end: whatever follows would run as a second transaction from our address.
 * After canonicalisation every line end is CRLF, so the dot-stuffing that follows (DotStuffer)
 * sees exactly the lines every server sees, and no line that any server reads as the end of the
 * data leaves us unstuffed.
 *
 * The receiver stores the canonical form (lambda/mail-receiver.ts, core/odmr/canonical-sink.ts),
 * and the relay and `deliver` send through DotStuffer, which makes line ends canonical the same
 * way before it stuffs (a no-op on canonical text, and a guard for stores written before): what
 * is stored, relayed and delivered are the same bytes.
 *
 * Chunk by chunk: text that is already canonical comes back as slices of the input, never
 * copied; only a CR at the end of a chunk is held over (it may be the first half of a CRLF).
 */

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');
const EMPTY: Buffer[] = [];

export class LineCanonicaliser {
  /** The previous chunk ended with a CR that has not been written yet. */
  private heldCr = false;

  /** The next chunk, canonical. The buffers returned must not be modified. */
  push(chunk: Buffer): Buffer[] {
    const len = chunk.length;
    if (len === 0) return EMPTY;
    const out: Buffer[] = [];
    let from = 0;
    let i = 0;
    if (this.heldCr) {
      this.heldCr = false;
      // The held CR and this LF make one CRLF; any other byte: the CR was bare.
      out.push(CRLF);
      if (chunk[0] === LF) from = i = 1;
    }
    while (i < len) {
      const lf = chunk.indexOf(LF, i);
      const end = lf === -1 ? len : lf;
      // Bare CRs inside [i, end): a CR not directly before this LF.
      let cr = chunk.indexOf(CR, i);
      while (cr !== -1 && cr < end) {
        if (cr === len - 1) {
          // The last byte: decided by the next chunk.
          if (cr > from) out.push(chunk.subarray(from, cr));
          this.heldCr = true;
          return out;
        }
        if (cr !== end - 1 || lf === -1) {
          // Bare CR: its text, then CRLF in its place.
          if (cr > from) out.push(chunk.subarray(from, cr));
          out.push(CRLF);
          from = cr + 1;
        }
        cr = chunk.indexOf(CR, cr + 1);
      }
      if (lf === -1) break;
      if (lf === 0 ? true : chunk[lf - 1] !== CR || lf - 1 < from) {
        // Bare LF (or an LF whose CR was already turned into CRLF above: it cannot be, a CR
        // directly before an LF is never bare). Its text, then CRLF in its place.
        if (lf > from) out.push(chunk.subarray(from, lf));
        out.push(CRLF);
        from = lf + 1;
      }
      i = lf + 1;
    }
    if (len > from) out.push(chunk.subarray(from));
    return out;
  }

  /** At the end of the text: a CR held over is bare, and becomes CRLF. */
  end(): Buffer[] {
    if (!this.heldCr) return EMPTY;
    this.heldCr = false;
    return [CRLF];
  }
}

/** The whole text canonical at once (tests, small texts). */
export function canonicalLines(text: Buffer): Buffer {
  const c = new LineCanonicaliser();
  return Buffer.concat([...c.push(text), ...c.end()]);
}
