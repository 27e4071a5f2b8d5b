/**
 * The policies that decide what a role in a synthesised template may do: its inline policies,
 * the AWS::IAM::Policy and AWS::IAM::ManagedPolicy resources attached to it, managed policies of
 * the template listed in ManagedPolicyArns, and the resource policies of the template (bucket,
 * queue and topic policies), whose Deny statements apply to the role as well. Every intrinsic is
 * resolved (cfn-resolve.ts), so statements compare with the ARNs of the calls as strings.
 */
import type { CfnTemplate, CfnValue } from './cloud-assembly';
import type { CfnResolver } from './cfn-resolve';
import type { Policy, Statement } from './iam-policy';

export interface RolePolicies {
  readonly policies: readonly Policy[];
  /** What applies to the role but cannot be read from the template (AWS managed policies, a boundary). */
  readonly notEvaluated: readonly string[];
}

const refersTo = (value: CfnValue, logicalId: string) =>
  JSON.stringify(value ?? null).includes(`"Ref":"${logicalId}"`);

function statementsOf(document: CfnValue, resolver: CfnResolver): Statement[] {
  const resolved = resolver.resolve(document) as { Statement?: Statement | Statement[] };
  const statements = resolved?.Statement;
  return statements === undefined ? [] : Array.isArray(statements) ? statements : [statements];
}

export function rolePolicies(
  template: CfnTemplate,
  roleId: string,
  resolver: CfnResolver,
): RolePolicies {
  const role = template.Resources[roleId];
  if (role?.Type !== 'AWS::IAM::Role')
    throw new Error(`${roleId} is not an AWS::IAM::Role of the template`);
  const policies: Policy[] = [];
  const notEvaluated: string[] = [];
  const props = role.Properties ?? {};

  for (const inline of (props.Policies ?? []) as {
    PolicyName: CfnValue;
    PolicyDocument: CfnValue;
  }[]) {
    policies.push({
      name: `${roleId} inline ${resolver.string(inline.PolicyName)}`,
      kind: 'identity',
      statements: statementsOf(inline.PolicyDocument, resolver),
    });
  }
  for (const arn of (props.ManagedPolicyArns ?? []) as CfnValue[]) {
    const id = (arn as { Ref?: string })?.Ref;
    if (id && template.Resources[id]?.Type === 'AWS::IAM::ManagedPolicy') continue; // read below, with the others
    notEvaluated.push(
      `managed policy ${JSON.stringify(resolver.resolve(arn))} (not in the template)`,
    );
  }
  if (props.PermissionsBoundary !== undefined)
    notEvaluated.push(
      `permissions boundary ${JSON.stringify(resolver.resolve(props.PermissionsBoundary))}`,
    );

  for (const [id, resource] of Object.entries(template.Resources)) {
    const p = resource.Properties ?? {};
    switch (resource.Type) {
      case 'AWS::IAM::Policy':
        if (refersTo(p.Roles, roleId))
          policies.push({
            name: id,
            kind: 'identity',
            statements: statementsOf(p.PolicyDocument, resolver),
          });
        break;
      case 'AWS::IAM::ManagedPolicy':
        if (refersTo(p.Roles, roleId) || refersTo(props.ManagedPolicyArns, id))
          policies.push({
            name: id,
            kind: 'identity',
            statements: statementsOf(p.PolicyDocument, resolver),
          });
        break;
      case 'AWS::S3::BucketPolicy':
        policies.push(
          resourcePolicy(id, p.PolicyDocument, resolver, () => [
            `arn:${resolver.pseudo.partition}:s3:::${resolver.string(p.Bucket)}`,
          ]),
        );
        break;
      case 'AWS::SQS::QueuePolicy':
        policies.push(
          resourcePolicy(id, p.PolicyDocument, resolver, () =>
            (p.Queues as CfnValue[]).map((q) => queueArn(resolver.string(q), resolver)),
          ),
        );
        break;
      case 'AWS::SNS::TopicPolicy':
        policies.push(
          resourcePolicy(id, p.PolicyDocument, resolver, () =>
            (p.Topics as CfnValue[]).map((t) => resolver.string(t)),
          ),
        );
        break;
    }
  }
  return { policies, notEvaluated };
}

const queueArn = (url: string, resolver: CfnResolver) => {
  const [account, name] = new URL(url).pathname.split('/').filter(Boolean);
  return `arn:${resolver.pseudo.partition}:sqs:${resolver.pseudo.region}:${account}:${name}`;
};

/**
 * A resource policy, resolved only when a call touches the resource it is attached to: the
 * template's other resource policies (an alarm topic's, say) may use intrinsics this test has no
 * reason to resolve.
 */
function resourcePolicy(
  name: string,
  document: CfnValue,
  resolver: CfnResolver,
  attachedTo: () => string[],
): Policy {
  let statements: Statement[] | undefined;
  let arns: string[] | undefined;
  return {
    name,
    kind: 'resource',
    get attachedTo() {
      return (arns ??= attachedTo());
    },
    get statements() {
      return (statements ??= statementsOf(document, resolver));
    },
  };
}
