/** `npm run demo` ends with an ODMR part: ATRN, the turn, two messages stored in --mail-dir. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

it('npm run demo shows an ATRN cycle pulling two held messages into --mail-dir', async () => {
  const { stdout, stderr } = await promisify(execFile)('npm', ['run', '--silent', 'demo'], {
    cwd: join(import.meta.dirname, '..', '..'),
    timeout: 60_000,
  });
  const all = stdout + stderr;
  expect(all).toContain('[odmr-provider] C: ATRN');
  expect(all).toContain(
    '[odmr-provider] S: 220 mx.customer.test ESMTP dequeue ready to receive for odmr-provider',
  );
  expect(all.match(/S: 250 2\.0\.0 Ok: stored as /g)).toHaveLength(2);
  expect(all).toMatch(/odmr-provider\s+signalled\s+cycle 1, \d+ ms, 2 message\(s\) stored/);
  expect(all).toContain('   | .a line that starts with a dot survives');
  expect(all).toContain("The provider's queue is now empty.");
  expect(all).toContain('Done: exit status 0.');
}, 60_000);
