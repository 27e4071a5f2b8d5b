/** `npm run demo` is the README's first command: it must keep working end to end. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from 'vitest';

it('npm run demo shows a full ETRN release and ends as soon as its last line is out', async () => {
  const started = performance.now();
  let doneAt = 0;
  const child = spawn('npm', ['run', '--silent', 'demo'], {
    cwd: join(import.meta.dirname, '..', '..'),
    timeout: 60_000,
  });
  let all = '';
  const collect = (chunk: Buffer) => {
    all += chunk.toString();
    if (!doneAt && all.includes('== Done')) doneAt = performance.now();
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const status = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const exited = performance.now();
  // A figure, not a timed assertion: nothing (timer, socket) should hold the process after "Done".
  process.stdout.write(
    `demo: ${Math.round(exited - started)} ms in all, ${Math.round(exited - doneAt)} ms from "Done" to exit\n`,
  );
  expect(status).toBe(0);
  expect(doneAt).toBeGreaterThan(0);
  expect(all).toContain('C: ETRN customer.test');
  expect(all).toMatch(/backup-mx\s+signalled/);
  expect(all).toContain('| Subject: held while your server was away');
  expect(all).not.toContain('demo-password');
  // The demo's own files must not draw the warnings a careless set-up gets.
  expect(all).not.toContain('warning');
}, 60_000);
