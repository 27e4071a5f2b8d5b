/**
 * The outgoing stuffer's search (dot-stuffing.ts DotStuffer): where, in a chunk of message text,
 * a bare CR, a bare LF or a dot at the start of a line (after CRLF) needs work (RFC 5321 2.3.8,
 * 4.5.2). Canonical text, the bulk of what deliver and the relay send, has none of it, so the
 * search crosses whole chunks, and its speed is the stuffer's.
 *
 * Sixteen bytes at a time in WebAssembly SIMD where the runtime has it (Node has since 16.4): a
 * 50 MB message of 78-byte lines took 30 ms of CPU in the JavaScript search below (four bytes at
 * a time) and about 8 in this one, copies into its memory included (bench/deliver.ts). The
 * JavaScript search stays for short ranges (a call and a copy cost more than they save) and for
 * a runtime without SIMD. Both report exactly the same places: the result is checked against the
 * chunk itself before it is used, so the stuffer's output never depends on which one ran.
 */

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

/** The part of one chunk copied into the WebAssembly memory; one per DotStuffer.push. */
export interface ScanWindow {
  chunk: Buffer | null;
  from: number;
  to: number;
}

export const newWindow = (): ScanWindow => ({ chunk: null, from: 0, to: 0 });

/**
 * The first index at or after `from` where the text needs work: a CR without its LF (also a CR
 * that ends the chunk), an LF without a CR before it (at 0, whatever the previous chunk held: the
 * caller has dealt with a CR it ended with), or CRLF "." (its CR's index). -1: none.
 */
export function needsWork(chunk: Buffer, from: number, window: ScanWindow): number {
  const simd = from + SIMD_MIN_BYTES <= chunk.length ? scanner() : null;
  if (!simd) return needsWorkJs(chunk, from);
  const len = chunk.length;
  for (let at = from; at < len; ) {
    if (window.chunk !== chunk || at < window.from || at >= window.to)
      load(simd, chunk, at, window);
    const end = BASE + (window.to - window.from);
    const hit = simd.scan(BASE + (at - window.from), end);
    if (hit !== -1 && hit < end) {
      const found = window.from + hit - BASE;
      // Never trusted blindly: a disagreement (which the tests would show) costs a byte, not a
      // wrong line end on the wire.
      if (isWork(chunk, found, chunk[found]!, len)) return found;
      at = found + 1;
      continue;
    }
    at = window.to;
  }
  return -1;
}

/** Below this many bytes the JavaScript search is as fast (no call into WebAssembly, no copy). */
const SIMD_MIN_BYTES = 256;
/** Bytes scanned per copy into the WebAssembly memory (two 64 KiB pages hold one and its margins). */
const WINDOW_BYTES = 64 * 1024;
/** Where a window starts in that memory: the byte before it sits at BASE - 1. */
const BASE = 16;

/**
 * Copy chunk[at, at + WINDOW_BYTES) to BASE, with the byte before it (or 0 at the chunk's start)
 * and the two after it (or 0 past the chunk's end): zeros make a CR at the end and an LF at the
 * start count as work, as isWork says. The vector loads past the window read zeros.
 */
function load(simd: Scanner, chunk: Buffer, at: number, window: ScanWindow): void {
  const len = chunk.length;
  const to = Math.min(len, at + WINDOW_BYTES);
  const copied = Math.min(len, to + 2);
  const memory = simd.memory;
  memory[BASE - 1] = at > 0 ? chunk[at - 1]! : 0;
  memory.set(chunk.subarray(at, copied), BASE);
  memory.fill(0, BASE + (copied - at), BASE + (to - at) + 2 + 32);
  window.chunk = chunk;
  window.from = at;
  window.to = to;
}

interface Scanner {
  readonly memory: Uint8Array<ArrayBuffer>;
  /** First position in [p, end) (memory offsets) that needs work, or one >= end, or -1. */
  readonly scan: (p: number, end: number) => number;
}

/** What of the WebAssembly API this uses (the project's TypeScript libraries do not declare it). */
interface WebAssemblyApi {
  readonly Module: new (bytes: Uint8Array) => object;
  readonly Instance: new (
    module: object,
  ) => {
    readonly exports: {
      readonly memory: { readonly buffer: ArrayBuffer };
      readonly scan: Scanner['scan'];
    };
  };
}

let instance: Scanner | null | undefined;

function scanner(): Scanner | null {
  if (instance === undefined) {
    const api = (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly;
    try {
      const { exports } = new api!.Instance(new api!.Module(SCAN_WASM));
      instance = { memory: new Uint8Array(exports.memory.buffer), scan: exports.scan };
    } catch {
      // No WebAssembly, or no SIMD, in this runtime: the JavaScript search does it all.
      instance = null;
    }
  }
  return instance;
}

/*
 * The module, by hand (WebAssembly 2.0 with fixed-width SIMD; each line below is one instruction
 * or section, its text form beside it):
 *
 *   (memory (export "memory") 2)
 *   (func (export "scan") (param $p i32) (param $end i32) (result i32) (local $v v128) (local $bad v128)
 *     (block $done (loop $next
 *       (br_if $done (i32.ge_u $p $end))
 *       (local.set $v (v128.load $p))
 *       (if (v128.any_true (i8x16.le_u $v (splat 13)))   ;; a CR or an LF may be in these 16
 *         (local.set $bad (v128.or
 *           (v128.andnot (i8x16.eq $v (splat 13))                      ;; CR, but not followed by
 *             (v128.andnot (i8x16.eq (v128.load offset=1 $p) (splat 10))    ;; LF not followed
 *                          (i8x16.eq (v128.load offset=2 $p) (splat 46))))  ;; by "."
 *           (v128.andnot (i8x16.eq $v (splat 10))                      ;; LF, but not after
 *                        (i8x16.eq (v128.load (i32.sub $p 1)) (splat 13)))))  ;; a CR
 *         (if (v128.any_true $bad) (return (i32.add $p (i32.ctz (i8x16.bitmask $bad))))))
 *       (local.set $p (i32.add $p 16))
 *       (br $next)))
 *     (i32.const -1))
 */
const SIMD = 0xfd;
const splat = (byte: number) => [0x41, byte, SIMD, 0x0f]; // i32.const byte; i8x16.splat
const eq = [SIMD, 0x23]; // i8x16.eq
const andnot = [SIMD, 0x4f]; // v128.andnot: a & ~b
const load128 = (offset: number) => [SIMD, 0x00, 0x00, offset]; // v128.load align=1 offset
const anyTrue = [SIMD, 0x53]; // v128.any_true
const body = [
  [0x01, 0x02, 0x7b], // two locals of v128: $v (2), $bad (3)
  [0x02, 0x40], // block $done
  [0x03, 0x40], // loop $next
  [0x20, 0x00, 0x20, 0x01, 0x4f, 0x0d, 0x01], // br_if $done (i32.ge_u $p $end)
  [0x20, 0x00, ...load128(0), 0x21, 0x02], // $v = v128.load $p
  [0x20, 0x02, ...splat(CR), SIMD, 0x2a, ...anyTrue], // any_true (i8x16.le_u $v 13)
  [0x04, 0x40], // if
  [0x20, 0x02, ...splat(CR), ...eq], // $v == CR
  [0x20, 0x00, ...load128(1), ...splat(LF), ...eq], // next == LF
  [0x20, 0x00, ...load128(2), ...splat(DOT), ...eq], // next but one == "."
  [...andnot, ...andnot], // CR & ~(LF & ~".")
  [0x20, 0x02, ...splat(LF), ...eq], // $v == LF
  [0x20, 0x00, 0x41, 0x01, 0x6b, ...load128(0), ...splat(CR), ...eq], // previous == CR
  [...andnot, SIMD, 0x50, 0x22, 0x03], // LF & ~CR before; or; local.tee $bad
  [...anyTrue, 0x04, 0x40], // if (any_true $bad)
  [0x20, 0x00, 0x20, 0x03, SIMD, 0x64, 0x68, 0x6a, 0x0f], // return $p + ctz(bitmask $bad)
  [0x0b, 0x0b], // end if; end if
  [0x20, 0x00, 0x41, 0x10, 0x6a, 0x21, 0x00], // $p += 16
  [0x0c, 0x00], // br $next
  [0x0b, 0x0b], // end loop; end block
  [0x41, 0x7f, 0x0b], // i32.const -1; end
].flat();
/** An unsigned LEB128 number (section and body sizes). */
const leb = (n: number): number[] => (n < 0x80 ? [n] : [(n & 0x7f) | 0x80, ...leb(n >>> 7)]);
const section = (id: number, content: number[]) => [id, ...leb(content.length), ...content];
const name = (text: string) => [text.length, ...Buffer.from(text, 'latin1')];
const SCAN_WASM = new Uint8Array([
  ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // "\0asm", version 1
  ...section(1, [0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f]), // type: (i32, i32) -> i32
  ...section(3, [0x01, 0x00]), // one function, of that type
  ...section(5, [0x01, 0x00, 0x02]), // one memory, two pages
  ...section(7, [0x02, ...name('memory'), 0x02, 0x00, ...name('scan'), 0x00, 0x00]),
  ...section(10, [0x01, ...leb(body.length), ...body]),
]);

/**
 * The same search in JavaScript, four bytes at a time where the chunk is aligned: a word with no
 * byte below 0x0E (neither CR nor LF can be in it) is skipped at once (the "has a byte less than
 * n" test of Bit Twiddling Hacks, exact for n <= 128); only a word that may hold one is looked at
 * byte by byte.
 */
export function needsWorkJs(chunk: Buffer, from: number): number {
  const len = chunk.length;
  const offset = chunk.byteOffset;
  let at = from;
  // Up to the first aligned word, one byte at a time.
  const head = Math.min(len, at + ((4 - ((offset + at) & 3)) & 3));
  for (; at < head; at++) {
    const byte = chunk[at]!;
    if (byte <= CR && isWork(chunk, at, byte, len)) return at;
  }
  if (at >= len) return -1;
  const base = at;
  const words = new Int32Array(chunk.buffer, offset + base, (len - base) >>> 2);
  const count = words.length;
  for (let w = 0; w < count; ) {
    const v = words[w]!;
    if ((((v - 0x0e0e0e0e) | 0) & ~v & 0x80808080) === 0) {
      w++;
      continue;
    }
    let b = base + w * 4;
    for (const end = b + 4; b < end; b++) {
      const byte = chunk[b]!;
      if (byte > CR) continue;
      if (isWork(chunk, b, byte, len)) return b;
      // CRLF: its LF is fine too, whichever word it is in.
      if (byte === CR) b++;
    }
    w = (b - base) >>> 2;
    at = b;
  }
  for (at = Math.max(at, base + count * 4); at < len; at++) {
    const byte = chunk[at]!;
    if (byte <= CR && isWork(chunk, at, byte, len)) return at;
  }
  return -1;
}

/** Whether `byte` (at most CR), at `at`, is one needsWork reports. */
function isWork(chunk: Buffer, at: number, byte: number, len: number): boolean {
  if (byte === CR) return at + 1 >= len || chunk[at + 1] !== LF || chunk[at + 2] === DOT;
  return byte === LF && (at === 0 || chunk[at - 1] !== CR);
}
