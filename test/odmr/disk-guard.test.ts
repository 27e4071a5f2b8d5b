/**
 * The mail directory keeps free space (--min-free-mib): a provider delivering after ATRN gets
 * 452 4.3.1 at MAIL once the file system is short of it, keeps what it was refused, and nothing is
 * lost: what it saw acknowledged is stored, the rest it still holds. First with the free space
 * read through the sink's port, then on a real small file system (a tmpfs of its own size, mounted
 * in a private mount namespace for the `dequeue` process alone).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMailDirSink } from '../../cli/adapters/mail-dir-sink';
import { createMailReceiver } from '../../lambda/core/odmr/reversed-session';
import { releaseSignal } from '../../lambda/core/signal/session';
import { ACCOUNT, AtrnProvider, type HeldMessage } from '../../peers/atrn-provider';
import {
  atrnTarget,
  credentials,
  heldMessage,
  readMailDir,
  tempDir,
} from '../core/odmr/odmr-fixtures';
import { CLI, REPO } from '../support/dequeue-process';
import { describeWithInstalled } from '../servers/installed';

const MiB = 1024 * 1024;

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'dequeue-disk-guard-'));
});
afterAll(async () => rm(work, { recursive: true, force: true }));

async function pull(queue: HeldMessage[], free: number, minFree: number, declareSize = false) {
  const provider = await new AtrnProvider({ queue, declareSize }).start();
  const dir = await tempDir('dequeue-disk-guard-');
  try {
    const sink = createMailDirSink(dir.path, {
      minFreeBytes: minFree,
      freeBytes: async () => free,
    });
    const report = await releaseSignal(
      atrnTarget(provider.port),
      {},
      { credentials, helloName: 'mx.customer.test', receiver: createMailReceiver(sink) },
    );
    await provider.idle();
    return { provider, report, stored: await readMailDir(dir.path) };
  } finally {
    await provider.stop();
    await dir.remove();
  }
}

describe('the disk guard, the free space read through the sink', () => {
  it('below the bound: 452 4.3.1 at MAIL, the session ends, the provider keeps everything, the result says why', async () => {
    const run = await pull([heldMessage(0), heldMessage(1)], 40 * MiB, 100 * MiB);
    expect(run.provider.customerReplies).toContain('452 4.3.1 Insufficient system storage');
    expect(run.provider.waiting).toEqual([0, 1]);
    expect(run.stored.stored).toEqual([]);
    expect(run.stored.others).toEqual([]);
    expect(run.report.outcome).toBe('temporary-failure');
    expect(run.report.error?.message).toMatch(
      /has 40 MiB free, less than the 100 MiB it keeps \(--min-free-mib\): new mail is refused with 452 4\.3\.1 and stays with the provider/,
    );
  });

  it('a declared SIZE too big for the space left: that message is put off (452), the others come', async () => {
    const queue = [heldMessage(0), heldMessage(1, 200_000), heldMessage(2)];
    const run = await pull(queue, 100 * MiB + 100_000, 100 * MiB, true);
    expect(run.provider.acknowledged.map((a) => a.number)).toEqual([0, 2]);
    expect(run.provider.waiting).toEqual([1]);
    expect(run.stored.stored).toHaveLength(2);
    expect(run.report.messages).toBe(2);
    expect(run.report.error?.message).toMatch(
      /^1 message\(s\) put off, the provider keeps them: a message of \d+ bytes would leave/,
    );
  });
});

/** Why a tmpfs cannot be mounted here (a private mount namespace), or undefined when it can. */
function mountProblem(): string | undefined {
  const probe = spawnSync(
    'unshare',
    [
      '--user',
      '--map-root-user',
      '--mount',
      'sh',
      '-c',
      `mount -t tmpfs -o size=1m tmpfs "$1"`,
      'sh',
      tmpdir(),
    ],
    { encoding: 'utf8' },
  );
  if (probe.error) return `unshare is not available: ${probe.error.message}`;
  if (probe.status !== 0)
    return `a tmpfs cannot be mounted in a private mount namespace here: ${probe.stderr.trim()}`;
  return undefined;
}

/**
 * `dequeue --mail-dir MNT/mail --min-free-mib 16 --json` against `provider`, in a private mount
 * namespace where MNT is a 32 MiB tmpfs filled to `freeBytes` free; resolves with the exit status,
 * the result lines, stderr, and the files left under MNT/mail.
 */
async function runOnSmallFs(provider: AtrnProvider, freeBytes: number) {
  const config = join(work, 'config.json');
  await writeFile(
    config,
    JSON.stringify({
      settings: { helloName: 'mx.customer.test' },
      targets: [
        {
          name: 'odmr',
          host: '127.0.0.1',
          port: provider.port,
          tls: 'none',
          auth: { secretId: 'odmr' },
          command: 'ATRN customer.test',
        },
      ],
    }),
  );
  const secrets = join(work, 'secrets.json');
  await writeFile(secrets, JSON.stringify({ odmr: ACCOUNT }), { mode: 0o600 });
  const mnt = await mkdtemp(join(work, 'mnt-'));
  // Inside the namespace: mount, fill the file system to FREE bytes free, run, show the files.
  const script = [
    'mount -t tmpfs -o size=32m tmpfs "$MNT"',
    'avail=$(df -B1 --output=avail "$MNT" | tail -1)',
    'head -c $((avail - FREE)) /dev/zero > "$MNT/filler"',
    `"$NODE" "$CLI" --config "$CONFIG" --secrets "$SECRETS" --mail-dir "$MNT/mail" --min-free-mib 16 --json`,
    'status=$?',
    'echo "--- files"',
    'mkdir -p "$MNT/mail" && cd "$MNT/mail" && find . -type f | sort',
    'exit $status',
  ].join('\n');
  const out = await new Promise<{ status: number | null; stdout: string; stderr: string }>(
    (resolve, reject) => {
      const child = spawn('unshare', ['--user', '--map-root-user', '--mount', 'sh', '-c', script], {
        cwd: REPO,
        env: {
          ...process.env,
          MNT: mnt,
          FREE: String(freeBytes),
          NODE: process.execPath,
          CLI,
          CONFIG: config,
          SECRETS: secrets,
        },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      child.on('error', reject);
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    },
  );
  await provider.idle();
  const [results, files] = out.stdout.split('--- files\n');
  return {
    status: out.status,
    stderr: out.stderr,
    result: JSON.parse(results!.trim()),
    stored: files!.trim().split('\n').filter(Boolean),
  };
}

describeWithInstalled(
  'a private tmpfs (unshare --user --map-root-user --mount)',
  mountProblem(),
  'the disk guard on a small file system',
  () => {
    it('a 32 MiB tmpfs filled to 1.5 MiB above --min-free-mib 16: two 1 MiB messages stored, then 452 4.3.1; nothing lost', async () => {
      const queue = [0, 1, 2].map((n) => heldMessage(n, MiB));
      const provider = await new AtrnProvider({ queue }).start();
      try {
        const run = await runOnSmallFs(provider, 17.5 * MiB);
        expect(run.status, run.stderr).toBe(1);
        expect(run.result).toMatchObject({
          target: 'odmr',
          outcome: 'temporary-failure',
          messages: 2,
          error: expect.stringMatching(/less than the 16 MiB it keeps \(--min-free-mib\)/),
        });
        expect(provider.customerReplies).toContain('452 4.3.1 Insufficient system storage');
        // Nothing lost: what was acknowledged is stored, the rest is still at the provider.
        expect(provider.acknowledged.map((a) => a.number)).toEqual([0, 1]);
        expect(provider.waiting).toEqual([2]);
        expect(run.stored.filter((f) => f.endsWith('.eml'))).toHaveLength(2);
        expect(run.stored.filter((f) => f.endsWith('.json'))).toHaveLength(2);
        expect(run.stored).toHaveLength(4);
      } finally {
        await provider.stop();
      }
    });

    it('a tmpfs already below the bound: the run says so when it starts, the first MAIL gets 452 4.3.1, nothing is stored and the provider keeps all', async () => {
      const queue = [0, 1].map((n) => heldMessage(n));
      const provider = await new AtrnProvider({ queue }).start();
      try {
        const run = await runOnSmallFs(provider, 8 * MiB);
        expect(run.status, run.stderr).toBe(1);
        expect(run.stderr).toMatch(
          /--mail-dir \S+ has [\d.]+ MiB free, less than the 16 MiB it keeps \(--min-free-mib\): ATRN mail is refused with 452 4\.3\.1 and stays with the providers until space is freed/,
        );
        expect(run.result).toMatchObject({
          target: 'odmr',
          outcome: 'temporary-failure',
          messages: 0,
          error: expect.stringMatching(/less than the 16 MiB it keeps \(--min-free-mib\)/),
        });
        expect(provider.customerReplies).toContain('452 4.3.1 Insufficient system storage');
        expect(provider.acknowledged).toEqual([]);
        expect(provider.waiting).toEqual([0, 1]);
        expect(run.stored).toEqual([]);
      } finally {
        await provider.stop();
      }
    });
  },
);
