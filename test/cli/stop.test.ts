/**
 * SIGINT and SIGTERM to the `dequeue` process a user started (Ctrl-C, `systemctl stop`): the
 * sessions under way end properly (421 to a provider delivering after ATRN, QUIT to an ETRN
 * provider), the results and the state of what finished are written, the result lines printed,
 * nothing is left behind (no lock, no temporary file), and the exit status is 130 or 143. A second
 * signal exits at once.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCOUNT, AtrnProvider } from '../../peers/atrn-provider';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { heldMessage } from '../core/odmr/odmr-fixtures';
import { CLI, REPO } from '../support/dequeue-process';

/** Far more than a run here takes; a process still alive then fails the test. */
const EXIT_BOUND_MS = 30_000;

let work: string;
const stops: (() => Promise<void>)[] = [];
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'dequeue-stop-'));
});
afterAll(async () => {
  await Promise.all(stops.map((s) => s()));
  await rm(work, { recursive: true, force: true });
});

/** A `dequeue` process the test can signal, and what it printed. */
class Running {
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  constructor(args: readonly string[]) {
    this.child = spawn(process.execPath, [CLI, ...args], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.setEncoding('utf8').on('data', (c: string) => (this.stdout += c));
    this.child.stderr!.setEncoding('utf8').on('data', (c: string) => (this.stderr += c));
    this.exited = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        reject(new Error(`dequeue did not exit within ${EXIT_BOUND_MS} ms: ${this.stderr}`));
      }, EXIT_BOUND_MS);
      this.child.on('error', reject);
      this.child.on('close', (status) => {
        clearTimeout(timer);
        resolve(status);
      });
    });
  }

  signal(name: NodeJS.Signals): void {
    this.child.kill(name);
  }

  /** Resolves once stderr shows `pattern` (the process said it). */
  async said(pattern: RegExp): Promise<void> {
    while (!pattern.test(this.stderr)) {
      await new Promise<void>((resolve) => this.child.stderr!.once('data', () => resolve()));
    }
  }

  get results(): { target: string; outcome: string; messages: number; reason?: string }[] {
    return this.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  }
}

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(relative(dir, join(entry.parentPath, entry.name)));
  }
  return out.sort();
}

async function setUp(name: string, config: unknown): Promise<{ dir: string; args: string[] }> {
  const dir = await mkdtemp(join(work, `${name}-`));
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  await writeFile(join(dir, 'secrets.json'), JSON.stringify({ odmr: ACCOUNT }), { mode: 0o600 });
  return {
    dir,
    args: [
      '--config',
      join(dir, 'config.json'),
      '--secrets',
      join(dir, 'secrets.json'),
      '--state',
      join(dir, 'state.json'),
      '--mail-dir',
      join(dir, 'mail'),
      '--json',
    ],
  };
}

describe('a stopped run', () => {
  it('SIGINT during an ATRN transfer: 421 to the provider, which keeps the message in flight; results, state, exit 130, nothing left over', async () => {
    let silent!: () => void;
    const midMessage = new Promise<void>((resolve) => (silent = resolve));
    const queue = [heldMessage(0), heldMessage(1, 8192), heldMessage(2)];
    const provider = await new AtrnProvider({
      queue,
      faults: { silenceInData: { message: 1, afterBytes: 3000 } },
      onFault: () => silent(),
    }).start();
    stops.push(() => provider.stop());
    const { dir, args } = await setUp('atrn', {
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
    });
    const run = new Running(args);
    await midMessage;
    run.signal('SIGINT');
    expect(await run.exited).toBe(130);
    await provider.idle();

    expect(provider.customerReplies.at(-1)).toMatch(/^421 4\.3\.2 .*shutting down/);
    expect(provider.acknowledged.map((a) => a.number)).toEqual([0]);
    expect(provider.waiting).toEqual([1, 2]);
    expect(run.results).toEqual([
      expect.objectContaining({ target: 'odmr', outcome: 'temporary-failure', messages: 1 }),
    ]);
    expect(run.stderr).toMatch(/SIGINT: ending the sessions under way properly/);
    expect(run.stderr).toMatch(/cycle 1: 1 temporary-failure; stopped by SIGINT/);
    const state = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8'));
    expect(state.cycle).toBe(1);
    expect(state.targets.odmr).toMatchObject({
      lastOutcome: 'temporary-failure',
      messagesTotal: 1,
    });
    // The acknowledged message with its envelope, and nothing else: no partial message, no
    // temporary name, no lock.
    const left = await files(dir);
    expect(left.filter((f) => f.startsWith('mail/'))).toHaveLength(2);
    expect(
      left.filter((f) => f.startsWith('mail/')).map((f) => f.replace(/[^/.]+\./, 'ID.')),
    ).toEqual(['mail/odmr/ID.eml', 'mail/odmr/ID.json']);
    expect(left.filter((f) => !f.startsWith('mail/'))).toEqual([
      'config.json',
      'secrets.json',
      'state.json',
    ]);
  });

  it('SIGTERM during ETRN: the reply awaited is taken, QUIT instead of the next ETRN, a target not started is not recorded; exit 143', async () => {
    let term!: () => void;
    const asked = new Promise<void>((resolve) => (term = resolve));
    let answer!: () => void;
    const provider = await new ScriptedProvider({
      extensions: ['ETRN'],
      onLine: (line, conn) => {
        if (line !== 'ETRN a.test') return false;
        term();
        answer = () => conn.reply('250 Queuing started');
        return true;
      },
    }).start();
    stops.push(() => provider.stop());
    const target = (name: string, command: string[]) => ({
      name,
      host: '127.0.0.1',
      port: provider.port,
      tls: 'none',
      command,
      timeoutSeconds: 60,
    });
    // Cycle 1 works the second target first (due-targets.ts rotates the order every cycle).
    const { dir, args } = await setUp('etrn', {
      settings: { concurrency: 1 },
      targets: [target('later', ['ETRN c.test']), target('etrn', ['ETRN a.test', 'ETRN b.test'])],
    });
    const run = new Running(args);
    await asked;
    run.signal('SIGTERM');
    await run.said(/SIGTERM: ending the sessions/);
    answer();
    expect(await run.exited).toBe(143);

    expect(provider.lines).not.toContain('ETRN b.test');
    expect(provider.lines).not.toContain('ETRN c.test');
    expect(provider.lines.at(-1)).toBe('QUIT');
    const byTarget = Object.fromEntries(run.results.map((r) => [r.target, r]));
    expect(byTarget.etrn).toMatchObject({
      outcome: 'temporary-failure',
      replies: [
        { command: 'ETRN a.test', code: 250, text: 'Queuing started' },
        { command: 'ETRN b.test', code: null, text: expect.stringMatching(/stopped \(SIGTERM\)/) },
      ],
    });
    expect(byTarget.later).toMatchObject({
      outcome: 'skipped',
      reason: 'not started: the run was stopped (SIGTERM)',
    });
    const state = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8'));
    expect(Object.keys(state.targets)).toEqual(['etrn']);
    expect(await files(dir)).toEqual(['config.json', 'secrets.json', 'state.json']);
  });

  it('a second SIGINT exits at once, its lock removed', async () => {
    let asked!: () => void;
    const waiting = new Promise<void>((resolve) => (asked = resolve));
    const provider = await new ScriptedProvider({
      extensions: ['ETRN'],
      // Never answers: only the stop grace would end this session.
      onLine: (line) => (line.startsWith('ETRN') ? (asked(), true) : false),
    }).start();
    stops.push(() => provider.stop());
    const { dir, args } = await setUp('twice', {
      targets: [
        {
          name: 'slow',
          host: '127.0.0.1',
          port: provider.port,
          tls: 'none',
          command: 'ETRN a.test',
          timeoutSeconds: 60,
        },
      ],
    });
    const run = new Running(args);
    await waiting;
    expect(await files(dir)).toContain('state.json.lock');
    run.signal('SIGINT');
    await run.said(/SIGINT: ending/);
    run.signal('SIGINT');
    expect(await run.exited).toBe(130);
    expect(run.stderr).toMatch(/SIGINT again: exiting at once/);
    expect(await files(dir)).not.toContain('state.json.lock');
  });
});
