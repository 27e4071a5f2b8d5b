/**
 * Against a real ATRN provider: INetSim (Debian's `inetsim`). The CLI, as a user runs it (`npx tsx cli/run.ts`, what `npx dequeue` runs), signals
 * ATRN, and INetSim turns the connection around and delivers its canned message, which must land
 * in --mail-dir complete, with its envelope, despite INetSim's stray empty line after the dot.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithInetSim, startInetSim, type InetSim } from '../servers/inetsim';
import { providerBytes, readMailDir, tempDir } from '../core/odmr/odmr-fixtures';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');

describeWithInetSim('ODMR against INetSim, through the CLI', () => {
  let inetsim: InetSim;
  beforeAll(async () => {
    inetsim = await startInetSim();
  });
  afterAll(async () => {
    await inetsim?.stop();
  });

  it('pulls the held message into --mail-dir, byte for byte as INetSim sent it', async () => {
    const tmp = await tempDir('dequeue-inetsim-cli-');
    try {
      const config = join(tmp.path, 'dequeue.json');
      const secrets = join(tmp.path, 'secrets.json');
      const mailDir = join(tmp.path, 'mail');
      await writeFile(config, JSON.stringify({
        settings: { helloName: 'mx.customer.test' },
        targets: [{ name: 'inetsim', host: '127.0.0.1', port: inetsim.port, tls: 'none', auth: { secretId: 'inetsim', mechanism: 'CRAM-MD5' }, command: 'ATRN', timeoutSeconds: 20 }],
      }));
      await writeFile(secrets, JSON.stringify({ inetsim: { username: 'customer', password: 'anything' } }));

      const { stdout, stderr } = await run('npx', ['tsx', 'cli/run.ts', '--config', config, '--secrets', secrets, '--mail-dir', mailDir, '--json', '--verbose'], {
        cwd: ROOT, timeout: 60_000,
      });
      const result = JSON.parse(stdout.trim());
      expect(result, stderr).toMatchObject({ target: 'inetsim', outcome: 'signalled', messages: 1, error: null });
      expect(result.replies.at(-1)).toMatchObject({ command: 'ATRN', code: 250 });

      const { stored, others } = await readMailDir(mailDir, 'inetsim');
      expect(others).toEqual([]);
      expect(stored).toHaveLength(1);
      // INetSim writes "Subject: ...\r\n", "\r\n", "This is ...\r\n", "\r\n", ".\r\n", "\r\n".
      expect(providerBytes(stored[0]!).toString('latin1')).toBe('Subject: INetSim test mail\r\n\r\nThis is an INetSim test mail...\r\n\r\n');
      expect(stored[0]!.envelope).toMatchObject({ mailFrom: 'foo@bar.org', rcptTo: ['bar@foo.org'], target: 'inetsim', tls: false });
      // The stray empty line got no reply: INetSim read our 221 to its QUIT.
      expect(await inetsim.serviceLog()).toMatch(/recv: 221 /);
      expect(stderr).not.toMatch(/S: 5\d\d /);
    } finally {
      await tmp.remove();
    }
  }, 90_000);
});
