/**
 * The precheck against a real Postfix (3.7) holding mail for customer.test, through the CLI as a
 * user runs it, with the customer's own server down and then up.
 *
 * Postfix delivers customer.test to a loopback port (its transport map); that port is also what
 * the target's `precheck` names. While nothing listens there, the cycle sends no ETRN (Postfix's
 * log shows no session from us at all) and says why; the status says the server is down. Once
 * the customer's server listens, the next cycle sends the ETRN and the held message arrives; the
 * status records the recovery. Without `precheck`, the same down server gets its ETRN as before.
 *
 * Without Postfix: fails in CI, skipped elsewhere (peers/servers/postfix.ts).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TargetResult } from '../../lambda/core/result';
import { freePort } from '../../peers/servers/harness';
import { describeWithPostfix, startPostfix, type PostfixInstance } from '../servers/postfix';
import { runDequeue, type CliRun } from '../support/dequeue-process';
import { startCustomerMx, type CustomerMx } from './customer-mx';

describeWithPostfix('precheck against a real Postfix, through the CLI', () => {
  let mx: CustomerMx | undefined;
  let mxPort: number;
  let postfix: PostfixInstance;
  let work: string;

  beforeAll(async () => {
    mxPort = await freePort();
    postfix = await startPostfix({ relayDomains: ['customer.test'], customerMxPort: mxPort });
    work = await mkdtemp(join(tmpdir(), 'dequeue-postfix-precheck-'));
  });

  afterAll(async () => {
    await postfix?.stop();
    await mx?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function configFile(name: string, precheck: boolean): Promise<string> {
    const path = join(work, `${name}.json`);
    const target = {
      name,
      host: postfix.host,
      port: postfix.port,
      command: 'ETRN customer.test',
      timeoutSeconds: 10,
      ...(precheck ? { precheck: { host: '127.0.0.1', port: mxPort, timeoutSeconds: 5 } } : {}),
    };
    await writeFile(
      path,
      JSON.stringify({ settings: { helloName: 'mx.customer.test' }, targets: [target] }),
    );
    return path;
  }

  const results = (run: CliRun): TargetResult[] =>
    run.stdout
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as TargetResult);

  /** Sessions Postfix's smtpd logged so far (each ends with a "disconnect from" line). */
  const sessions = async () => (await postfix.log()).match(/disconnect from /g)?.length ?? 0;

  it('server down: no ETRN, and why; server up: the ETRN, and the held mail arrives', async () => {
    const held = await postfix.inject({ to: 'bob@customer.test', subject: 'held while down' });
    const config = await configFile('guarded', true);
    const state = join(work, 'state.json');

    // Cycle 1: nothing listens on the customer's port.
    const before = await sessions();
    const down = await runDequeue(['--config', config, '--state', state, '--json']);
    expect(down.status, down.stderr).toBe(0);
    expect(results(down)).toEqual([
      expect.objectContaining({
        target: 'guarded',
        outcome: 'skipped',
        replies: [],
        reason: `127.0.0.1:${mxPort} refused the connection: the provider could not deliver now; ETRN customer.test not sent`,
        precheck: expect.objectContaining({ passed: false }),
      }),
    ]);
    expect(await sessions()).toBe(before);
    expect(await postfix.log()).not.toMatch(/etrn=/);
    expect(await postfix.queue()).toEqual([expect.objectContaining({ queue_id: held.queueId })]);

    const downStatus = await runDequeue(['status', '--state', state, '--json']);
    const recorded = JSON.parse(downStatus.stdout);
    expect(recorded).toMatchObject({
      target: 'guarded',
      lastOutcome: 'skipped',
      consecutiveFailures: 0,
      serverDownSince: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      lastPrecheck: {
        passed: false,
        text: `127.0.0.1:${mxPort} refused the connection`,
      },
    });
    const table = await runDequeue(['status', '--state', state]);
    expect(table.stdout).toMatch(
      new RegExp(
        `^guarded\\s+SERVER DOWN\\s+.*your server is down since \\S+: 127\\.0\\.0\\.1:${mxPort} refused the connection`,
        'm',
      ),
    );

    // Cycle 2: the customer's server is up.
    mx = await startCustomerMx(mxPort);
    const up = await runDequeue(['--config', config, '--state', state, '--json']);
    expect(up.status, up.stderr).toBe(0);
    expect(results(up)).toEqual([
      expect.objectContaining({
        outcome: 'signalled',
        replies: [{ command: 'ETRN customer.test', code: 250, text: 'Queuing started' }],
        precheck: expect.objectContaining({
          passed: true,
          text: `127.0.0.1:${mxPort} greeted 220`,
        }),
      }),
    ]);
    const message = await mx.waitFor(held.messageId);
    expect(message.header('Subject')).toBe('held while down');
    await postfix.waitForLog(/disconnect from \S+ ehlo=1 etrn=1 quit=1 commands=3$/);

    const upStatus = JSON.parse((await runDequeue(['status', '--state', state, '--json'])).stdout);
    expect(upStatus).toMatchObject({
      lastOutcome: 'signalled',
      serverDownSince: null,
      lastPrecheck: { passed: true },
    });
  });

  it('without precheck nothing changes: the ETRN goes out even while the server is down', async () => {
    await mx?.stop();
    mx = undefined;
    const run = await runDequeue(['--config', await configFile('blind', false), '--json']);
    expect(run.status, run.stderr).toBe(0);
    const [result] = results(run);
    // Postfix's own 250: the ETRN reached it, as it always has.
    expect(result).toMatchObject({
      outcome: 'signalled',
      replies: [{ command: 'ETRN customer.test', code: 250, text: 'Queuing started' }],
    });
    expect(result).not.toHaveProperty('precheck');
  });

  it('--dry-run shows the check and sends nothing; --verbose shows its transcript', async () => {
    const before = await sessions();
    const run = await runDequeue([
      '--config',
      await configFile('rehearsed', true),
      '--dry-run',
      '--verbose',
    ]);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toContain(
      `dry run: would send nothing: 127.0.0.1:${mxPort} refused the connection`,
    );
    expect(run.stderr).toContain(
      `[rehearsed] *: precheck: 127.0.0.1:${mxPort} refused the connection`,
    );
    expect(await sessions()).toBe(before);
  });
});
