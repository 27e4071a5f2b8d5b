/**
 * docs/real-servers.md "A private Postfix instance, to try it out", run as written: its shell
 * blocks in order (set up and start, hold a message, the dequeue command, stop and remove), with
 * only the first line's folder and ports changed to this run's. The held message must reach the
 * customer's MX after the page's own `npx dequeue --config etrn.json` (run through the binary).
 *
 * Without Postfix (or not as root): fails in CI, skipped elsewhere (test/servers/postfix.ts).
 */
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort } from '../../peers/servers/harness';
import { describeWithPostfix } from '../servers/postfix';
import { runDequeue } from '../support/dequeue-process';
import { startCustomerMx, type CustomerMx } from './customer-mx';

const PAGE = join(import.meta.dirname, '..', '..', 'docs', 'real-servers.md');
const SECTION = '### A private Postfix instance, to try it out';
const FIRST_LINE = /^dir=\S+ port=\d+ mx=\S+ domain=(\S+)$/;

/** The section's fenced blocks, in order: [language, text]. */
function sectionBlocks(): [string, string][] {
  const page = readFileSync(PAGE, 'utf8');
  const start = page.indexOf(SECTION);
  const end = page.indexOf('\n## ', start);
  const section = page.slice(start, end);
  return [...section.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => [m[1]!, m[2]!]);
}

/** Run a shell block with `sh -e`, bounded; rejects with its output when it fails. */
function sh(script: string, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'sh',
      ['-e', '-c', script],
      {
        timeout: timeoutMs,
        env: { ...process.env, PATH: `/usr/sbin:/usr/bin:/sbin:/bin:${process.env.PATH ?? ''}` },
      },
      (error, stdout, stderr) =>
        error ? reject(new Error(`${error.message}\n${stdout}${stderr}`)) : resolve(stdout),
    );
  });
}

/** Processes of the instance still alive (Postfix's daemons carry MAIL_CONFIG in their environment). */
function instanceProcesses(configDir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0');
      const state = readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.[0];
      if (environ.includes(`MAIL_CONFIG=${configDir}`) && state !== 'Z') pids.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

describeWithPostfix('the private Postfix recipe of docs/real-servers.md, as written', () => {
  let mx: CustomerMx;
  let work: string;
  let dir: string;
  let prefix: string;
  let blocks: [string, string][];

  beforeAll(async () => {
    blocks = sectionBlocks();
    mx = await startCustomerMx();
    work = await mkdtemp(join(tmpdir(), 'dequeue-recipe-'));
    // The postfix user must be able to walk down to the queue.
    await chmod(work, 0o755);
    dir = join(work, 'postfix-etrn');
  });

  afterAll(async () => {
    // The recipe's own stop ran unless a step failed: make sure nothing of the instance lives on.
    const configDir = join(dir, 'etc');
    if (instanceProcesses(configDir).length)
      await sh(`postfix -c '${configDir}' stop`, 20_000).catch(() => undefined);
    for (const pid of instanceProcesses(configDir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await mx?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it("holds a message, releases it on the page's ETRN, and stops leaving nothing behind", async () => {
    expect(blocks.map(([lang, text]) => [lang, text.split('\n')[0]])).toEqual([
      ['sh', expect.stringMatching(FIRST_LINE)],
      ['sh', expect.stringMatching(/^printf /)],
      ['json', '{'],
      ['sh', expect.stringMatching(/^npx dequeue --config etrn\.json /)],
      ['sh', expect.stringMatching(/^postfix -c "\$dir\/etc" stop/)],
    ]);
    const [[, setUp], [, hold], [, config], [, run], [, stop]] = blocks as [
      [string, string],
      [string, string],
      [string, string],
      [string, string],
      [string, string],
    ];
    const domain = FIRST_LINE.exec(setUp.split('\n')[0]!)![1]!;
    const port = await freePort();
    prefix = `dir='${dir}' port=${port} mx=127.0.0.1:${mx.port} domain=${domain}\n`;

    await sh(prefix + setUp.split('\n').slice(1).join('\n'));
    const queue = await sh(prefix + hold);
    expect(queue).toContain('sender@origin.example');

    // Postfix puts a site on its fast-flush list when it defers the message: wait for that.
    const logFile = join(dir, 'postfix.log');
    const until = Date.now() + 30_000;
    while (!(await readFile(logFile, 'utf8').catch(() => '')).includes('status=deferred')) {
      if (Date.now() > until)
        throw new Error(`never deferred:\n${await readFile(logFile, 'utf8')}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    // The page's configuration and command line, with this run's port.
    const document = JSON.parse(config) as { targets: { port: number }[] };
    document.targets[0]!.port = port;
    const etrnJson = join(work, 'etrn.json');
    await writeFile(etrnJson, JSON.stringify(document));
    const argv = run.split('#')[0]!.trim().split(/\s+/).slice(2); // after "npx dequeue"
    const r = await runDequeue([...argv.map((a) => (a === 'etrn.json' ? etrnJson : a)), '--json']);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      target: 'backup-mx',
      outcome: 'signalled',
      replies: [
        { command: `ETRN ${domain}`, code: 250, text: expect.stringMatching(/^Queuing started/) },
      ],
    });

    const received = await mx.waitFor('<held-1@origin.example>', 30_000);
    expect(received.rcptTo).toEqual([`user@${domain}`]);
    expect(received.header('Subject')).toBe('held for ETRN');

    await sh(prefix + stop);
    // `postfix stop` returns once the master is told; its children (qmgr, pickup, smtpd...) exit
    // on their own signal a moment later, later still on a loaded machine.
    const gone = Date.now() + 15_000;
    while (instanceProcesses(join(dir, 'etc')).length && Date.now() < gone)
      await new Promise((r) => setTimeout(r, 100));
    expect(instanceProcesses(join(dir, 'etc'))).toEqual([]);
    await expect(stat(dir)).rejects.toThrow(/ENOENT/);
  }, 120_000);
});
