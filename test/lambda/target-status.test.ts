/**
 * The operator's loop against moto_server: `dequeue config push` writes the parameters, the
 * Lambda handler (wired as in Lambda) runs cycles against a scripted provider and keeps one status
 * item per target in its DynamoDB table, counts FailingTargets and StaleTargets in its EMF, and
 * `dequeue status --table` shows what it recorded.
 */
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { runCli } from '../support/cli-run';
import { DynamoDbStatusStore } from '../../lambda/adapters/dynamodb-status';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { describeWithMotoServer, startMotoServer, type MotoServer } from '../servers/moto-server';
import { AwsWorld, CapturedOutput, contextWith, TABLE } from './aws-world';

const HOUR = 3_600_000;

describeWithMotoServer(
  'config push, the status items the function writes, and dequeue status --table',
  () => {
    let moto: MotoServer;
    let world: AwsWorld;
    let provider: ScriptedProvider;
    let output: CapturedOutput;
    let dir: string;

    beforeAll(async () => {
      moto = await startMotoServer();
      world = new AwsWorld(moto);
      provider = await new ScriptedProvider({
        extensions: ['ETRN'],
        etrn: { 'denied.test': '459 Node denied.test not allowed' },
      }).start();
      dir = await mkdtemp(join(tmpdir(), 'dequeue-status-'));
    });
    afterAll(async () => {
      await provider?.stop();
      await moto?.stop();
    });
    beforeEach(async () => {
      await world.reset();
      output = new CapturedOutput();
    });
    afterEach(() => output.restore());

    const target = (name: string, extra: Record<string, unknown> = {}) => ({
      name,
      host: '127.0.0.1',
      port: provider.port,
      tls: 'none',
      command: `ETRN ${name}.test`,
      ...extra,
    });

    const cli = (argv: string[]) => runCli(argv, { aws: moto.clientConfig });

    async function push(document: unknown): Promise<void> {
      const file = join(await mkdtemp(join(dir, 'case-')), 'config.json');
      await writeFile(file, JSON.stringify(document));
      const r = await cli(['config', 'push', '--config', file]);
      expect(r.stderr).not.toContain('not written');
      expect(r.status).toBe(0);
    }

    async function item(name: string) {
      const out = await world.dynamodb.send(
        new GetItemCommand({
          TableName: TABLE,
          Key: { pk: { S: `status#${name}` } },
          ConsistentRead: true,
        }),
      );
      return out.Item;
    }

    /** The FailingTargets and StaleTargets values of the EMF documents written so far, in order. */
    const healthMetrics = () =>
      output.emf
        .filter((d) => 'FailingTargets' in d)
        .map((d) => ({ failing: d.FailingTargets, stale: d.StaleTargets }));

    it('records every target after each cycle; FailingTargets counts a target failing 3 cycles in a row; status --table shows it', async () => {
      await push({
        settings: {},
        targets: [
          target('good'),
          target('denied', { command: 'ETRN denied.test' }),
          target('weekly', { everyNthCycle: 3 }),
          target('off', { enabled: false }),
        ],
      });
      const handler = world.handler();
      const started = new Date().toISOString();
      for (let i = 0; i < 3; i++) await handler({}, contextWith());

      const denied = await item('denied');
      expect(denied).toMatchObject({
        target: { S: 'denied' },
        lastOutcome: { S: 'permanent-failure' },
        lastCycle: { N: '3' },
        consecutiveFailures: { N: '3' },
        messagesTotal: { N: '0' },
      });
      expect(denied!.lastError!.S).toContain('459 Node denied.test not allowed');
      expect(denied!.failingSince!.S! >= started).toBe(true);
      expect(denied!.failingSince!.S! < denied!.lastAttemptAt!.S!).toBe(true);
      expect(denied!.lastSuccessAt).toBeUndefined();

      expect(await item('good')).toMatchObject({
        lastOutcome: { S: 'signalled' },
        lastCycle: { N: '3' },
        lastSuccessCycle: { N: '3' },
        consecutiveFailures: { N: '0' },
      });
      expect((await item('good'))!.failingSince).toBeUndefined();
      // Due in cycle 1, not in 3: the success of cycle 1 stays, the outcome says skipped and why.
      expect(await item('weekly')).toMatchObject({
        lastOutcome: { S: 'skipped' },
        lastCycle: { N: '3' },
        lastSuccessCycle: { N: '1' },
        lastReason: { S: 'not due: signals every 3 cycles, next in cycle 4' },
      });
      expect(await item('off')).toMatchObject({
        lastOutcome: { S: 'skipped' },
        lastReason: { S: 'disabled' },
      });

      // One value per cycle: the third failure in a row makes `denied` a failing target.
      expect(healthMetrics()).toEqual([
        { failing: 0, stale: 0 },
        { failing: 0, stale: 0 },
        { failing: 1, stale: 0 },
      ]);

      const json = await cli(['status', '--table', TABLE, '--json']);
      expect(json.status).toBe(1);
      const lines = json.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.map((l) => l.target)).toEqual(['denied', 'good', 'off', 'weekly']);
      for (const l of lines) {
        expect(Object.keys(l)).toEqual([
          'target',
          'lastOutcome',
          'lastAttemptAt',
          'lastCycle',
          'lastSuccessAt',
          'lastSuccessCycle',
          'consecutiveFailures',
          'failingSince',
          'lastError',
          'messagesTotal',
          'serverDownSince',
          'lastPrecheck',
        ]);
      }
      expect(lines[0]).toMatchObject({
        lastOutcome: 'permanent-failure',
        lastCycle: 3,
        lastSuccessAt: null,
        lastSuccessCycle: null,
        consecutiveFailures: 3,
        failingSince: denied!.failingSince!.S,
      });
      expect(lines[1]).toMatchObject({
        lastOutcome: 'signalled',
        consecutiveFailures: 0,
        failingSince: null,
        lastError: null,
        messagesTotal: 0,
      });
      expect(String(lines[1]!.lastSuccessAt)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

      const table = await cli(['status', '--table', TABLE]);
      expect(table.status).toBe(1);
      const rows = table.stdout.trimEnd().split('\n');
      expect(rows[0]).toMatch(/^TARGET\s+STATE\s+LAST RUN\s+LAST SUCCESS\s+DETAIL$/);
      expect(rows[1]).toMatch(
        /^denied\s+FAILING\s+cycle 3, \S+\s+never\s+3 cycles in a row since \S+: .*459 Node denied\.test not allowed/,
      );
      expect(rows.slice(2).map((r) => r.split(/\s{2,}/).slice(0, 2))).toEqual([
        ['good', 'healthy'],
        ['off', 'disabled'],
        ['weekly', 'not due'],
      ]);
      expect(rows[4]).toContain('signals every 3 cycles, next in cycle 4');

      const some = await cli([
        'status',
        '--table',
        TABLE,
        '--target',
        'good',
        '--target',
        'brand-new',
        '--json',
      ]);
      // A target no run has recorded is shown, but its health is unknown: exit 2, never 0.
      expect(some.status).toBe(2);
      expect(some.stderr).toBe(
        'dequeue status: --target brand-new: no run has recorded a target of that name (recorded: denied, good, off, weekly): its health is unknown until a run works it\n',
      );
      expect(
        some.stdout
          .trimEnd()
          .split('\n')
          .map((l) => JSON.parse(l)),
      ).toEqual([
        expect.objectContaining({ target: 'good', lastOutcome: 'signalled' }),
        {
          target: 'brand-new',
          lastOutcome: null,
          lastAttemptAt: null,
          lastCycle: null,
          lastSuccessAt: null,
          lastSuccessCycle: null,
          consecutiveFailures: 0,
          failingSince: null,
          lastError: null,
          messagesTotal: 0,
          serverDownSince: null,
          lastPrecheck: null,
        },
      ]);
    });

    /**
     * `moving` signalled in cycle 1; then the provider refuses what it sends, and in cycle 2, a day
     * and an hour later, it still does. The handler keeps its clock an hour past that.
     */
    async function releasedThenFailingForADay() {
      await push({ targets: [target('moving')] });
      let offset = 0;
      const handler = world.handler({ now: () => Date.now() + offset });
      await handler({}, contextWith()); // cycle 1: signalled
      await push({ targets: [target('moving', { command: 'ETRN denied.test' })] });
      offset = 25 * HOUR;
      await handler({}, contextWith()); // cycle 2: refused
      return handler;
    }

    /** What `dequeue status --table T --target moving --json` shows the operator. */
    async function shown() {
      const r = await cli(['status', '--table', TABLE, '--target', 'moving', '--json']);
      return { status: r.status, moving: r.json[0] };
    }

    it('a target released once and failing for longer than DEQUEUE_STALE_AFTER_HOURS counts in StaleTargets', async () => {
      await releasedThenFailingForADay();
      expect(await item('moving')).toMatchObject({
        lastOutcome: { S: 'permanent-failure' },
        consecutiveFailures: { N: '1' },
        lastSuccessCycle: { N: '1' },
      });
      expect(healthMetrics().at(-1)).toEqual({ failing: 0, stale: 1 });
      expect(await shown()).toMatchObject({
        status: 1,
        moving: { lastOutcome: 'permanent-failure', lastSuccessCycle: 1, consecutiveFailures: 1 },
      });
    });

    it('a dry run records nothing and publishes no count', async () => {
      const handler = await releasedThenFailingForADay();
      const before = await item('moving');
      await handler({ dryRun: true }, contextWith());
      expect(await item('moving')).toEqual(before);
      expect(healthMetrics()).toHaveLength(2);
    });

    it('a forced run records its result, under the cycle it ran in', async () => {
      const handler = await releasedThenFailingForADay();
      await push({ targets: [target('moving')] });
      await handler({ force: true }, contextWith());
      expect(await item('moving')).toMatchObject({
        lastOutcome: { S: 'signalled' },
        lastCycle: { N: '2' },
        lastSuccessCycle: { N: '2' },
      });
    });

    it('a success ends the streak: no longer failing or stale, and status says so', async () => {
      const handler = await releasedThenFailingForADay();
      await push({ targets: [target('moving')] });
      await handler({ force: true }, contextWith());
      const moving = await item('moving');
      expect(moving).toMatchObject({ consecutiveFailures: { N: '0' } });
      expect(moving!.failingSince).toBeUndefined();
      expect(moving!.lastError).toBeUndefined();
      expect(healthMetrics().at(-1)).toEqual({ failing: 0, stale: 0 });
      expect(await shown()).toMatchObject({
        status: 0,
        moving: {
          lastOutcome: 'signalled',
          consecutiveFailures: 0,
          failingSince: null,
          lastError: null,
        },
      });
    });

    it('a coordinator that hands its targets to workers still counts them: if the workers never run, they grow stale and page', async () => {
      await push({ targets: [target('alpha'), target('beta')] });
      let offset = 0;
      await world.handler({ now: () => Date.now() + offset })({}, contextWith()); // both signalled

      // From now on every cycle fans out, and no worker ever takes an order off the queue.
      await world.putSettings({ fanOut: { maxTargetsPerInvocation: 1 } });
      const queued: string[] = [];
      const coordinator = world.handler({
        now: () => Date.now() + offset,
        workQueue: {
          send: async (orders) => {
            queued.push(...orders.map((o) => o.target));
            return [];
          },
        },
      });
      offset = 2 * HOUR;
      const early = await coordinator({}, contextWith());
      expect([...(early.queued ?? [])].sort()).toEqual(['alpha', 'beta']);
      // Counted from the statuses the last runs recorded (one Query of the status index).
      expect(healthMetrics().at(-1)).toEqual({ failing: 0, stale: 0 });

      offset = 25 * HOUR;
      await coordinator({}, contextWith());
      expect(queued.sort()).toEqual(['alpha', 'alpha', 'beta', 'beta']);
      expect(healthMetrics().at(-1)).toEqual({ failing: 0, stale: 2 });
    });

    it("a status that cannot be written leaves the target's result as it was, and is logged", async () => {
      await push({ targets: [target('good')] });
      const broken = {
        record: () => Promise.reject(new Error('DynamoDB is having a day')),
        read: () => Promise.resolve(undefined),
      };
      const result = await world.handler({ status: broken })({}, contextWith());
      expect(result.results.map((r) => [r.target, r.outcome])).toEqual([['good', 'signalled']]);
      expect(
        output.records
          .filter((r) => r.message === 'target status not recorded')
          .map((r) => [r.target, r.error]),
      ).toEqual([['good', 'DynamoDB is having a day']]);
    });

    // DynamoDB applies one item's update expression atomically, so overlapping invocations lose no
    // increment; moto_server does not promise that under concurrent requests, so the writes go one
    // after the other here.
    it('a late result of an older cycle leaves the newer status as it is; forced runs of one cycle each count', async () => {
      const store = new DynamoDbStatusStore(world.dynamodb, { tableName: TABLE });
      const t0 = Date.parse('2026-03-01T10:00:00Z');
      const failure = (cycle: number) => ({
        target: 't',
        outcome: 'temporary-failure' as const,
        cycle,
        durationMs: 1,
        replies: [],
        messages: 1,
        error: 'connection refused',
      });
      await store.record(failure(5), t0);
      // Forced runs record under the last counted cycle: each one counts.
      for (const i of [1, 2, 3, 4]) await store.record(failure(6), t0 + i);
      const after = await store.record(failure(2), t0 + 10);
      expect(after).toMatchObject({
        lastCycle: 6,
        consecutiveFailures: 5,
        messagesTotal: 5,
        failingSince: '2026-03-01T10:00:00.000Z',
      });
      expect(await store.read('t')).toEqual(after);
    });
  },
);
