/**
 * SIGINT and SIGTERM to the `dequeue` process a user started (Ctrl-C, `systemctl stop`): the
 * sessions under way end properly (421 to a provider delivering after ATRN, QUIT to an ETRN
 * provider), the results and the state of what finished are written, the result lines printed,
 * nothing is left behind (no lock, no temporary file), and the exit status is 130 or 143. A second
 * signal exits at once.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCOUNT, AtrnProvider } from '../../peers/atrn-provider';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { heldMessage } from '../core/odmr/odmr-fixtures';
import { files, Running } from '../support/signalled-process';

let work: string;
const stops: (() => Promise<void>)[] = [];
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'dequeue-stop-'));
});
afterAll(async () => {
  await Promise.all(stops.map((s) => s()));
  await rm(work, { recursive: true, force: true });
});

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
  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)(
    '%s during an ATRN transfer: 421 to the provider, which keeps the message in flight; results, state, exit %i, nothing left over',
    async (name, status) => {
      let silent!: () => void;
      const midMessage = new Promise<void>((resolve) => (silent = resolve));
      const queue = [heldMessage(0), heldMessage(1, 8192), heldMessage(2)];
      const provider = await new AtrnProvider({
        queue,
        faults: { silenceInData: { message: 1, afterBytes: 3000 } },
        onFault: () => silent(),
      }).start();
      stops.push(() => provider.stop());
      const { dir, args } = await setUp(`atrn-${name}`, {
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
      run.signal(name);
      expect(await run.exited).toBe(status);
      await provider.idle();

      expect(provider.customerReplies.at(-1)).toMatch(/^421 4\.3\.2 .*shutting down/);
      expect(provider.acknowledged.map((a) => a.number)).toEqual([0]);
      expect(provider.waiting).toEqual([1, 2]);
      expect(run.results).toEqual([
        expect.objectContaining({ target: 'odmr', outcome: 'temporary-failure', messages: 1 }),
      ]);
      expect(run.stderr).toContain(`${name}: ending the sessions under way properly`);
      expect(run.stderr).toContain(`cycle 1: 1 temporary-failure; stopped by ${name}`);
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
    },
  );

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
