/**
 * A cycle with `"precheck": "mx"` against any mix of check outcomes and ETRN replies: each case
 * draws 1-3 targets with 1-3 domains each, whether each domain's MX answers, and what the
 * provider (a scripted one on loopback) answers to each domain's ETRN.
 *
 * Invariants, whatever was drawn:
 * - exactly one classified result per target;
 * - the provider never receives an ETRN for a domain whose check failed, and receives one for
 *   every domain whose check passed;
 * - a target none of whose domains passed is `skipped`, its reason naming each domain's server;
 *   otherwise its outcome is that of the replies to the ETRNs sent (outcome.ts), and each domain
 *   held back shows as a "not sent" reply with no code.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSettings, parseTarget } from '../../../lambda/core/config';
import { outcomeOfReply } from '../../../lambda/core/outcome';
import type { CycleCounter } from '../../../lambda/core/ports';
import type { ServerCheckOptions } from '../../../lambda/core/precheck/server-check';
import { worstOutcome } from '../../../lambda/core/result';
import { runCycle } from '../../../lambda/core/run-cycle';
import { ScriptedProvider } from '../../../peers/scripted-provider';
import { checkProperty } from '../../support/fuzz';

const CODES = [250, 251, 252, 253, 458, 459, 500, 554] as const;
const FAILURES = ['refused the connection', 'did not answer within 10 s', 'greeted 421 busy'];

interface DomainPlan {
  readonly up: boolean;
  readonly failure: string;
  readonly code: (typeof CODES)[number];
}

const domainPlan: fc.Arbitrary<DomainPlan> = fc.record({
  up: fc.boolean(),
  failure: fc.constantFrom(...FAILURES),
  code: fc.constantFrom(...CODES),
});
const cyclePlan = fc.array(fc.array(domainPlan, { minLength: 1, maxLength: 3 }), {
  minLength: 1,
  maxLength: 3,
});

/** What the provider answers to each domain's ETRN in the current case. */
let replies = new Map<string, number>();
let provider: ScriptedProvider;

beforeAll(async () => {
  provider = await new ScriptedProvider({
    extensions: ['ETRN'],
    onLine: (line, conn) => {
      const m = /^ETRN (\S+)$/.exec(line);
      if (!m) return false;
      conn.reply(`${replies.get(m[1]!) ?? 250} reply to ${m[1]}`);
      return true;
    },
  }).start();
});
afterAll(() => provider.stop());

const counter: CycleCounter = {
  peek: async () => 0,
  count: async () => ({ cycle: 1, counted: true }),
};

describe('precheck in a cycle (property)', () => {
  it('one classified result per target; never an ETRN for a domain whose check failed', async () => {
    await checkProperty(
      'precheck cycle',
      fc.asyncProperty(cyclePlan, async (plan) => {
        const domain = (t: number, d: number) => `t${t}d${d}.test`;
        const byDomain = new Map<string, DomainPlan>();
        plan.forEach((ds, t) => {
          ds.forEach((p, d) => {
            byDomain.set(domain(t, d), p);
          });
        });
        replies = new Map([...byDomain].map(([d, p]) => [d, p.code]));
        const before = provider.lines.length;
        const targets = plan.map((ds, t) =>
          parseTarget(
            {
              name: `t${t}`,
              host: '127.0.0.1',
              port: provider.port,
              tls: 'none',
              command: ds.map((_, d) => `ETRN ${domain(t, d)}`),
              precheck: 'mx',
              timeoutSeconds: 5,
            },
            'plan',
          ),
        );
        const result = await runCycle(
          { settings: parseSettings({}, 'plan'), targets, invalid: [] },
          {},
          {
            credentials: { get: async () => ({ username: 'u', password: 'p' }) },
            counter,
            resolveMx: async (d) => [{ exchange: `mx.${d}`, priority: 10 }],
            checkServer: async (o: ServerCheckOptions) => {
              const p = byDomain.get(o.host.replace(/^mx\./, ''))!;
              const server = `${o.host}:${o.port}`;
              return p.up
                ? { server, passed: true, text: 'greeted 220' }
                : { server, passed: false, text: p.failure };
            },
          },
        );

        expect(result.results.map((r) => r.target)).toEqual(plan.map((_, t) => `t${t}`));
        const sent = provider.lines.slice(before).filter((l) => l.startsWith('ETRN '));
        for (const [d, p] of byDomain) {
          if (p.up) expect(sent).toContain(`ETRN ${d}`);
          else expect(sent).not.toContain(`ETRN ${d}`);
        }
        plan.forEach((ds, t) => {
          const r = result.results[t]!;
          expect(r.precheck?.passed).toBe(ds.every((p) => p.up));
          const upDomains = ds.flatMap((p, d) => (p.up ? [d] : []));
          if (upDomains.length === 0) {
            expect(r.outcome).toBe('skipped');
            ds.forEach((p, d) => {
              expect(r.reason).toContain(`${domain(t, d)}: mx.${domain(t, d)}:25 ${p.failure}`);
            });
            expect(r.replies).toEqual([]);
            return;
          }
          expect(r.outcome).toBe(
            worstOutcome(upDomains.map((d) => outcomeOfReply('ETRN', ds[d]!.code))),
          );
          ds.forEach((p, d) => {
            const line = r.replies.find((x) => x.command === `ETRN ${domain(t, d)}`);
            if (p.up) expect(line?.code).toBe(p.code);
            else
              expect(line).toMatchObject({
                code: null,
                text: expect.stringMatching(/^not sent: /),
              });
          });
        });
      }),
      { ci: 40, fuzzShare: 0.05 },
    );
  });
});
