/**
 * ETRN through STARTTLS to a real Exim (Debian's 4.96), through the CLI as a user runs it: Exim
 * offers STARTTLS with a self-signed certificate made with openssl when the suite starts
 * (`tls_advertise_hosts = *`, tls_certificate, tls_privatekey; the targets say
 * `"tlsVerify": false`, as one must for such a certificate).
 *
 * Exim sends each reply once inside TLS even when ETRNs are pipelined (its TLS output has its
 * own buffer, which the process forked for the ETRN command does not flush again): the first
 * test shows that with a raw TLS session on this very daemon. sendmail does not (test/sendmail/),
 * so dequeue sends one ETRN at a time over TLS too, the last with the QUIT; the others show each
 * reply paired with its own ETRN.
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

describeWithExim('ETRN through STARTTLS to a real Exim, through the CLI', () => {
  let exim: EximInstance;
  let work: string;

  beforeAll(async () => {
    exim = await startExim({ tls: true, etrnDomains: ['customer.test', 'other.test'] });
    work = await mkdtemp(join(tmpdir(), 'dequeue-exim-tls-'));
  });

  afterAll(async () => {
    await exim?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function configFile(name: string, command: string[]): Promise<string> {
    const path = join(work, `${name}.json`);
    const document = {
      settings: { helloName: 'mx.customer.test' },
      targets: [
        {
          name,
          host: exim.host,
          port: exim.port,
          tls: 'required',
          tlsVerify: false,
          command,
          timeoutSeconds: 10,
        },
      ],
    };
    await writeFile(path, JSON.stringify(document));
    return path;
  }

  const resultOf = (run: CliRun) =>
    run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as TargetResult);
  /** What the client said and heard after STARTTLS's EHLO, from the --verbose transcript. */
  const afterEhlo = (run: CliRun, name: string) => {
    const lines = run.stderr
      .split('\n')
      .filter((l) => l.startsWith(`[${name}] C: `) || l.startsWith(`[${name}] S: `))
      .map((l) => l.slice(name.length + 3));
    return lines.slice(lines.findIndex((l) => l.startsWith('C: ETRN')));
  };

  it('Exim answers ETRN, ETRN, QUIT pipelined inside TLS with exactly three replies, in order', async () => {
    const runsBefore = (await exim.etrnRuns()).length;
    const raw = await pipelinedSession(
      exim.port,
      ['ETRN elsewhere.test', 'ETRN customer.test', 'QUIT'],
      { starttls: true },
    );
    expect(raw.tls).toMatch(/^TLSv1\.[23]$/);
    expect(raw.replies).toEqual([
      '458 Administrative prohibition',
      '250 OK',
      expect.stringMatching(/^221 /),
    ]);
    expect((await exim.waitForEtrnRuns(runsBefore + 1)).slice(runsBefore)).toEqual([
      'customer.test',
    ]);
  });

  it('three domains inside TLS, the refused one first: each reply paired with its own ETRN, exit 1', async () => {
    const from = (await exim.log('reject')).length;
    const runsBefore = (await exim.etrnRuns()).length;

    const run = await runDequeue([
      '--config',
      await configFile('exim-tls', [
        'ETRN elsewhere.test',
        'ETRN customer.test',
        'ETRN other.test',
      ]),
      '--json',
      '--verbose',
    ]);

    expect(run.status, run.stderr).toBe(1);
    expect(resultOf(run)).toEqual([
      expect.objectContaining({
        target: 'exim-tls',
        outcome: 'temporary-failure',
        replies: [
          { command: 'ETRN elsewhere.test', code: 458, text: 'Administrative prohibition' },
          { command: 'ETRN customer.test', code: 250, text: 'OK' },
          { command: 'ETRN other.test', code: 250, text: 'OK' },
        ],
        error: null,
      }),
    ]);
    expect(run.stderr).toMatch(/\[exim-tls\] \*: TLS started \(TLSv1\.[23]\)/);
    // One ETRN at a time; the last one with the QUIT.
    expect(afterEhlo(run, 'exim-tls')).toEqual([
      'C: ETRN elsewhere.test',
      'S: 458 Administrative prohibition',
      'C: ETRN customer.test',
      'S: 250 OK',
      'C: ETRN other.test',
      'C: QUIT',
      'S: 250 OK',
      expect.stringMatching(/^S: 221 /),
    ]);
    expect((await exim.waitForEtrnRuns(runsBefore + 2)).slice(runsBefore).sort()).toEqual([
      'customer.test',
      'other.test',
    ]);
    // Exim's own record: the refusal came inside TLS.
    expect(
      await exim.waitForLog(/rejected ETRN elsewhere\.test/, { which: 'reject', from }),
    ).toMatch(
      /H=\(mx\.customer\.test\) \[127\.0\.0\.1\] X=TLS1\.[23]:\S+ CV=no rejected ETRN elsewhere\.test$/,
    );
    await exim.waitForLog(
      /SMTP connection from \(mx\.customer\.test\) \[127\.0\.0\.1\]\S* closed by QUIT/,
    );
  });

  it('two allowed domains inside TLS: signalled, exit 0, the command ran for each', async () => {
    const runsBefore = (await exim.etrnRuns()).length;
    const run = await runDequeue([
      '--config',
      await configFile('exim-tls-ok', ['ETRN other.test', 'ETRN customer.test']),
      '--json',
      '--verbose',
    ]);

    expect(run.status, run.stderr).toBe(0);
    expect(resultOf(run)).toEqual([
      expect.objectContaining({
        outcome: 'signalled',
        replies: [
          { command: 'ETRN other.test', code: 250, text: 'OK' },
          { command: 'ETRN customer.test', code: 250, text: 'OK' },
        ],
        error: null,
      }),
    ]);
    expect(afterEhlo(run, 'exim-tls-ok').slice(0, 4)).toEqual([
      'C: ETRN other.test',
      'S: 250 OK',
      'C: ETRN customer.test',
      'C: QUIT',
    ]);
    expect((await exim.waitForEtrnRuns(runsBefore + 2)).slice(runsBefore).sort()).toEqual([
      'customer.test',
      'other.test',
    ]);
  });
});
