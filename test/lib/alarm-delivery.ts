/**
 * Does each alarm reach someone? For every alarm of a synthesised template, every action is
 * followed to its SNS topic, and the topic's policy and (for an encrypted topic) its key's policy
 * are evaluated as IAM would for CloudWatch publishing that alarm (test/deploy/iam-policy.ts,
 * service principal `cloudwatch.amazonaws.com`, with `aws:SourceAccount` and `aws:SourceArn`):
 * sns:Publish on the topic, kms:GenerateDataKey and kms:Decrypt on the key. The same is asked for
 * an alarm of another account and of another region, which must be refused (the conditions hold).
 *
 * A topic with no topic policy keeps SNS's default one, which lets alarms of the topic's own
 * account publish; a topic policy replaces it, so CloudWatch must then be allowed by name. An
 * action that is not a topic of this template cannot be checked and is reported as a problem.
 */
import type { CfnTemplate, CfnValue } from '../deploy/cloud-assembly';
import { CfnResolver } from '../deploy/cfn-resolve';
import type { Authorization } from '../deploy/aws-calls';
import { decide, type Policy, type Statement } from '../deploy/iam-policy';

const ACCOUNT = '111122223333';
const REGION = 'eu-central-1';
const CLOUDWATCH = { service: 'cloudwatch.amazonaws.com' } as const;

export interface AlarmRoute {
  /** The alarm's logical id. */
  readonly alarm: string;
  /** `AlarmActions`, `OKActions` or `InsufficientDataActions`. */
  readonly on: string;
  /** The topic's logical id. */
  readonly topic: string;
  /** The logical id of the topic's key; undefined for an unencrypted topic. */
  readonly key?: string;
  /** The policy that let CloudWatch publish: a topic policy, or SNS's default one. */
  readonly allowedBy: string;
}

export interface AlarmDelivery {
  readonly alarms: number;
  readonly routes: readonly AlarmRoute[];
  /** Each way an alarm would not reach its topic, in words. */
  readonly problems: readonly string[];
}

const refOf = (value: CfnValue): string | undefined => {
  if (!value || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.Ref === 'string') return v.Ref;
  const getAtt = v['Fn::GetAtt'];
  return Array.isArray(getAtt) ? (getAtt[0] as string) : undefined;
};

function statementsOf(document: unknown): Statement[] {
  const statement = (document as { Statement?: Statement | Statement[] } | undefined)?.Statement;
  return statement === undefined ? [] : Array.isArray(statement) ? statement : [statement];
}

export function alarmDelivery(template: CfnTemplate): AlarmDelivery {
  const resolver = new CfnResolver(template, {
    partition: 'aws',
    region: REGION,
    accountId: ACCOUNT,
    stackName: 'Dequeue',
    urlSuffix: 'amazonaws.com',
  });
  const resources = template.Resources;
  const routes: AlarmRoute[] = [];
  const problems: string[] = [];
  const alarms = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::CloudWatch::Alarm');

  /** CloudWatch, publishing for an alarm of `account` in `region`. */
  const asCloudWatch = (
    action: string,
    resource: string,
    alarmName: string,
    account = ACCOUNT,
    region = REGION,
  ): Authorization => ({
    action,
    resource,
    context: {
      'aws:sourceaccount': account,
      'aws:sourcearn': `arn:aws:cloudwatch:${region}:${account}:alarm:${alarmName}`,
      'aws:securetransport': 'true',
    },
    modelled: ['aws:sourceaccount', 'aws:sourcearn', 'aws:securetransport'],
  });
  /** Allowed for this alarm, refused for the same alarm name in another account or region. */
  const check = (
    what: string,
    actions: readonly string[],
    resource: string,
    policies: readonly Policy[],
    alarmName: string,
  ): string | undefined => {
    for (const action of actions) {
      const mine = decide(asCloudWatch(action, resource, alarmName), policies, CLOUDWATCH, ACCOUNT);
      if (mine.verdict !== 'allowed')
        return `${what}: CloudWatch may not ${action} (${mine.verdict}${mine.verdict === 'undecided' ? `: ${mine.why}` : ''})`;
      const foreign = [
        asCloudWatch(action, resource, alarmName, '444455556666'),
        asCloudWatch(action, resource, alarmName, ACCOUNT, 'us-east-1'),
      ];
      for (const auth of foreign) {
        if (decide(auth, policies, CLOUDWATCH, ACCOUNT).verdict === 'allowed')
          return `${what}: ${action} is allowed for an alarm of ${String(auth.context['aws:sourcearn'])} too (no aws:SourceAccount/aws:SourceArn condition)`;
      }
    }
    return undefined;
  };

  for (const [alarmId, alarm] of alarms) {
    const props = alarm.Properties ?? {};
    const alarmName = resolver.physicalOf(alarmId).ref;
    if (!((props.AlarmActions as unknown[] | undefined) ?? []).length)
      problems.push(`${alarmId}: no alarm action, it notifies nobody`);
    for (const on of ['AlarmActions', 'OKActions', 'InsufficientDataActions']) {
      for (const action of (props[on] ?? []) as CfnValue[]) {
        const topicId = refOf(action);
        const topic = topicId === undefined ? undefined : resources[topicId];
        if (topicId === undefined || topic?.Type !== 'AWS::SNS::Topic') {
          problems.push(
            `${alarmId} ${on}: ${JSON.stringify(action)} is not an SNS topic of this template`,
          );
          continue;
        }
        const topicArn = resolver.string(action);
        const topicPolicies: Policy[] = Object.entries(resources)
          .filter(
            ([, r]) =>
              r.Type === 'AWS::SNS::TopicPolicy' &&
              ((r.Properties?.Topics ?? []) as CfnValue[]).some((t) => refOf(t) === topicId),
          )
          .map(([id, r]) => ({
            name: id,
            kind: 'resource',
            attachedTo: [topicArn],
            statements: statementsOf(resolver.resolve(r.Properties?.PolicyDocument)),
          }));
        let allowedBy = 'SNS default topic policy';
        if (topicPolicies.length) {
          const problem = check(
            `${alarmId} ${on} -> ${topicId} (topic policy)`,
            ['sns:Publish'],
            topicArn,
            topicPolicies,
            alarmName,
          );
          if (problem) {
            problems.push(problem);
            continue;
          }
          allowedBy = topicPolicies.map((p) => p.name).join(', ');
        }
        const keyRef = topic.Properties?.KmsMasterKeyId as CfnValue | undefined;
        let keyId: string | undefined;
        if (keyRef !== undefined) {
          keyId = refOf(keyRef);
          const key = keyId === undefined ? undefined : resources[keyId];
          if (keyId === undefined || key?.Type !== 'AWS::KMS::Key') {
            problems.push(
              `${alarmId} ${on} -> ${topicId}: encrypted with ${JSON.stringify(keyRef)}, not a key of this template whose policy can let CloudWatch use it (the AWS managed aws/sns key cannot)`,
            );
            continue;
          }
          const keyArn = resolver.physicalOf(keyId).attributes.Arn!;
          const problem = check(
            `${alarmId} ${on} -> ${topicId} -> ${keyId} (key policy)`,
            ['kms:GenerateDataKey', 'kms:Decrypt'],
            keyArn,
            [
              {
                name: keyId,
                kind: 'resource',
                attachedTo: [keyArn],
                statements: statementsOf(resolver.resolve(key.Properties?.KeyPolicy)),
              },
            ],
            alarmName,
          );
          if (problem) {
            problems.push(problem);
            continue;
          }
        }
        routes.push({ alarm: alarmId, on, topic: topicId, key: keyId, allowedBy });
      }
    }
  }
  return { alarms: alarms.length, routes, problems };
}
