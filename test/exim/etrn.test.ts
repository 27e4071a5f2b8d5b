/**
 * ETRN against a real Exim (Debian's 4.96), in cleartext, through the CLI exactly as a user runs it.
 *
 * The private daemon (peers/servers/exim.ts) accepts ETRN for customer.test, other.test and third.test and
 * runs its smtp_etrn_command for them (which writes the domain to a file we read); it denies any
 * other domain, which Exim answers with "458 Administrative prohibition". It offers no STARTTLS,
 * so the targets' default (opportunistic TLS) talks cleartext, as with a provider without TLS.
 *
 * Exim's quirk: ETRNs pipelined in cleartext make it send a reply twice (it forks for the ETRN
 * command with earlier replies still in its output buffer, and the child flushes them again). The
 * last test shows that on this very daemon with a raw socket, then that dequeue's results for the
 * same domains are still right: in cleartext it sends several ETRNs one per round trip.
 *
 * Without Exim: fails in CI, skipped elsewhere (peers/servers/exim.ts).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TargetResult } from '../../lambda/core/result';
import { describeWithExim, startExim, type EximInstance } from '../servers/exim';
import { runDequeue, type CliRun } from '../support/dequeue-process';
import { pipelinedSession } from './raw-session';

describeWithExim('ETRN against a real Exim in cleartext, through the CLI', () => {
  let exim: EximInstance;
  let work: string;

  beforeAll(async () => {
    exim = await startExim({ etrnDomains: ['customer.test', 'other.test', 'third.test'] });
    work = await mkdtemp(join(tmpdir(), 'dequeue-exim-cli-'));
  });

  afterAll(async () => {
    await exim?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function configFile(name: string, command: string | string[]): Promise<string> {
    const path = join(work, `${name}.json`);
    const document = {
      settings: { helloName: 'mx.customer.test' },
      targets: [{ name, host: exim.host, port: exim.port, command, timeoutSeconds: 10 }],
    };
    await writeFile(path, JSON.stringify(document, null, 2));
    return path;
  }

  function resultLines(run: CliRun): TargetResult[] {
    return run.stdout
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as TargetResult);
  }

  /** Exim's mainlog lines of the sessions that said EHLO mx.customer.test, past `from`. */
  async function sessionLines(from: number): Promise<string[]> {
    await exim.waitForLog(
      /SMTP connection from \(mx\.customer\.test\) \[127\.0\.0\.1\]\S* closed by QUIT/,
      { from },
    );
    return (await exim.log())
      .slice(from)
      .split('\n')
      .filter((l) => l.includes('(mx.customer.test)'))
      .map((l) => l.replace(/^\S+ \S+ /, ''));
  }

  it('one allowed domain: "250 OK", signalled, exit 0, and Exim ran its ETRN command for it', async () => {
    const from = (await exim.log()).length;
    const runsBefore = (await exim.etrnRuns()).length;

    const run = await runDequeue([
      '--config',
      await configFile('exim-one', 'ETRN customer.test'),
      '--json',
    ]);

    expect(run.status, run.stderr).toBe(0);
    expect(resultLines(run)).toEqual([
      expect.objectContaining({
        target: 'exim-one',
        outcome: 'signalled',
        replies: [{ command: 'ETRN customer.test', code: 250, text: 'OK' }],
        error: null,
      }),
    ]);
    expect((await exim.waitForEtrnRuns(runsBefore + 1)).slice(runsBefore)).toEqual([
      'customer.test',
    ]);
    expect(await sessionLines(from)).toEqual([
      'ETRN customer.test received from (mx.customer.test) [127.0.0.1]',
      expect.stringMatching(
        /^SMTP connection from \(mx\.customer\.test\) \[127\.0\.0\.1\]\S* closed by QUIT$/,
      ),
    ]);
  });

  it('one refused domain: "458 Administrative prohibition", temporary-failure, exit 1, in the rejectlog, no command run', async () => {
    const from = (await exim.log()).length;
    const rejectFrom = (await exim.log('reject')).length;
    const runsBefore = (await exim.etrnRuns()).length;

    const run = await runDequeue([
      '--config',
      await configFile('exim-refused', 'ETRN elsewhere.test'),
    ]);

    expect(run.status, run.stderr).toBe(1);
    expect(run.stdout).toMatch(/^exim-refused\s+temporary-failure\s+cycle 1, \d+ ms$/m);
    expect(run.stdout).toContain('ETRN elsewhere.test -> 458 Administrative prohibition');
    expect(await sessionLines(from)).toEqual([
      'ETRN elsewhere.test received from (mx.customer.test) [127.0.0.1]',
      'H=(mx.customer.test) [127.0.0.1] rejected ETRN elsewhere.test',
      expect.stringMatching(/closed by QUIT$/),
    ]);
    await exim.waitForLog(
      /H=\(mx\.customer\.test\) \[127\.0\.0\.1\] rejected ETRN elsewhere\.test/,
      { which: 'reject', from: rejectFrom },
    );
    // Nothing forked for it: the session is over and the command file has no new line.
    expect(await exim.etrnRuns()).toHaveLength(runsBefore);
  });

  it('three domains, the refused one first: each gets its own reply, Exim ran the command for the two allowed, exit 1', async () => {
    const from = (await exim.log()).length;
    const runsBefore = (await exim.etrnRuns()).length;

    const run = await runDequeue([
      '--config',
      await configFile('exim-three', [
        'ETRN elsewhere.test',
        'ETRN customer.test',
        'ETRN other.test',
      ]),
      '--json',
      '--verbose',
    ]);

    expect(run.status, run.stderr).toBe(1);
    expect(resultLines(run)).toEqual([
      expect.objectContaining({
        target: 'exim-three',
        outcome: 'temporary-failure',
        replies: [
          { command: 'ETRN elsewhere.test', code: 458, text: 'Administrative prohibition' },
          { command: 'ETRN customer.test', code: 250, text: 'OK' },
          { command: 'ETRN other.test', code: 250, text: 'OK' },
        ],
        error: null,
      }),
    ]);
    expect((await exim.waitForEtrnRuns(runsBefore + 2)).slice(runsBefore).sort()).toEqual([
      'customer.test',
      'other.test',
    ]);
    expect(await sessionLines(from)).toEqual([
      'ETRN elsewhere.test received from (mx.customer.test) [127.0.0.1]',
      'H=(mx.customer.test) [127.0.0.1] rejected ETRN elsewhere.test',
      'ETRN customer.test received from (mx.customer.test) [127.0.0.1]',
      'ETRN other.test received from (mx.customer.test) [127.0.0.1]',
      expect.stringMatching(/closed by QUIT$/),
    ]);
    // In cleartext one ETRN per round trip; the last one travels with the QUIT.
    const said = run.stderr
      .split('\n')
      .filter((l) => /^\[exim-three\] [CS]: /.test(l))
      .map((l) => l.replace(/^\[exim-three\] /, ''));
    expect(said.slice(said.indexOf('C: ETRN elsewhere.test'))).toEqual([
      'C: ETRN elsewhere.test',
      'S: 458 Administrative prohibition',
      'C: ETRN customer.test',
      'S: 250 OK',
      'C: ETRN other.test',
      'C: QUIT',
      'S: 250 OK',
      expect.stringMatching(/^S: 221 /),
    ]);
  });

  it('three allowed domains: signalled, exit 0, the command ran once for each', async () => {
    const runsBefore = (await exim.etrnRuns()).length;
    const run = await runDequeue([
      '--config',
      await configFile('exim-all', ['ETRN other.test', 'ETRN customer.test', 'ETRN third.test']),
      '--json',
    ]);

    expect(run.status, run.stderr).toBe(0);
    expect(resultLines(run)).toEqual([
      expect.objectContaining({
        outcome: 'signalled',
        replies: [
          { command: 'ETRN other.test', code: 250, text: 'OK' },
          { command: 'ETRN customer.test', code: 250, text: 'OK' },
          { command: 'ETRN third.test', code: 250, text: 'OK' },
        ],
      }),
    ]);
    expect((await exim.waitForEtrnRuns(runsBefore + 3)).slice(runsBefore).sort()).toEqual([
      'customer.test',
      'other.test',
      'third.test',
    ]);
  });

  it('the quirk is real: ETRN, ETRN, QUIT pipelined in cleartext get four replies (the 458 twice); dequeue still pairs them right', async () => {
    const runsBefore = (await exim.etrnRuns()).length;
    // After EHLO, one write: the refused ETRN, an allowed one, QUIT.
    const raw = await pipelinedSession(exim.port, [
      'ETRN elsewhere.test',
      'ETRN customer.test',
      'QUIT',
    ]);
    expect(raw.greeting).toMatch(/^220 provider\.exim\.test ESMTP Exim 4\.96 /);
    expect(raw.tls).toBeNull();
    // Four replies to three commands: the 458 comes twice. Exim forks for customer.test's ETRN
    // command with the 458 still in its output buffer, and the child flushes its copy as it closes
    // the connection; whether before or after the parent's own flush is up to the scheduler.
    expect(raw.replies, raw.replies.join(' | ')).toHaveLength(4);
    expect(raw.replies.filter((r) => r === '458 Administrative prohibition')).toHaveLength(2);
    expect(raw.replies.filter((r) => r === '250 OK')).toHaveLength(1);
    expect(raw.replies).toContainEqual(expect.stringMatching(/^221 /));
    // A client pairing by position would report 458 for customer.test and 458 (or 250) for QUIT.
    // The reply is doubled, not the request: the command ran once.
    expect((await exim.waitForEtrnRuns(runsBefore + 1)).slice(runsBefore)).toEqual([
      'customer.test',
    ]);

    const run = await runDequeue([
      '--config',
      await configFile('exim-quirk', ['ETRN elsewhere.test', 'ETRN customer.test']),
      '--json',
    ]);
    expect(run.status, run.stderr).toBe(1);
    expect(resultLines(run)).toEqual([
      expect.objectContaining({
        outcome: 'temporary-failure',
        replies: [
          { command: 'ETRN elsewhere.test', code: 458, text: 'Administrative prohibition' },
          { command: 'ETRN customer.test', code: 250, text: 'OK' },
        ],
        error: null,
      }),
    ]);
    expect((await exim.waitForEtrnRuns(runsBefore + 2)).slice(runsBefore)).toEqual([
      'customer.test',
      'customer.test',
    ]);
  });
});
