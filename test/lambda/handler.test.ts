/**
 * The Lambda end to end: real SSM parameters (String and SecureString), secrets and a DynamoDB
 * counter table on moto_server; the handler wired as in Lambda; scripted SMTP providers on loopback.
 */
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { describeWithMotoServer, startMotoServer, type MotoServer } from '../servers/moto-server';
import { AwsWorld, CapturedOutput, contextWith, scheduledEvent } from './aws-world';

const T0 = '2026-03-01T10:00:00Z';

describeWithMotoServer('the Lambda handler against moto_server and scripted providers', () => {
  let moto: MotoServer;
  let world: AwsWorld;
  let provider: ScriptedProvider;
  let output: CapturedOutput;

  beforeAll(async () => {
    moto = await startMotoServer();
    world = new AwsWorld(moto);
    provider = await new ScriptedProvider({
      extensions: ['PIPELINING', 'ETRN', 'AUTH PLAIN LOGIN CRAM-MD5'],
      account: { username: 'cust', password: 'hunter2-secret' },
    }).start();
  });
  afterAll(async () => {
    await provider?.stop();
    await moto?.stop();
  });
  beforeEach(async () => {
    await world.reset();
    provider.connections.length = 0;
    output = new CapturedOutput();
  });
  afterEach(() => output.restore());

  const target = (name: string, extra: Record<string, unknown> = {}) => ({
    name,
    host: '127.0.0.1',
    port: provider.port,
    tls: 'none',
    command: `ETRN ${name}.example`,
    ...extra,
  });
  const etrnsSent = () => provider.lines.filter((l) => l.startsWith('ETRN '));

  it('signals every due target of a scheduled cycle, String and SecureString parameters, with AUTH from Secrets Manager', async () => {
    await world.putSettings({ helloName: 'mx.customer.example' });
    await world.putTarget('plain', target('plain'));
    await world.putTarget(
      'secure',
      target('secure', { auth: { secretId: 'dequeue/isp', mechanism: 'CRAM-MD5' } }),
      'SecureString',
    );
    await world.putSecret('dequeue/isp', { username: 'cust', password: 'hunter2-secret' });

    const result = await world.handler()(scheduledEvent(T0), contextWith());

    expect(result.cycle).toBe(1);
    expect(result.results.map((r) => [r.target, r.outcome, r.cycle, r.error])).toEqual([
      ['plain', 'signalled', 1, null],
      ['secure', 'signalled', 1, null],
    ]);
    expect(etrnsSent().sort()).toEqual(['ETRN plain.example', 'ETRN secure.example']);
    expect(provider.lines).toContain('EHLO mx.customer.example');
    expect(provider.connections.some((c) => c.authenticated)).toBe(true);
    expect(await world.counter()).toBe(1);
  });

  it('counts a retried scheduled time once and signals nobody twice', async () => {
    await world.putTarget('a', target('a'));
    const handler = world.handler();

    const first = await handler(scheduledEvent(T0, 1), contextWith());
    const retry = await handler(scheduledEvent(T0, 2), contextWith());

    expect(first.cycle).toBe(1);
    expect(retry.cycle).toBe(1);
    expect(retry.results[0]).toMatchObject({
      target: 'a',
      outcome: 'skipped',
      reason: 'already signalled in cycle 1',
    });
    expect(etrnsSent()).toEqual(['ETRN a.example']);
    expect(await world.counter()).toBe(1);
  });

  it('counts {} as an unscheduled cycle; force and dryRun count nothing', async () => {
    await world.putSettings({ everyNthCycle: 3 });
    await world.putTarget('a', target('a'));
    const handler = world.handler();

    expect((await handler({}, contextWith())).cycle).toBe(1); // due: cycles 1, 4, 7...
    const second = await handler({}, contextWith());
    expect(second.cycle).toBe(2);
    expect(second.results[0]).toMatchObject({
      outcome: 'skipped',
      reason: expect.stringMatching(/^not due: .*next in cycle 4$/),
    });

    const forced = await handler({ force: true }, contextWith());
    expect(forced).toMatchObject({ cycle: 2, results: [{ target: 'a', outcome: 'signalled' }] });
    const forcedAgain = await handler({ force: true, targets: ['a'] }, contextWith());
    expect(forcedAgain.results[0]!.outcome).toBe('signalled');

    const dry = await handler({ dryRun: true }, contextWith()); // what the next cycle (3) would do
    expect(dry).toMatchObject({
      cycle: 3,
      results: [{ target: 'a', outcome: 'skipped', reason: expect.stringMatching(/^not due/) }],
    });
    const dryForced = await handler({ dryRun: true, force: true }, contextWith());
    expect(dryForced.results[0]).toMatchObject({
      outcome: 'skipped',
      reason: `dry run: would send ETRN a.example to 127.0.0.1:${provider.port}`,
    });

    expect(etrnsSent()).toHaveLength(3);
    expect(await world.counter()).toBe(2);
  });

  it('with no target parameter at all: nothing signalled and no cycle counted, as the CLI; the result and the log say so', async () => {
    await world.putSettings({ everyNthCycle: 3 });
    const handler = world.handler();

    const empty = await handler(scheduledEvent(T0), contextWith());
    expect(empty).toEqual({
      cycle: 0,
      results: [],
      notCounted: 'the configuration has no targets: nothing to signal, no cycle counted',
    });
    expect(await handler({}, contextWith())).toMatchObject({
      cycle: 0,
      results: [],
      notCounted: expect.any(String),
    });
    expect(await world.counter()).toBe(0);
    expect(
      output.records
        .filter((r) => r.message === 'cycle finished')
        .map((r) => [r.cycle, r.targets, r.notCounted]),
    ).toEqual([
      [0, 0, 'the configuration has no targets: nothing to signal, no cycle counted'],
      [0, 0, 'the configuration has no targets: nothing to signal, no cycle counted'],
    ]);

    // The first target then gets cycle 1, and with it the first of its every-third cycles.
    await world.putTarget('a', target('a'));
    const first = await handler(scheduledEvent('2026-03-01T10:15:00Z'), contextWith());
    expect(first).toMatchObject({
      cycle: 1,
      results: [{ target: 'a', outcome: 'signalled', cycle: 1 }],
    });
    expect(first.notCounted).toBeUndefined();
    expect(etrnsSent()).toEqual(['ETRN a.example']);
  });

  it('reports invalid target parameters by parameter and field while the valid targets still run', async () => {
    await world.putTarget('good', target('good'));
    await world.putTarget('broken-json', '{"name": "broken-json", ', 'SecureString');
    await world.putTarget('bad-field', target('bad-field', { port: 'twenty-five' }));
    await world.putTarget('renamed', target('something-else'));
    await world.putParameter('/dequeue/targets/eu/dup', JSON.stringify(target('dup')));
    await world.putParameter('/dequeue/targets/us/dup', JSON.stringify(target('dup')));
    await world.putTarget('outside', target('outside', { auth: { secretId: 'prod/database' } }));

    const result = await world.handler()(scheduledEvent(T0), contextWith());
    const by = Object.fromEntries(result.results.map((r) => [r.target, r]));

    expect(by.good!.outcome).toBe('signalled');
    expect(etrnsSent()).toEqual(['ETRN good.example']);
    const configErrors = result.results
      .filter((r) => r.outcome === 'config-error')
      .map((r) => [r.target, r.error]);
    expect(configErrors).toEqual(
      expect.arrayContaining([
        ['broken-json', '/dequeue/targets/broken-json: is not valid JSON (error at character 24)'],
        ['bad-field', '/dequeue/targets/bad-field: port: must be a number'],
        [
          'renamed',
          `/dequeue/targets/renamed: name: "something-else" differs from the parameter's last path segment "renamed"; they must be the same`,
        ],
        [
          'dup',
          '/dequeue/targets/eu/dup: name: "dup" is the name of several parameters (/dequeue/targets/eu/dup, /dequeue/targets/us/dup); names must be unique',
        ],
        [
          '/dequeue/targets/us/dup',
          '/dequeue/targets/us/dup: name: "dup" is the name of several parameters (/dequeue/targets/eu/dup, /dequeue/targets/us/dup); names must be unique',
        ],
        [
          'outside',
          '/dequeue/targets/outside: auth.secretId: "prod/database" is outside the secrets this function may read (names starting with "dequeue/", DEQUEUE_SECRET_PREFIX)',
        ],
      ]),
    );
    expect(configErrors).toHaveLength(6);
  });

  it('fails only the target whose secret is missing or malformed', async () => {
    await world.putTarget(
      'no-secret',
      target('no-secret', { auth: { secretId: 'dequeue/missing' } }),
    );
    await world.putTarget(
      'bad-secret',
      target('bad-secret', { auth: { secretId: 'dequeue/bad' } }),
    );
    await world.putTarget('fine', target('fine'));
    await world.putSecret('dequeue/bad', { username: 'cust', password: '' });

    const result = await world.handler()(scheduledEvent(T0), contextWith());
    const by = Object.fromEntries(result.results.map((r) => [r.target, [r.outcome, r.error]]));

    expect(by).toEqual({
      'no-secret': [
        'config-error',
        'secret dequeue/missing: does not exist (or has no current version)',
      ],
      'bad-secret': ['config-error', 'secret dequeue/bad: password: must be a non-empty string'],
      fine: ['signalled', null],
    });
    expect(etrnsSent()).toEqual(['ETRN fine.example']);
  });

  it('refuses invalid settings: every target reports it, nothing is sent or counted', async () => {
    await world.putSettings({ concurency: 4 });
    await world.putTarget('a', target('a'));
    await world.putTarget('b', target('b'));

    const result = await world.handler()(scheduledEvent(T0), contextWith());

    expect(result.cycle).toBe(0);
    expect(result.results.map((r) => [r.target, r.outcome, r.error])).toEqual([
      [
        'a',
        'config-error',
        '/dequeue/settings: concurency: is not a known field: did you mean "concurrency"?; no target is signalled until the settings are fixed',
      ],
      [
        'b',
        'config-error',
        '/dequeue/settings: concurency: is not a known field: did you mean "concurrency"?; no target is signalled until the settings are fixed',
      ],
    ]);
    expect(provider.connections).toHaveLength(0);
    expect(await world.counter()).toBe(0);
  });

  it('does not start a target that cannot finish before the deadline, and says so', async () => {
    await world.putTarget('a', target('a'));
    // 6 s left, 5 s kept back for reporting: 1 s is less than one reply's bound (30 s).
    const result = await world.handler()(scheduledEvent(T0), contextWith(6_000));
    expect(result.results[0]).toMatchObject({
      target: 'a',
      outcome: 'temporary-failure',
      error:
        "not started: too little time left before the run's deadline; it is tried again next cycle",
    });
    expect(provider.connections).toHaveLength(0);
  });

  it('refuses a malformed event with a plain message, counting nothing', async () => {
    const handler = world.handler();
    await expect(handler({ dryrun: true }, contextWith())).rejects.toThrow(
      'invocation event: dryrun: is not a known field.',
    );
    await expect(
      handler(
        {
          source: 'schedule',
          scheduleArn: SCHEDULE_ARN_OK,
          scheduledTime: 'yesterday',
          executionId: 'x',
          attemptNumber: '1',
        },
        contextWith(),
      ),
    ).rejects.toThrow(
      'invocation event: scheduledTime: must be an ISO 8601 time such as 2026-01-01T00:00:00Z.',
    );
    await expect(handler([], contextWith())).rejects.toThrow(
      'invocation event: must be a JSON object: {} runs one cycle',
    );
    expect(await world.counter()).toBe(0);
  });

  it('logs one JSON line per target and EMF metrics in the Dequeue namespace, never a secret', async () => {
    await world.putTarget(
      'ok',
      target('ok', {
        auth: { secretId: 'dequeue/isp', mechanism: 'PLAIN' },
        allowPlaintextAuth: true,
      }),
    );
    await world.putTarget('refused', target('refused', { command: 'ETRN refused.example' }));
    await world.putTarget('invalid', target('invalid', { port: 0 }));
    await world.putSecret('dequeue/isp', { username: 'cust', password: 'hunter2-secret' });
    const refusing = await new ScriptedProvider({
      etrn: { 'refused.example': '459 Node refused.example not allowed' },
    }).start();
    await world.putTarget('refused', target('refused', { port: refusing.port }));
    try {
      await world.handler()(scheduledEvent(T0), contextWith());
    } finally {
      await refusing.stop();
    }

    const lines = output.targetLines;
    expect(lines.map((l) => [l.target, l.outcome, l.cycle, l.service]).sort()).toEqual([
      ['invalid', 'config-error', 1, 'dequeue'],
      ['ok', 'signalled', 1, 'dequeue'],
      ['refused', 'permanent-failure', 1, 'dequeue'],
    ]);
    for (const line of lines) expect(typeof line.durationMs).toBe('number');
    // Powertools leaves out keys whose value is null: `error` appears when there is one.
    expect(lines.find((l) => l.target === 'invalid')!.error).toBe(
      '/dequeue/targets/invalid: port: must be at least 1',
    );
    expect(lines.find((l) => l.target === 'refused')!.replies).toEqual([
      { command: 'ETRN refused.example', code: 459, text: 'Node refused.example not allowed' },
    ]);

    const emf = output.emf;
    const targetsByOutcome = Object.fromEntries(
      emf.filter((e) => 'Targets' in e).map((e) => [e.outcome, e.Targets]),
    );
    expect(targetsByOutcome).toEqual({
      signalled: 1,
      'no-mail': 0,
      skipped: 0,
      'temporary-failure': 0,
      'permanent-failure': 1,
      'config-error': 1,
    });
    const main = emf.find((e) => 'TargetFailures' in e)!;
    const directive = (
      main._aws as {
        CloudWatchMetrics: {
          Namespace: string;
          Dimensions: string[][];
          Metrics: { Name: string; Unit: string }[];
        }[];
      }
    ).CloudWatchMetrics[0]!;
    expect(directive.Namespace).toBe('Dequeue');
    expect(directive.Dimensions).toEqual([['service']]);
    expect(directive.Metrics).toEqual(
      expect.arrayContaining([
        { Name: 'TargetFailures', Unit: 'Count' },
        { Name: 'MessagesStored', Unit: 'Count' },
        { Name: 'TargetDuration', Unit: 'Milliseconds' },
      ]),
    );
    expect(main).toMatchObject({ service: 'dequeue', TargetFailures: 2, MessagesStored: 0 });
    expect(emf.filter((e) => 'TargetFailures' in e)).toHaveLength(1);

    const everything = output.raw.join('');
    expect(everything).not.toContain('hunter2-secret');
    expect(everything).not.toContain(Buffer.from('\0cust\0hunter2-secret').toString('base64'));
  });
});

const SCHEDULE_ARN_OK = 'arn:aws:scheduler:us-east-1:123456789012:schedule/default/dequeue';
