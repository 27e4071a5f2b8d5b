/**
 * IAM policy evaluation for one principal's authorisations, as far as a synthesised template
 * decides it: an explicit Deny in any policy that applies wins; otherwise an Allow in one of the
 * role's own policies (or a same-account resource policy naming the role) is needed; otherwise
 * the call is implicitly denied.
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
 *
 * Matching follows the policy grammar: actions case-insensitively with `*` and `?`; resources
 * case-sensitively with `*` and `?` inside one ARN segment (between colons), a `*` that ends a
 * segment also spanning the colons after it; NotAction and NotResource; the condition operators
 * seen in CDK-generated policies (String*, Arn*, Bool, Numeric*, Null, with IfExists and
 * ForAnyValue/ForAllValues). A condition on a key the call decoder does not model cannot be
 * decided here: the authorisation is then reported `undecided`, never taken as allowed.
 */
import type { Authorization, ContextValue } from './aws-calls';

export interface Statement {
  readonly Sid?: string;
  readonly Effect: 'Allow' | 'Deny';
  readonly Action?: string | readonly string[];
  readonly NotAction?: string | readonly string[];
  readonly Resource?: string | readonly string[];
  readonly NotResource?: string | readonly string[];
  readonly Principal?: unknown;
  readonly NotPrincipal?: unknown;
  readonly Condition?: Record<string, Record<string, unknown>>;
}

export interface Policy {
  /** Where it comes from, e.g. `AWS::IAM::Policy FunctionRoleDefaultPolicy`. */
  readonly name: string;
  readonly kind: 'identity' | 'resource';
  /** Statements with every intrinsic resolved to strings. */
  readonly statements: readonly Statement[];
  /** For a resource policy: the ARNs of the resources it is attached to (objects under a bucket included). */
  readonly attachedTo?: readonly string[];
}

export interface StatementRef {
  readonly policy: string;
  /** The Sid, or `#<index>` when it has none. */
  readonly statement: string;
}

export type Decision =
  | { readonly verdict: 'allowed'; readonly by: StatementRef }
  | { readonly verdict: 'denied'; readonly by: StatementRef }
  | { readonly verdict: 'implicitly denied' }
  | { readonly verdict: 'undecided'; readonly why: string };

const list = (v: string | readonly string[] | undefined): readonly string[] =>
  v === undefined ? [] : typeof v === 'string' ? [v] : v;
const regexEscape = (s: string) => s.replace(/[.+^${}()|[\]\\]/g, '\\$&');

/** `*` and `?` anywhere (action names and condition values with StringLike). */
export function globMatches(pattern: string, value: string, ignoreCase = false): boolean {
  const source = `^${pattern
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : regexEscape(c)))
    .join('')}$`;
  return new RegExp(source, ignoreCase ? 'is' : 's').test(value);
}

/**
 * A Resource element against an ARN: wildcards stay within a colon-separated segment, except a
 * `*` that ends a segment, which may expand beyond the colons (IAM User Guide, "Resource").
 */
export function resourceMatches(pattern: string, arn: string | undefined): boolean {
  if (pattern === '*') return true;
  if (arn === undefined) return false;
  const segments = pattern.split(':');
  const source = segments
    .map((segment) =>
      segment
        .split('')
        .map((c, i) =>
          c === '*'
            ? i === segment.length - 1
              ? '.*'
              : '[^:]*'
            : c === '?'
              ? '[^:]'
              : regexEscape(c),
        )
        .join(''),
    )
    .join(':');
  return new RegExp(`^${source}$`, 's').test(arn);
}

function actionMatches(statement: Statement, action: string): boolean {
  if (statement.Action !== undefined)
    return list(statement.Action).some((p) => globMatches(p, action, true));
  if (statement.NotAction !== undefined)
    return !list(statement.NotAction).some((p) => globMatches(p, action, true));
  return false;
}

function resourceCovers(statement: Statement, arn: string | undefined): boolean {
  if (statement.Resource !== undefined)
    return list(statement.Resource).some((p) => resourceMatches(p, arn));
  // NotResource: every resource but those; an undecoded resource is not known to be outside them.
  if (statement.NotResource !== undefined)
    return arn !== undefined && !list(statement.NotResource).some((p) => resourceMatches(p, arn));
  return false;
}

/**
 * Who makes the call: a role (by ARN), or an AWS service acting for the account (CloudWatch
 * publishing an alarm to SNS), which only resource policies can allow.
 */
export type Caller = string | { readonly service: string };

/** Whether a resource policy's Principal covers the caller (a role in the same account, or a service). */
function principalCovers(statement: Statement, caller: Caller, accountId: string): boolean {
  const covers = (principal: unknown): boolean => {
    if (principal === '*') return true;
    if (!principal || typeof principal !== 'object') return false;
    if (typeof caller !== 'string')
      return list((principal as { Service?: string | string[] }).Service).includes(caller.service);
    const roleArn = caller;
    const aws = list((principal as { AWS?: string | string[] }).AWS);
    return aws.some(
      (p) =>
        p === '*' ||
        p === roleArn ||
        p === accountId ||
        p === `arn:aws:iam::${accountId}:root` ||
        p.endsWith(`:iam::${accountId}:root`),
    );
  };
  if (statement.Principal !== undefined) return covers(statement.Principal);
  if (statement.NotPrincipal !== undefined) return !covers(statement.NotPrincipal);
  return false;
}

type Tri = true | false | { undecided: string };

const NEGATED = new Set([
  'StringNotEquals',
  'StringNotEqualsIgnoreCase',
  'StringNotLike',
  'ArnNotEquals',
  'ArnNotLike',
  'NumericNotEquals',
]);

function compare(operator: string, want: string, have: string): boolean {
  switch (operator) {
    case 'StringEquals':
    case 'StringNotEquals':
    case 'ArnEquals':
    case 'ArnNotEquals':
      return want === have;
    case 'StringEqualsIgnoreCase':
    case 'StringNotEqualsIgnoreCase':
      return want.toLowerCase() === have.toLowerCase();
    case 'StringLike':
    case 'StringNotLike':
      return globMatches(want, have);
    case 'ArnLike':
    case 'ArnNotLike':
      return resourceMatches(want, have);
    case 'Bool':
      return want.toLowerCase() === have.toLowerCase();
    case 'NumericEquals':
    case 'NumericNotEquals':
      return Number(have) === Number(want);
    case 'NumericLessThan':
      return Number(have) < Number(want);
    case 'NumericLessThanEquals':
      return Number(have) <= Number(want);
    case 'NumericGreaterThan':
      return Number(have) > Number(want);
    case 'NumericGreaterThanEquals':
      return Number(have) >= Number(want);
  }
  throw new Error(`condition operator ${operator} is not evaluated by test/deploy/iam-policy.ts`);
}

function conditionHolds(condition: Statement['Condition'], auth: Authorization): Tri {
  for (const [rawOperator, keys] of Object.entries(condition ?? {})) {
    const setOperator = /^(ForAnyValue|ForAllValues):/.exec(rawOperator)?.[1];
    const ifExists = rawOperator.endsWith('IfExists');
    const operator = rawOperator
      .replace(/^(ForAnyValue|ForAllValues):/, '')
      .replace(/IfExists$/, '');
    for (const [rawKey, rawWanted] of Object.entries(keys)) {
      const key = rawKey.toLowerCase();
      const wanted = (Array.isArray(rawWanted) ? rawWanted : [rawWanted]).map(String);
      const present: ContextValue | undefined = auth.context[key];
      const modelled =
        present !== undefined || auth.modelled.some((m) => key === m || key.startsWith(`${m}/`));
      if (!modelled)
        return {
          undecided: `condition key ${rawKey} (${rawOperator}) is not modelled for ${auth.action} in test/deploy/aws-calls.ts`,
        };
      if (operator === 'Null') {
        // "true": the key must be absent; "false": present.
        if ((wanted[0] === 'true') !== (present === undefined)) return false;
        continue;
      }
      if (present === undefined) {
        // An absent key: IfExists passes, negated operators pass, the rest fail (ForAllValues passes on an empty set).
        if (ifExists || NEGATED.has(operator) || setOperator === 'ForAllValues') continue;
        return false;
      }
      const values = typeof present === 'string' ? [present] : present;
      // Negated operators hold when no listed value matches.
      const one = (v: string) =>
        wanted.some((w) => compare(operator, w, v)) !== NEGATED.has(operator);
      const holds = setOperator === 'ForAllValues' ? values.every(one) : values.some(one);
      if (!holds) return false;
    }
  }
  return true;
}

function applies(statement: Statement, auth: Authorization): Tri {
  if (!actionMatches(statement, auth.action)) return false;
  if (!resourceCovers(statement, auth.resource)) return false;
  return conditionHolds(statement.Condition, auth);
}

const refOf = (policy: Policy, statement: Statement, index: number): StatementRef => ({
  policy: policy.name,
  statement: statement.Sid ?? `#${index}`,
});

/** The decision for one authorisation of `caller` (a role's ARN, or a service) in `accountId`. */
export function decide(
  auth: Authorization,
  policies: readonly Policy[],
  caller: Caller,
  accountId: string,
): Decision {
  const withPrincipal =
    typeof caller === 'string'
      ? { ...auth, context: { ...auth.context, 'aws:principalarn': caller } }
      : auth;
  let allowed: StatementRef | undefined;
  let undecidedDeny: string | undefined;
  let undecidedAllow: string | undefined;
  for (const policy of policies) {
    // A service has no identity policies: only resource policies speak to it.
    if (policy.kind === 'identity' && typeof caller !== 'string') continue;
    if (
      policy.kind === 'resource' &&
      !(policy.attachedTo ?? []).some(
        (r) => auth.resource === r || auth.resource?.startsWith(`${r}/`),
      )
    )
      continue;
    for (const [index, statement] of policy.statements.entries()) {
      if (policy.kind === 'resource' && !principalCovers(statement, caller, accountId)) continue;
      const result = applies(statement, withPrincipal);
      if (result === false) continue;
      const ref = refOf(policy, statement, index);
      if (result !== true) {
        const why = `${ref.statement} of ${ref.policy}: ${result.undecided}`;
        if (statement.Effect === 'Deny') undecidedDeny ??= why;
        else undecidedAllow ??= why;
        continue;
      }
      if (statement.Effect === 'Deny') return { verdict: 'denied', by: ref };
      allowed ??= ref;
    }
  }
  // A Deny that might apply keeps the call undecided; an Allow that might apply matters only
  // when no other Allow does.
  if (undecidedDeny) return { verdict: 'undecided', why: undecidedDeny };
  if (allowed) return { verdict: 'allowed', by: allowed };
  if (undecidedAllow) return { verdict: 'undecided', why: undecidedAllow };
  return { verdict: 'implicitly denied' };
}
