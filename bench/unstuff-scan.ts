/**
 * The dot-unstuffer alone (lambda/core/smtp/dot-stuffing.ts), on 50 MB of four kinds of text, fed in
 * 64 KiB chunks as the socket hands them over: how fast it finds the end of the data.
 *
 *   npx tsx bench/unstuff-scan.ts [--runs 7]
 *
 * It searches a chunk for "." until a dot turns up inside a line, then for LF "." (one native
 * search per line) for the rest of the chunk: base64, the bulk of large mail, has no dot and
 * costs one search per chunk; prose and lines full of dots cost what a search per line costs.
 * Figures are the median of the runs, after one run not counted; all of them should stay well
 * above what the socket delivers (bench/odmr-receive.ts).
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { DataUnstuffer } from '../lambda/core/smtp/dot-stuffing';

const SIZE = 50_000_000;
const CHUNK = 64 * 1024;

/** Lines of 76 base64 characters; one in 97 starts with a (stuffed) dot, as in odmr-receive. */
function base64(): string {
  const lines: string[] = [];
  for (let n = 0, i = 0; n < SIZE; i++) {
    const line = `${i % 97 === 0 ? '..' : ''}${randomBytes(57).toString('base64')}\r\n`;
    lines.push(line);
    n += line.length;
  }
  return lines.join('');
}

/** Words wrapped at 72 columns, a sentence ending about every 17 words (0.75 dots a line). */
function prose(): string {
  const lines: string[] = [];
  let line = '';
  for (let n = 0, w = 0; n < SIZE; w++) {
    const word = `${'abcdefgh'.slice(0, 2 + (w % 6))}${w % 17 === 16 ? '.' : ''}`;
    if (line.length + word.length > 72) {
      lines.push(`${line}\r\n`);
      n += line.length + 2;
      line = '';
    }
    line += line ? ` ${word}` : word;
  }
  return lines.join('');
}

/** Abbreviations and numbers: about ten dots a line. */
function dotted(): string {
  const words = ['e.g.', 'i.e.', 'U.S.', 'v1.2.3', 'Dr.', 'etc.', 'ok', 'the', 'mail'];
  const lines: string[] = [];
  let line = '';
  for (let n = 0, w = 0; n < SIZE; w++) {
    const word = words[(w * 7) % words.length]!;
    if (line.length + word.length > 72) {
      lines.push(`${line}\r\n`);
      n += line.length + 2;
      line = '';
    }
    line += line ? ` ${word}` : word;
  }
  return lines.join('');
}

/** A table of contents with dot leaders: sixty dots a line, the worst case. */
function leaders(): string {
  const line = `Chapter 1 ${'.'.repeat(60)} 12\r\n`;
  return line.repeat(Math.ceil(SIZE / line.length));
}

function scan(wire: Buffer): number {
  const started = performance.now();
  const unstuffer = new DataUnstuffer();
  for (let i = 0; i < wire.length; i += CHUNK) {
    if (unstuffer.push(wire.subarray(i, i + CHUNK)).ended) return performance.now() - started;
  }
  throw new Error('the final dot was not found');
}

const { values } = parseArgs({ options: { runs: { type: 'string', default: '7' } } });
const runs = Number(values.runs);
console.log(`\`npx tsx bench/unstuff-scan.ts --runs ${runs}\` (node ${process.version})`);
console.log('');
console.log('| text | dots a line | MB/s (median) |');
console.log('|---|---:|---:|');
for (const [name, make] of [
  ['base64', base64],
  ['prose', prose],
  ['abbreviations', dotted],
  ['dot leaders', leaders],
] as const) {
  const text = make();
  const wire = Buffer.from(`${text}.\r\n`, 'latin1');
  const dots = text.split('.').length - 1;
  const lines = text.split('\n').length - 1;
  scan(wire);
  const ms = Array.from({ length: runs }, () => scan(wire)).sort((a, b) => a - b)[
    Math.floor(runs / 2)
  ]!;
  console.log(
    `| ${name} | ${(dots / lines).toFixed(2)} | ${(wire.length / 1e6 / (ms / 1000)).toFixed(0)} |`,
  );
}
