/** `npm run demo` is the README's first command: it must keep working end to end. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

it('npm run demo shows a full ETRN release: transcript, result, and the released message arriving', async () => {
  const { stdout, stderr } = await promisify(execFile)('npm', ['run', '--silent', 'demo'], { cwd: join(import.meta.dirname, '..', '..'), timeout: 60_000 });
  const all = stdout + stderr;
  expect(all).toContain('C: ETRN customer.test');
  expect(all).toMatch(/backup-mx\s+signalled/);
  expect(all).toContain('| Subject: held while your server was away');
  expect(all).not.toContain('demo-password');
}, 60_000);
