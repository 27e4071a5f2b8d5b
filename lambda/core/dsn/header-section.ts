/**
 * The header section of a stored message, for a delivery status notification's
 * text/rfc822-headers part (RFC 3462 for the type, RFC 3461 4.3 RET=HDRS: the headers, not the
 * body). Read from the message's stream up to the empty line that ends the headers (RFC 5322 2.1),
 * bounded: a message whose header section is larger has it cut at a line's end, and says so.
 */

/** More than any real header section: Postfix's header_size_limit is 102400 bytes. */
export const MAX_HEADER_BYTES = 102_400;

export interface HeaderSection {
  /** The header lines, each ending in CRLF, with no empty line after them. */
  readonly text: Buffer;
  /** True when the section was longer than the bound and cut at a line's end. */
  readonly cut: boolean;
}

/**
 * The header section of `message` (its stored bytes, trace header first), its line ends made
 * CRLF. Stops reading at the end of the headers; the caller closes what it opened.
 */
export async function headerSection(
  message: AsyncIterable<Buffer> | Iterable<Buffer>,
  maxBytes = MAX_HEADER_BYTES,
): Promise<HeaderSection> {
  const lines: Buffer[] = [];
  let bytes = 0;
  let pending: Buffer = Buffer.alloc(0);
  const take = (line: Buffer): 'more' | 'end' | 'full' => {
    // A line's own end, CR LF or a bare LF, is dropped: written back as CRLF.
    const body = line.at(-1) === 0x0d ? line.subarray(0, -1) : line;
    if (body.length === 0) return 'end';
    if (bytes + body.length + 2 > maxBytes) return 'full';
    lines.push(body, CRLF);
    bytes += body.length + 2;
    return 'more';
  };
  for await (const chunk of message) {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let start = 0;
    for (let nl = pending.indexOf(0x0a); nl !== -1; nl = pending.indexOf(0x0a, start)) {
      const step = take(pending.subarray(start, nl));
      start = nl + 1;
      if (step !== 'more') return { text: Buffer.concat(lines), cut: step === 'full' };
    }
    pending = pending.subarray(start);
    // A "line" longer than the bound is not a header line: stop there.
    if (pending.length > maxBytes) return { text: Buffer.concat(lines), cut: true };
  }
  // A message that is all headers (no body): its last line may lack its end.
  if (pending.length && take(pending) === 'full') return { text: Buffer.concat(lines), cut: true };
  return { text: Buffer.concat(lines), cut: false };
}

const CRLF = Buffer.from('\r\n');
