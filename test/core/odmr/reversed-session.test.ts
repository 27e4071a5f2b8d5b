/**
 * The reversed session end to end on loopback: the signal session authenticates and sends ATRN
 * to the in-process provider, which turns the connection around and delivers its queue into the
 * mail directory. Every test checks what a user would: what the directory shows, what the
 * provider saw acknowledged, and what it still holds. A hostile or broken provider:
 * reversed-session-hostile.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createMailDirSink } from '../../../cli/adapters/mail-dir-sink';
import type { MailSink } from '../../../lambda/core/ports';
import { testCert } from '../../../peers/scripted-provider';
import { failingSink, providerBytes, readMailDir } from './odmr-fixtures';
import { cleanUp, expectStoredExactlyAcknowledged, pull, queueOf } from './pull-run';

afterEach(cleanUp);

describe('ODMR: pulling the held mail after ATRN', () => {
  it('stores every message of the queue with its envelope, and the provider is left empty', async () => {
    const queue = queueOf(5);
    const run = await pull({ queue });
    expect(run.report.outcome).toBe('signalled');
    expect(run.report.messages).toBe(5);
    expect(run.report.error).toBeNull();
    expect(run.provider.waiting).toEqual([]);
    await expectStoredExactlyAcknowledged(run, queue);
    const { stored } = await readMailDir(run.dir);
    const envelope = stored[0]!.envelope;
    expect(envelope).toMatchObject({
      mailFrom: 'sender0@origin.test',
      rcptTo: ['user0@customer.test', 'other0@customer.test'],
      provider: `127.0.0.1:${run.provider.port}`,
      target: 'odmr-test',
      heloName: 'provider.test',
      tls: false,
    });
    expect(stored[0]!.message.toString('latin1')).toMatch(
      /^Received: from provider\.test \(\[127\.0\.0\.1\]\)\r\n\tby mx\.customer\.test \(dequeue ODMR\) with ESMTP id /,
    );
    expect(run.transcript).toContain(`S 250 2.0.0 Ok: stored as ${stored[0]!.id}`);
  });
});

describe('ODMR: the provider pipelines, declares sizes, and has quirks', () => {
  it('serves a pipelined provider that declares SIZE (RFC 2920, RFC 1870)', async () => {
    const queue = queueOf(4);
    const run = await pull({ queue, pipelining: true, declareSize: true });
    expect(run.report.messages).toBe(4);
    expect(run.provider.waiting).toEqual([]);
    await expectStoredExactlyAcknowledged(run, queue);
    expect(
      run.transcript.some((l) => /^C MAIL FROM:<sender0@origin\.test> SIZE=\d+$/.test(l)),
    ).toBe(true);
  });

  it('turns around inside TLS after STARTTLS: the provider delivers over the encrypted socket', async () => {
    const queue = queueOf(3, 100_000);
    const run = await pull(
      { queue, tls: testCert('localhost') },
      { target: { host: 'localhost', tls: 'required' } },
    );
    expect(run.report.messages).toBe(3);
    await expectStoredExactlyAcknowledged(run, queue);
    const { stored } = await readMailDir(run.dir);
    expect(stored[0]!.envelope.tls).toBe(true);
    expect(stored[0]!.message.toString('latin1')).toMatch(/with ESMTPS id/);
  });

  it('ignores the stray empty line INetSim sends after the final dot, so no reply gets out of step', async () => {
    const queue = queueOf(3);
    const run = await pull({ queue, faults: { strayEmptyLine: true } });
    expect(run.report.messages).toBe(3);
    expect(run.report.error).toBeNull();
    expect(run.provider.customerReplies.filter((r) => /^5/.test(r))).toEqual([]);
    await expectStoredExactlyAcknowledged(run, queue);
  });

  it('reports no-mail when ATRN answers 453, and never turns the connection', async () => {
    const run = await pull({ queue: queueOf(1), atrnReply: '453 You have no mail' });
    expect(run.report.outcome).toBe('no-mail');
    expect(run.report.messages).toBe(0);
    expect(run.provider.customerReplies).toEqual([]);
  });

  it.each([
    ['450 4.7.0 ATRN request refused', 'permanent-failure'],
    ['451 4.3.0 Unable to process ATRN request now', 'temporary-failure'],
    ['530 5.7.0 Authentication required', 'permanent-failure'],
    ['502 5.5.1 ATRN not available', 'permanent-failure'],
  ])('maps ATRN %s to %s and stores nothing', async (reply, outcome) => {
    const run = await pull({ queue: queueOf(1), atrnReply: reply });
    expect(run.report.outcome).toBe(outcome);
    expect(run.report.replies.at(-1)).toMatchObject({
      command: 'ATRN',
      code: Number(reply.slice(0, 3)),
    });
    expect((await readMailDir(run.dir)).stored).toEqual([]);
    expect(run.provider.waiting).toEqual([0]);
  });
});

describe('ODMR: a cut in the middle of DATA loses nothing and leaves nothing half-written', () => {
  const queue = queueOf(5, 8192);
  const wireLength = (n: number) =>
    Buffer.from(queue[n]!.text.toString('latin1').replace(/(^|\r\n)\./g, '$1..'), 'latin1').length +
    3;
  const points: [string, (n: number) => number][] = [
    ['before the first byte', () => 0],
    ['in the middle of a line', () => 100],
    ['half way', (n) => Math.floor(wireLength(n) / 2)],
    ['just before the final dot', (n) => wireLength(n) - 3],
    ["between the final dot's CR and LF", (n) => wireLength(n) - 1],
  ];

  it.each(points)(
    'cut %s of the third message: two stored, three left with the provider, and the next cycle gets them',
    async (_name, at) => {
      const provider = { queue, faults: { cutInData: { message: 2, afterBytes: at(2) } } };
      const run = await pull(provider);
      expect(run.report.outcome).toBe('temporary-failure');
      expect(run.report.messages).toBe(2);
      expect(run.report.error?.message).toMatch(
        /closed the connection in the middle of message|broke in the middle of message/,
      );
      expect(run.provider.waiting).toEqual([2, 3, 4]);
      await expectStoredExactlyAcknowledged(run, queue);

      // The next cycle, same directory, a provider still holding the rest: every message once.
      const next = await pull({ queue: queue.slice(2) }, { dir: run.dir });
      expect(next.report.messages).toBe(3);
      const { stored, others } = await readMailDir(run.dir);
      expect(others).toEqual([]);
      expect(stored.map((f) => providerBytes(f).toString('latin1')).sort()).toEqual(
        queue.map((m) => m.text.toString('latin1')).sort(),
      );
    },
  );

  it('a reset (RST) in the middle of DATA ends the session the same way', async () => {
    const run = await pull({
      queue,
      faults: { cutInData: { message: 1, afterBytes: 5000, reset: true } },
    });
    expect(run.report.outcome).toBe('temporary-failure');
    expect(run.report.messages).toBe(1);
    expect(run.provider.waiting).toEqual([1, 2, 3, 4]);
    await expectStoredExactlyAcknowledged(run, queue);
  });
});

describe('ODMR: what the store put off is done before the run returns', () => {
  it.each([
    ['the provider quits', {}],
    ['the provider cuts the connection', { cutInData: { message: 2, afterBytes: 500 } }],
  ])(
    '%s: the store is settled once, for the target, and done with before the run returns',
    async (_case, faults) => {
      const queue = queueOf(3);
      const settled: string[] = [];
      let done = false;
      const run = await pull(
        { queue, faults },
        {
          sink: (dir) => {
            const store = createMailDirSink(dir);
            return {
              ...store,
              async settle(target: string) {
                settled.push(target);
                await store.settle!(target);
                done = true;
              },
            };
          },
        },
      );
      expect(run.report.messages).toBeGreaterThan(0);
      expect(settled).toEqual(['odmr-test']);
      expect(done).toBe(true);
      await expectStoredExactlyAcknowledged(run, queue);
    },
  );
});

describe('ODMR: acknowledge only what is stored', () => {
  it.each(['begin', 'write', 'commit'] as const)(
    'a sink failing in %s on the third message: 451, the provider keeps it and the rest',
    async (when) => {
      const queue = queueOf(5);
      const run = await pull(
        { queue },
        { sink: (dir) => failingSink(createMailDirSink(dir), { atMessage: 3, when }) },
      );
      expect(run.report.outcome).toBe('temporary-failure');
      expect(run.report.messages).toBe(2);
      expect(run.report.error?.message).toMatch(/injected sink failure on message 3/);
      expect(run.provider.attempts.find((a) => a.number === 2)?.reply).toMatch(/^451 /);
      // After a sink failure we close at the next command (421): the rest waits for the next cycle.
      expect(run.provider.customerReplies).toContain(
        '421 4.3.0 mx.customer.test cannot store mail now, closing; try again later',
      );
      expect(run.provider.waiting.sort()).toEqual([2, 3, 4]);
      await expectStoredExactlyAcknowledged(run, queue);
    },
  );

  it("a sink that refuses one message for good (a relay's 5xx): 554 for it, the others are stored", async () => {
    const queue = queueOf(4);
    const run = await pull(
      { queue },
      {
        sink: (dir) =>
          failingSink(createMailDirSink(dir), { atMessage: 2, when: 'commit', kind: 'permanent' }),
      },
    );
    expect(run.report.outcome).toBe('permanent-failure');
    expect(run.report.messages).toBe(3);
    expect(run.provider.bouncedNumbers).toEqual([1]);
    expect(run.provider.waiting).toEqual([]);
    await expectStoredExactlyAcknowledged(run, queue);
  });

  it('a commit that outlasts the 10-minute bound (here 200 ms) is withdrawn: 451, nothing visible, the provider keeps it', async () => {
    const queue = queueOf(2);
    const slow = (dir: string): MailSink => {
      const inner = createMailDirSink(dir);
      return {
        async begin(envelope) {
          const draft = await inner.begin(envelope);
          return {
            ...draft,
            write: (c) => draft.write(c),
            abort: () => draft.abort(),
            commit: async () => {
              const stored = await draft.commit();
              await new Promise((r) => setTimeout(r, 400));
              return stored;
            },
          };
        },
      };
    };
    const run = await pull({ queue }, { sink: slow, receiver: { dataEndTimeoutMs: 200 } });
    expect(run.report.messages).toBe(0);
    expect(run.report.error?.message).toMatch(/storing message \S+ took longer than 200 ms/);
    expect(run.provider.attempts[0]?.reply).toMatch(/^451 /);
    expect(run.provider.waiting.sort()).toEqual([0, 1]);
    await new Promise((r) => setTimeout(r, 400));
    await expectStoredExactlyAcknowledged(run, queue);
  });

  it("the run's deadline arriving mid-queue: 421 before it, what was acknowledged is stored, the rest stays", async () => {
    const queue = queueOf(10);
    const started = Date.now();
    const run = await pull(
      { queue, pauseBeforeMessageMs: 150 },
      { deadlineMs: 1000, receiver: { closeReserveMs: 200 } },
    );
    expect(Date.now() - started).toBeLessThan(1500);
    expect(run.report.outcome).toBe('temporary-failure');
    expect(run.report.error?.message).toMatch(/deadline/);
    expect(run.report.messages).toBeGreaterThan(0);
    expect(run.report.messages).toBeLessThan(10);
    expect(run.provider.customerReplies.at(-1)).toMatch(/^421 4\.3\.2 /);
    expect(run.provider.waiting).toHaveLength(10 - run.report.messages);
    // The message in flight at the deadline is withdrawn within the session's bound when the disk
    // keeps up; on a loaded machine its unlink may finish just after (the report then says it
    // could not be withdrawn in time). Either way it never shows as a stored message.
    const settled = Date.now() + 2_000;
    while ((await readMailDir(run.dir)).others.length && Date.now() < settled)
      await new Promise((r) => setTimeout(r, 50));
    await expectStoredExactlyAcknowledged(run, queue);
  });

  it('the deadline arriving while a message streams in: 421, nothing of it is kept', async () => {
    const queue = queueOf(3, 4096);
    const run = await pull(
      { queue, faults: { silenceInData: { message: 1, afterBytes: 2000 } } },
      { deadlineMs: 800, receiver: { closeReserveMs: 200 } },
    );
    expect(run.report.messages).toBe(1);
    expect(run.report.error?.message).toMatch(/deadline/);
    expect(run.provider.waiting).toEqual([1, 2]);
    await expectStoredExactlyAcknowledged(run, queue);
  });
});

describe('ODMR: the run told to stop (SIGINT, SIGTERM) in the middle of the queue', () => {
  it('while a message streams in: 421 4.3.2 at once, the partial message is dropped, the rest stays', async () => {
    const queue = queueOf(3, 4096);
    const stop = new AbortController();
    const started = Date.now();
    const run = await pull(
      {
        queue,
        faults: { silenceInData: { message: 1, afterBytes: 2000 } },
        onFault: () => stop.abort('SIGINT'),
      },
      { stop: stop.signal },
    );
    // At once, not after the 5 minutes a silent provider gets.
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(run.report.outcome).toBe('temporary-failure');
    expect(run.report.messages).toBe(1);
    expect(run.report.error?.message).toMatch(
      /^the run was stopped \(SIGINT\) after 1 message\(s\) were stored; the rest stays at /,
    );
    expect(run.provider.customerReplies.at(-1)).toMatch(/^421 4\.3\.2 .*shutting down/);
    expect(run.provider.waiting).toEqual([1, 2]);
    await expectStoredExactlyAcknowledged(run, queue);
  });

  it('while a message is being stored: it is withdrawn and not acknowledged, the provider keeps it', async () => {
    const queue = queueOf(2);
    const stop = new AbortController();
    const slow = (dir: string): MailSink => {
      const real = createMailDirSink(dir);
      return {
        async begin(envelope) {
          const draft = await real.begin(envelope);
          return {
            write: (chunks) => draft.write(chunks),
            async commit() {
              const stored = await draft.commit();
              // Stored, and the stop comes before our 250 could go out.
              stop.abort('SIGTERM');
              await new Promise((r) => setTimeout(r, 50));
              return stored;
            },
            withdrawable: true,
            abort: () => draft.abort(),
          };
        },
      };
    };
    const run = await pull({ queue }, { sink: slow, stop: stop.signal });
    expect(run.report.messages).toBe(0);
    expect(run.report.error?.message).toMatch(/^the run was stopped \(SIGTERM\)/);
    expect(run.provider.acknowledged).toEqual([]);
    expect(run.provider.waiting.sort()).toEqual([0, 1]);
    expect(run.provider.customerReplies.at(-1)).toMatch(/^421 4\.3\.2 /);
    await expectStoredExactlyAcknowledged(run, queue);
  });

  it('stopped before the session: EHLO and QUIT, no AUTH and no ATRN; the provider keeps everything', async () => {
    const stop = new AbortController();
    stop.abort('SIGINT');
    const run = await pull({ queue: queueOf(1) }, { stop: stop.signal });
    expect(run.provider.customerReplies).toEqual([]);
    expect(run.provider.waiting).toEqual([0]);
    // No AUTH, no ATRN: the session said QUIT at once.
    expect(run.provider.serverLines.map((l) => l.split(' ')[0])).toEqual(['EHLO', 'QUIT']);
    expect(run.report.error?.message).toMatch(/the run was stopped \(SIGINT\)/);
  });
});
