/**
 * The IAM audit of deployed-bundle.test.ts: every authorisation the bundle's AWS calls needed,
 * decided against the role's policies in the template (iam-policy.ts), said one line per call,
 * and the role's statements that no call needed.
 */
import type { AwsCall } from './aws-calls';
import { ACCOUNT_ID } from './deployment';
import { decide, type Decision } from './iam-policy';

type Policies = Parameters<typeof decide>[1];
type Authorization = AwsCall['authorizations'][number];

export interface AuditedRun {
  readonly name: string;
  readonly calls: readonly AwsCall[];
}

export interface Audited {
  readonly run: string;
  readonly call: AwsCall;
  readonly auth: Authorization;
  readonly decision: Decision;
}

/** A decision in words, naming the statement that decided it. */
export function describeDecision(d: Decision): string {
  return d.verdict === 'allowed'
    ? `allowed by ${d.by.statement} (${d.by.policy})`
    : d.verdict === 'denied'
      ? `DENIED by ${d.by.statement} (${d.by.policy})`
      : d.verdict === 'undecided'
        ? `UNDECIDED: ${d.why}`
        : 'NOT GRANTED (implicit deny)';
}

/** Every authorisation of every call of `runs`, decided. */
export function auditCalls(
  runs: readonly AuditedRun[],
  policies: Policies,
  roleArn: string,
): Audited[] {
  return runs.flatMap((run) =>
    run.calls.flatMap((call) =>
      call.authorizations.map((auth) => ({
        run: run.name,
        call,
        auth,
        decision: decide(auth, policies, roleArn, ACCOUNT_ID),
      })),
    ),
  );
}

/** The identity policies' statements (`policy/Sid`) that no allowed decision used. */
export function unusedStatements(decisions: readonly Audited[], policies: Policies): string[] {
  const used = new Set(
    decisions.flatMap(({ decision }) =>
      decision.verdict === 'allowed' ? [`${decision.by.policy}/${decision.by.statement}`] : [],
    ),
  );
  return policies
    .filter((p) => p.kind === 'identity')
    .flatMap((p) => p.statements.map((s, i) => `${p.name}/${s.Sid ?? `#${i}`}`))
    .filter((ref) => !used.has(ref));
}

/** One line per call, and a table of operation, action and verdict with counts: for a note. */
export function auditReport(
  decisions: readonly Audited[],
  unused: readonly string[],
  notEvaluated: readonly string[],
): string {
  const lines = decisions.map(
    ({ run, call, auth, decision }) =>
      `${run}: ${call.operation} ${call.subject} [HTTP ${call.status}] -> ${auth.action} on ${auth.resource ?? '(resource not decoded)'}: ${describeDecision(decision)}`,
  );
  const summary = new Map<string, number>();
  for (const { call, auth, decision } of decisions) {
    const key = `| ${call.operation} | ${auth.action} | ${describeDecision(decision).replace(/ \(.*\)$/, '')} |`;
    summary.set(key, (summary.get(key) ?? 0) + 1);
  }
  return [
    `AWS calls of the deployed bundle (${decisions.length} authorisations):`,
    ...lines,
    `role statements no call needed: ${unused.join(', ') || 'none'}`,
    ...(notEvaluated.length ? [`not evaluated: ${notEvaluated.join('; ')}`] : []),
    '',
    '| call | authorised as | verdict | times |',
    '| --- | --- | --- | --- |',
    ...[...summary].map(([key, n]) => `${key} ${n} |`),
  ].join('\n');
}
