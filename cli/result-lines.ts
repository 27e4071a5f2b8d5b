/** How results look on a terminal (without --json): one block per target, aligned. */
import type { TargetResult } from '../lambda/core/result';

export function resultBlock(r: TargetResult): string {
  const head = `${r.target.padEnd(20)} ${r.outcome.padEnd(17)} cycle ${r.cycle}, ${r.durationMs} ms${r.messages ? `, ${r.messages} message(s) stored` : ''}`;
  const lines = [head];
  for (const reply of r.replies) {
    const text = reply.text.split('\n')[0] ?? '';
    lines.push(`    ${reply.command} -> ${reply.code ?? ''}${reply.code !== null ? ' ' : ''}${text}`.trimEnd());
  }
  if (r.reason) lines.push(`    ${r.reason}`);
  if (r.error) lines.push(`    error: ${r.error}`);
  return lines.join('\n');
}
