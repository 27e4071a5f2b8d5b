/**
 * The CLI's answers to a newcomer's mistakes: each one exits with the right status and one line
 * that names the file (or secret) at fault and what to do, never a stack trace or a secret.
 */
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../cli/main';
import { ScriptedProvider } from '../../peers/scripted-provider';

let dir: string;
let provider: ScriptedProvider;
const account = { username: 'customer', password: 'right-password' };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dequeue-mistakes-'));
  provider = await new ScriptedProvider({ account, extensions: ['ETRN', 'AUTH CRAM-MD5'] }).start();
});
afterAll(async () => provider.stop());

let n = 0;
async function file(name: string, content: unknown, mode = 0o600): Promise<string> {
  const path = join(dir, `${++n}-${name}`);
  await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  await chmod(path, mode);
  return path;
}

async function cli(argv: string[]) {
  let stdout = '';
  let stderr = '';
  const status = await main(argv, { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) } });
  return { status, stdout, stderr };
}

const target = (name: string, extra: Record<string, unknown> = {}) => ({
  name, host: '127.0.0.1', port: provider.port, tls: 'none', command: `ETRN ${name}.test`, ...extra,
});

describe('a wrong password', () => {
  it('exits 1 and the error names the secretId to fix, not only the 535', async () => {
    const config = await file('config.json', { targets: [target('isp', { auth: { secretId: 'isp-account' } })] });
    const secrets = await file('secrets.json', { 'isp-account': { username: 'customer', password: 'wrong-password' } });
    const r = await cli(['--config', config, '--secrets', secrets]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/isp\s+permanent-failure/);
    expect(r.stdout).toContain('535');
    expect(r.stdout).toContain('secretId "isp-account"');
    expect(r.stdout + r.stderr).not.toContain('wrong-password');
  });
});
