import {
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { heldMessage } from '../core/odmr/odmr-fixtures';
import { ACCOUNT, AtrnProvider, type HeldMessage } from '../../peers/atrn-provider';
import { nodeMajorOfRuntime } from '../../peers/lambda-node';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { describeWithMotoServer } from '../servers/moto-server';
import { ACCOUNT_ID, type Deployment, deploy, type WorkerBatch } from './deployment';
import { LARGE_BATCH_TARGETS, LARGE_MESSAGE_BYTES, queueLargeBatch } from './large-worker-batch';
import { decide } from './iam-policy';
import { auditCalls, auditReport, describeDecision, unusedStatements } from './policy-audit';
import {
  foreignOrderRun,
  HANDED_BACK,
  REFUSED_EVENT,
  type Run,
  scheduledRuns,
} from './delivery-runs';

describeWithMotoServer('the deployed bundle, run as Lambda runs it', () => {
  let deployment: Deployment | undefined;
  let etrn: ScriptedProvider | undefined;
  let atrn: AtrnProvider | undefined;
  /** An ATRN provider that cuts the connection in the middle of a large message, every time. */
  let atrnCut: AtrnProvider | undefined;
  let s3: S3Client | undefined;
  let bucket: string;
  // The second is large enough for a multipart upload (lib-storage parts are 5 MiB at least).
  const queue: HeldMessage[] = [heldMessage(0), heldMessage(1, 6 * 1024 * 1024)];
  const runs: Run[] = [];
  /** Where the time went (printed, never asserted). */
  const timings: string[] = [];
  const timed = async <T>(what: string, work: Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      return await work;
    } finally {
      timings.push(`${what} ${Math.round(performance.now() - started)} ms`);
    }
  };
  /** The worker batch of LARGE_BATCH_TARGETS x 30 MB, and its targets' names. */
  let largeBatch: WorkerBatch | null = null;
  let largeNames: readonly string[] = [];
  const deployed = (): Deployment => {
    if (!deployment) throw new Error('the deployment was not set up (see beforeAll)');
    return deployment;
  };

  beforeAll(async () => {
    deployment = await deploy(timed);
    const { environment, moto, sources } = deployment;

    // The operator's part: configuration in SSM, the ATRN account in Secrets Manager.
    etrn = await new ScriptedProvider().start();
    atrn = await new AtrnProvider({ queue }).start();
    // Cut after 5.5 MiB of a 6 MiB message: a first 5 MiB part is uploaded, the upload must be aborted.
    atrnCut = await new AtrnProvider({
      queue: [heldMessage(9, 6 * 1024 * 1024)],
      faults: { cutInData: { message: 0, afterBytes: 5.5 * 1024 * 1024 } },
    }).start();
    const secretId = await deployment.putSecret('atrn', ACCOUNT);
    await deployment.putSettings({ helloName: 'mx.customer.test' });
    await deployment.putTarget({
      name: 'etrn',
      host: '127.0.0.1',
      port: etrn.port,
      tls: 'none',
      command: 'ETRN customer.test',
    });
    await deployment.putTarget(
      {
        name: 'atrn',
        host: '127.0.0.1',
        port: atrn.port,
        tls: 'none',
        auth: { secretId },
        command: 'ATRN',
        mail: { domains: ['customer.test'] },
      },
      'SecureString',
    );
    await deployment.putTarget({
      name: 'atrn-cut',
      host: '127.0.0.1',
      port: atrnCut.port,
      tls: 'none',
      auth: { secretId },
      command: 'ATRN',
      mail: { domains: ['customer.test'] },
    });
    bucket = environment.DEQUEUE_MAIL_BUCKET!;
    s3 = new S3Client({ ...moto.clientConfig, forcePathStyle: true });

    // Scheduled deliveries, each in a fresh process (a cold instance), then a message on the work
    // queue that no cycle wrote (delivery-runs.ts).
    const bench = {
      deployment,
      idle: () => Promise.all([atrn!.idle(), atrnCut!.idle()]),
      etrnSignals,
      timed,
      timings,
    };
    runs.push(...(await scheduledRuns(bench)));
    const handedBack = await foreignOrderRun(bench);
    if (handedBack) runs.push(handedBack);

    // The largest batch the defaults deliver, straight to moto_server (copies of 300 MB of
    // uploads are not worth recording): the function's peak memory with all of it in flight.
    if (sources.length) {
      const source = sources[0]!;
      // Cycle 1 (counted by the first delivery): the targets are new, so are their claims.
      const large = await queueLargeBatch(deployment, source, secretId, 1);
      try {
        largeBatch = await timed(
          'large worker batch',
          deployment.deliverBatch(source, { direct: true }),
        );
        await Promise.all(large.providers.map((p) => p.idle()));
        largeNames = large.names;
      } finally {
        await large.stop();
      }
    }
  }, 300_000);

  afterAll(async () => {
    s3?.destroy();
    await etrn?.stop();
    await atrn?.stop();
    await atrnCut?.stop();
    await deployment?.stop();
  });

  const etrnSignals = () => etrn!.lines.filter((l) => l === 'ETRN customer.test').length;

  const result = (name: string) => {
    const run = runs.find((r) => r.name === name)!;
    if (run.invocation.outcome.error) {
      throw new Error(
        `${name}: the invocation failed: ${JSON.stringify(run.invocation.outcome.error)}\nstderr ends: ${run.invocation.stderr.slice(-2000)}`,
      );
    }
    return run.invocation.outcome.result as {
      cycle: number;
      results: {
        target: string;
        outcome: string;
        messages: number;
        reason?: string | null;
        error: string | null;
      }[];
    };
  };
  const byTarget = (name: string) =>
    Object.fromEntries(result(name).results.map((r) => [r.target, r]));

  it("runs the template's own bundle, handler and runtime", () => {
    const { created, environment, node, scheduled } = deployed();
    const fn = scheduled.function;
    console.info(
      [
        `bundle ${fn.assetDir} (handler ${fn.handler}, ${fn.runtime}, ${fn.timeoutSeconds} s, ${fn.memoryMiB} MiB) on ${node.version} (${node.origin})`,
        `created in moto from the template: ${created.join('; ')}`,
        `environment: ${Object.keys(environment).join(', ')}`,
        `time: ${timings.join(', ')}`,
      ].join('\n'),
    );
    expect(node.version.startsWith(`v${nodeMajorOfRuntime(fn.runtime)}.`)).toBe(true);
    const scheduledRuns = runs.filter((r) => r.name === r.delivery && r.name !== REFUSED_EVENT);
    expect(scheduledRuns.map((r) => r.event.source)).toEqual(scheduledRuns.map(() => 'schedule'));
  });

  it("the first delivery signals the ETRN target and stores the ATRN target's mail in the bucket", async () => {
    const first = byTarget('first delivery');
    expect(first.etrn).toMatchObject({ outcome: 'signalled', error: null });
    expect(first.atrn).toMatchObject({ outcome: 'signalled', messages: queue.length, error: null });
    expect(etrn!.lines).toContain('ETRN customer.test');
    expect(atrn!.waiting).toEqual([]);

    const mailPrefix = `${deployed().environment.DEQUEUE_MAIL_PREFIX}atrn/`;
    const listed = await s3!.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: mailPrefix }));
    const keys = (listed.Contents ?? []).map((o) => o.Key!);
    expect(keys.filter((k) => k.endsWith('.eml'))).toHaveLength(queue.length);
    for (const key of keys.filter((k) => k.endsWith('.json'))) {
      const envelope = JSON.parse(
        await (
          await s3!.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
        ).Body!.transformToString(),
      );
      const held = queue.find((m) => m.from === envelope.mailFrom)!;
      const stored = Buffer.from(
        await (
          await s3!.send(new GetObjectCommand({ Bucket: bucket, Key: envelope.message }))
        ).Body!.transformToByteArray(),
      );
      // Stored as received: after our trace header, the provider's text byte for byte.
      expect(stored.subarray(envelope.traceBytes).equals(held.text)).toBe(true);
    }
  });

  it('a connection cut in the middle of a large message leaves nothing in the bucket, and the message with the provider', async () => {
    const first = byTarget('first delivery');
    expect(first['atrn-cut']).toMatchObject({ messages: 0 });
    expect(first['atrn-cut']!.outcome).not.toBe('signalled');
    expect(atrnCut!.waiting).toEqual([0]);
    const listed = await s3!.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: `${deployed().environment.DEQUEUE_MAIL_PREFIX}atrn-cut/`,
      }),
    );
    expect(listed.Contents ?? []).toEqual([]);
    const uploads = await s3!.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    expect(uploads.Uploads ?? []).toEqual([]);
    // The clean-up went through the proxy, so the IAM check below covers it.
    expect(runs.find((r) => r.name === 'first delivery')!.calls.map((c) => c.operation)).toContain(
      's3 AbortMultipartUpload',
    );
  });

  it('a cycle that fails is recorded in the on-failure destination by Lambda, with the function role', (ctx) => {
    if (!deployed().failureDestination) {
      console.info('the function has no on-failure destination in the template: nothing to check');
      ctx.skip();
    }
    const failed = runs.find((r) => r.name === REFUSED_EVENT)!;
    expect(failed.invocation.outcome.error).toBeDefined();
    expect(failed.calls.map((c) => c.operation)).toContain(
      "Lambda sends the failed invocation to its on-failure destination (with the function's role)",
    );
  });

  it('a retry of the same slot (new execution id) is not counted again and signals no one twice', () => {
    const first = result('first delivery');
    const retry = result('retry of the same slot');
    expect(retry.cycle).toBe(first.cycle);
    expect(retry.results.map((r) => r.outcome)).toEqual(retry.results.map(() => 'skipped'));
    const signalsAfter = (delivery: string) =>
      Math.max(...runs.filter((r) => r.delivery === delivery).map((r) => r.etrnSignals));
    expect(signalsAfter('first delivery')).toBe(1);
    expect(signalsAfter('retry of the same slot')).toBe(1);
    // The counter did not advance for the retry: the next slot is the very next cycle.
    expect(result('next slot').cycle).toBe(first.cycle + 1);
    expect(byTarget('next slot').etrn).toMatchObject({ outcome: 'signalled' });
  });

  it('with a work queue: a cycle too large for one run queues its targets, and the workers signal them', (ctx) => {
    if (!deployed().sources.length) {
      console.info(
        'the function has no SQS event source mapping in the template: fan-out is not deployed, nothing to run',
      );
      ctx.skip();
    }
    const fanned = result('fanned-out slot') as ReturnType<typeof result> & { queued?: string[] };
    expect(fanned.cycle).toBe(result('next slot').cycle + 1);
    expect([...(fanned.queued ?? [])].sort()).toEqual(['atrn', 'atrn-cut', 'etrn']);
    const workers = runs.filter((r) => r.delivery === 'fanned-out slot' && r.name !== r.delivery);
    expect(workers.length).toBeGreaterThan(0);
    expect(
      workers.map((w) => ({ error: w.invocation.outcome.error ?? null, failed: w.failed })),
    ).toEqual(workers.map(() => ({ error: null, failed: [] })));
    const before = runs.find((r) => r.name === 'next slot')!.etrnSignals;
    expect(Math.max(...workers.map((w) => w.etrnSignals))).toBe(before + 1);
  });

  it('a worker hands back an order no cycle wrote, and makes it visible again soon', (ctx) => {
    if (!deployed().sources.length) {
      console.info('the function has no SQS event source mapping: no order to hand back');
      ctx.skip();
    }
    const run = runs.find((r) => r.delivery === HANDED_BACK)!;
    expect(run.invocation.outcome.error ?? null).toBeNull();
    expect(run.failed).toHaveLength(1);
    expect(run.calls.map((c) => c.operation)).toContain('sqs ChangeMessageVisibilityBatch');
  });

  it("a worker batch of 10 ATRN targets with 30 MB each stays under three quarters of the function's memory", async (ctx) => {
    if (!deployed().sources.length) {
      console.info('the function has no SQS event source mapping: no worker batch to measure');
      ctx.skip();
    }
    const { memoryMiB } = deployed().scheduled.function;
    const work = largeBatch!;
    const peak = work.invocation.maxMemoryUsedMiB;
    console.info(
      `worker batch of ${LARGE_BATCH_TARGETS} x ${LARGE_MESSAGE_BYTES / 1e6} MB: Max Memory Used ${peak} MiB of ${memoryMiB} (${((peak ?? 0) / memoryMiB).toFixed(2)}x)`,
    );
    expect(work.invocation.outcome.error ?? null).toBeNull();
    expect(work.failed).toEqual([]);
    // Every message stored, whole.
    for (const name of largeNames) {
      const listed = await s3!.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: `${deployed().environment.DEQUEUE_MAIL_PREFIX}${name}/`,
        }),
      );
      const eml = (listed.Contents ?? []).filter((o) => o.Key!.endsWith('.eml'));
      expect(eml.map((o) => o.Size! > LARGE_MESSAGE_BYTES)).toEqual([true]);
    }
    expect(peak).toBeGreaterThan(0);
    expect(peak!).toBeLessThan(0.75 * memoryMiB);
  });

  it("every AWS call the bundle made is allowed by the role's policies in the template", () => {
    const { notEvaluated, policies, roleArn } = deployed();
    const decisions = auditCalls(runs, policies, roleArn);
    const unused = unusedStatements(decisions, policies);
    console.info(auditReport(decisions, unused, notEvaluated));

    // The proxy saw the run: configuration, credentials, the counter and the mail all went through it.
    const services = new Set(decisions.map((d) => d.auth.action.split(':')[0]));
    expect([...services].sort()).toEqual(
      expect.arrayContaining(['dynamodb', 's3', 'secretsmanager', 'ssm']),
    );
    expect(decisions.some((d) => d.auth.action === 's3:PutObject')).toBe(true);

    const refused = decisions.filter((d) => d.decision.verdict !== 'allowed');
    expect(
      refused.map(
        (d) =>
          `${d.call.operation} needs ${d.auth.action} on ${d.auth.resource ?? '(resource not decoded)'}: ${describeDecision(d.decision)}`,
      ),
    ).toEqual([]);
    expect(notEvaluated).toEqual([]);
    // Nothing granted that neither the code nor Lambda on its behalf needed.
    expect(unused, 'role statements no call needed').toEqual([]);
  });

  it('the check fails, naming the call, when a statement the run needed is taken away', () => {
    const { policies, roleArn } = deployed();
    const needed = new Map<string, { policy: string; sid: string }>();
    for (const { decision: d } of auditCalls(runs, policies, roleArn)) {
      if (d.verdict === 'allowed')
        needed.set(`${d.by.policy}/${d.by.statement}`, {
          policy: d.by.policy,
          sid: d.by.statement,
        });
    }
    expect(needed.size).toBeGreaterThan(0);
    const authorizations = runs.flatMap((r) => r.calls.flatMap((c) => c.authorizations));
    let refusedSomewhere = false;
    for (const { policy, sid } of needed.values()) {
      const without = policies.map((p) =>
        p.name === policy
          ? { ...p, statements: p.statements.filter((s, i) => (s.Sid ?? `#${i}`) !== sid) }
          : p,
      );
      for (const auth of authorizations) {
        const d = decide(auth, without, roleArn, ACCOUNT_ID);
        // Still allowed only by another statement, never by the one taken away.
        if (d.verdict === 'allowed')
          expect(`${d.by.policy}/${d.by.statement}`).not.toBe(`${policy}/${sid}`);
        else refusedSomewhere = true;
      }
    }
    expect(refusedSomewhere).toBe(true);
  });
});
