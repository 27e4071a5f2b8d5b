/**
 * --mail-memory: the memory all ATRN sessions of a CLI run may hold for mail in flight. It reaches
 * the mail store's receiver as one budget for the run; a value that is not a size is a usage error.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli-run';
import type { MemoryBudget } from '../../lambda/core/memory-budget';
import type { MailReceiver } from '../../lambda/core/ports';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dequeue-mail-memory-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

async function run(
  extra: string[],
): Promise<{ status: number; stderr: string; budget: MemoryBudget | undefined }> {
  const config = join(dir, 'config.json');
  await writeFile(
    config,
    JSON.stringify({
      targets: [
        {
          name: 'isp',
          host: '127.0.0.1',
          port: 9,
          tls: 'none',
          command: 'ATRN',
          mail: { domains: ['customer.test'] },
          ehlo: true,
          auth: { secretId: 'isp' },
          timeoutSeconds: 1,
        },
      ],
    }),
  );
  const secrets = join(dir, 'secrets.json');
  await writeFile(secrets, JSON.stringify({ isp: { username: 'u', password: 'p' } }), {
    mode: 0o600,
  });
  let budget: MemoryBudget | undefined;
  const receiver: MailReceiver = async () => ({ stored: 0, error: null });
  const { status, stderr } = await runCli(
    ['--config', config, '--secrets', secrets, '--mail-dir', join(dir, 'mail'), '--json', ...extra],
    {
      openMailDir: async (_dir, _config, _dryRun, memory) => {
        budget = memory;
        return receiver;
      },
    },
  );
  return { status, stderr, budget };
}

describe('--mail-memory', () => {
  it('gives every ATRN session of the run one budget of that many MiB (default 256)', async () => {
    expect((await run(['--mail-memory', '32'])).budget?.limitBytes).toBe(32 * 1024 * 1024);
    expect((await run([])).budget?.limitBytes).toBe(256 * 1024 * 1024);
  });

  it('a value that is not a whole number of MiB is a usage error (exit 2)', async () => {
    const r = await run(['--mail-memory', 'lots']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--mail-memory lots: must be a whole number of MiB, at least 1');
  });
});
