/**
 * The CLI as the process a user starts (`npx dequeue`, bin/dequeue.js): what happens to the
 * process itself when a provider misbehaves. A crash or a process that lingers after its results
 * is only visible here, not through main() in the test's own process.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ScriptedProvider,
  testCert,
  type ScriptedProviderOptions,
} from '../../peers/scripted-provider';

const REPO = join(import.meta.dirname, '..', '..');
const CLI = join(REPO, 'bin', 'dequeue.js');
/** Far more than a run here takes, far less than the 60 s reply timeout the targets are given. */
const EXIT_BOUND_MS = 20_000;

let work: string;
const providers: ScriptedProvider[] = [];
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'dequeue-process-'));
});
afterAll(async () => {
  await Promise.all(providers.map((p) => p.stop()));
  await rm(work, { recursive: true, force: true });
});

async function provider(options: ScriptedProviderOptions): Promise<ScriptedProvider> {
  const p = await new ScriptedProvider(options).start();
  providers.push(p);
  return p;
}

interface Run {
  readonly status: number | null;
  readonly killed: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

async function dequeue(config: unknown): Promise<Run> {
  const file = join(work, `config-${providers.length}-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(file, JSON.stringify(config));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, '--config', file, '--json'], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let killed = false;
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, EXIT_BOUND_MS);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, killed, stdout, stderr });
    });
  });
}

const results = (run: Run) =>
  run.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { target: string; outcome: string; replies: unknown[] });

describe('the dequeue process', () => {
  it.each([
    ['in cleartext', { tls: 'none' }, {}],
    ['over TLS', { tls: 'required', tlsVerify: false }, { tls: testCert('localhost') }],
  ])(
    'a provider that cuts the connection at the first of three ETRNs (%s): that target fails for now, the next one is still worked and reported, exit 1, no crash',
    async (_how, tlsFields, tlsOptions) => {
      const cutting = await provider({
        ...tlsOptions,
        extensions: ['PIPELINING', 'ETRN'],
        onLine: (l, c) => (l === 'ETRN a.test' ? (c.destroy(), true) : false),
      });
      const fine = await provider({ extensions: ['PIPELINING', 'ETRN'] });
      const run = await dequeue({
        settings: { concurrency: 1, helloName: 'mx.customer.test' },
        targets: [
          {
            name: 'cut',
            host: '127.0.0.1',
            port: cutting.port,
            ...tlsFields,
            command: ['ETRN a.test', 'ETRN b.test', 'ETRN c.test'],
            timeoutSeconds: 60,
          },
          {
            name: 'after',
            host: '127.0.0.1',
            port: fine.port,
            tls: 'none',
            command: 'ETRN d.test',
            timeoutSeconds: 60,
          },
        ],
      });
      expect(run.killed).toBe(false);
      expect(run.stderr).not.toMatch(/unexpected error|Unhandled|DequeueError|\n\s+at /);
      // Both reported (in the order the run worked them, which rotates from cycle to cycle).
      expect(
        results(run)
          .map((r) => [r.target, r.outcome])
          .sort(),
      ).toEqual([
        ['after', 'signalled'],
        ['cut', 'temporary-failure'],
      ]);
      expect(run.status).toBe(1);
    },
  );

  it('a provider that never answers QUIT: the process exits once the result is out, not after the 60 s reply timeout', async () => {
    const silent = await provider({
      extensions: ['PIPELINING', 'ETRN'],
      onLine: (l) => l === 'QUIT',
    });
    const run = await dequeue({
      targets: [
        {
          name: 'quiet-quit',
          host: '127.0.0.1',
          port: silent.port,
          tls: 'none',
          command: 'ETRN a.test',
          timeoutSeconds: 60,
        },
      ],
    });
    expect(run.killed).toBe(false);
    expect(results(run).map((r) => [r.target, r.outcome])).toEqual([['quiet-quit', 'signalled']]);
    expect(run.status).toBe(0);
  });
});
