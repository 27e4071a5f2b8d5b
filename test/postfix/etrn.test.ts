/**
 * ETRN against a real Postfix (3.7 from Debian), through the CLI exactly as a user runs it.
 *
 * Postfix holds mail for customer.test (defer_transports); the test runs the customer's MX (an
 * smtp-server sink) on the port the transport map points at; `dequeue --config FILE` sends the
 * ETRN; Postfix flushes the queue to the sink. What Postfix 3.7 answers (smtpd.c etrn_cmd):
 * "250 Queuing started" for any domain in fast_flush_domains, whether or not mail waits for it
 * (it never answers 251), and "459 <domain>: service unavailable" for any other domain.
 *
 * Without Postfix: fails in CI, skipped elsewhere (peers/servers/postfix.ts).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TargetResult } from '../../lambda/core/result';
import { describeWithPostfix, startPostfix, type PostfixInstance } from '../servers/postfix';
import { runDequeue, type CliRun } from '../support/dequeue-process';
import { startCustomerMx, type CustomerMx } from './customer-mx';

describeWithPostfix('ETRN against a real Postfix, through the CLI', () => {
  let mx: CustomerMx;
  let postfix: PostfixInstance;
  let work: string;

  beforeAll(async () => {
    mx = await startCustomerMx();
    postfix = await startPostfix({
      relayDomains: ['customer.test', 'quiet.test'],
      customerMxPort: mx.port,
    });
    work = await mkdtemp(join(tmpdir(), 'dequeue-postfix-cli-'));
  });

  afterAll(async () => {
    // Postfix first: its smtp client may still hold a cached connection to the sink.
    await postfix?.stop();
    await mx?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Write a configuration file with one target against this Postfix and return its path. */
  async function configFile(name: string, command: string | string[]): Promise<string> {
    const path = join(work, `${name}.json`);
    const document = {
      settings: { helloName: 'mx.customer.test' },
      targets: [{ name, host: postfix.host, port: postfix.port, command, timeoutSeconds: 10 }],
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

  it('releases a held message: 250, the customer MX receives it, Postfix logs status=sent and empties its queue', async () => {
    const held = await postfix.inject({ to: 'alice@customer.test', subject: 'held until ETRN' });
    expect(await postfix.queue()).toEqual([
      expect.objectContaining({
        queue_name: 'deferred',
        queue_id: held.queueId,
        recipients: [
          expect.objectContaining({
            address: 'alice@customer.test',
            delay_reason: 'deferred transport',
          }),
        ],
      }),
    ]);
    expect(mx.received).toHaveLength(0);

    const run = await runDequeue([
      '--config',
      await configFile('postfix-etrn', 'ETRN customer.test'),
      '--json',
    ]);

    expect(run.status, run.stderr).toBe(0);
    expect(resultLines(run)).toEqual([
      expect.objectContaining({
        target: 'postfix-etrn',
        outcome: 'signalled',
        replies: [{ command: 'ETRN customer.test', code: 250, text: 'Queuing started' }],
        messages: 0,
        error: null,
      }),
    ]);

    const message = await mx.waitFor(held.messageId);
    expect(message.header('Subject')).toBe('held until ETRN');
    expect(message.mailFrom).toBe(held.from);
    expect(message.rcptTo).toEqual(['alice@customer.test']);

    const sent = await postfix.waitForLog(
      new RegExp(
        `${held.queueId}: to=<alice@customer\\.test>, relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${mx.port}, .*status=sent`,
      ),
    );
    expect(sent).toContain('status=sent (250');
    await postfix.waitForLog(new RegExp(`${held.queueId}: removed`));
    expect(await postfix.queue()).toEqual([]);
    // Postfix's own count of what our session said: EHLO, one ETRN, QUIT, nothing else.
    await postfix.waitForLog(/disconnect from \S+ ehlo=1 etrn=1 quit=1 commands=3$/);
  });

  it('a domain Postfix does not serve: 459 "service unavailable", permanent-failure, exit status 1', async () => {
    const run = await runDequeue([
      '--config',
      await configFile('postfix-refused', 'ETRN elsewhere.test'),
    ]);

    expect(run.status, run.stderr).toBe(1);
    // The terminal output (no --json): the target, its outcome, and Postfix's reply verbatim.
    expect(run.stdout).toMatch(/^postfix-refused\s+permanent-failure\s+cycle 1, \d+ ms$/m);
    expect(run.stdout).toContain(
      'ETRN elsewhere.test -> 459 <elsewhere.test>: service unavailable',
    );
    await postfix.waitForLog(
      /warning: reject: ETRN elsewhere\.test\.\.\. from \S+\[127\.0\.0\.1\]/,
    );
    await postfix.waitForLog(/disconnect from \S+ ehlo=1 etrn=0\/1 quit=1 commands=2\/3$/);
  });

  it('two domains, one with no mail: Postfix answers 250 to both (it never says 251), and the held one is delivered', async () => {
    const held = await postfix.inject({ to: 'bob@customer.test' });

    // The empty domain first: a client that stopped at "no mail" would never ask for the other.
    const run = await runDequeue([
      '--config',
      await configFile('postfix-two', ['ETRN quiet.test', 'ETRN customer.test']),
      '--json',
    ]);

    expect(run.status, run.stderr).toBe(0);
    expect(resultLines(run)).toEqual([
      expect.objectContaining({
        target: 'postfix-two',
        outcome: 'signalled',
        replies: [
          { command: 'ETRN quiet.test', code: 250, text: 'Queuing started' },
          { command: 'ETRN customer.test', code: 250, text: 'Queuing started' },
        ],
      }),
    ]);
    const message = await mx.waitFor(held.messageId);
    expect(message.rcptTo).toEqual(['bob@customer.test']);
    await postfix.waitForLog(
      new RegExp(`${held.queueId}: to=<bob@customer\\.test>, .*status=sent`),
    );
    await postfix.waitForLog(new RegExp(`${held.queueId}: removed`));
    expect(await postfix.queue()).toEqual([]);
    await postfix.waitForLog(/disconnect from \S+ ehlo=1 etrn=2 quit=1 commands=4$/);
  });
});
