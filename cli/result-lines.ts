/** How results look on a terminal (without --json): one block per target, aligned. */
import type { TargetResult } from '../lambda/core/result';
import { printable } from './terminal-text';

export function resultBlock(r: TargetResult): string {
  const head = `${r.target.padEnd(20)} ${r.outcome.padEnd(17)} cycle ${r.cycle}, ${r.durationMs} ms${r.messages ? `, ${r.messages} message(s) stored` : ''}${r.refusedRecipients ? `, ${r.refusedRecipients} recipient(s) refused: not the customer's` : ''}`;
  const lines = [head];
  for (const reply of r.replies) {
    const text = reply.text.split('\n')[0] ?? '';
    // The provider's text is shown escaped: it reaches a terminal (terminal-text.ts).
    lines.push(
      `    ${printable(reply.command)} -> ${reply.code ?? ''}${reply.code !== null ? ' ' : ''}${printable(text)}`.trimEnd(),
    );
  }
  if (r.reason) lines.push(`    ${printable(r.reason)}`);
  // A check that held the whole target back is its reason already; otherwise it is shown here.
  if (r.precheck && !(r.outcome === 'skipped' && r.reason?.includes(r.precheck.text)))
    lines.push(
      `    precheck ${r.precheck.passed ? 'passed' : 'failed'}: ${printable(r.precheck.text)}`,
    );
  if (r.error) lines.push(`    error: ${printable(r.error)}`);
  return lines.join('\n');
}
