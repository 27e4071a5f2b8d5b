/**
 * cdk-nag's AwsSolutions rules over the whole app, in both network modes with every optional
 * resource switched on. Synthesis fails on any unacknowledged finding; beyond that, every
 * acknowledgement must carry a reason and match a finding that really occurs, so none outlives
 * the resource it excused.
 */
import { Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { synthDequeue, type SynthesisedDequeue } from './synth-dequeue';

const EVERYTHING = {
  alarmEmail: 'ops@example.com',
  mailExpirationDays: 400,
  mailInfrequentAccessAfterDays: 30,
  ssmKmsKeyArn: 'arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
  secretsKmsKeyArn:
    'arn:aws:kms:eu-central-1:123456789012:key/5678abcd-12ab-34cd-56ef-1234567890ab',
};

interface Acknowledgement {
  readonly at: string;
  readonly id: string;
  readonly reason: string;
}
interface Finding {
  readonly path: string;
  readonly id: string;
}

/** Strips the plugin namespace CDK may add (`AwsSolutions::AwsSolutions-S1`). */
const bare = (id: string) => id.replace(/^[^:]+::/, '');

function acknowledgements(root: IConstruct): Acknowledgement[] {
  const found: Acknowledgement[] = [];
  for (const construct of root.node.findAll()) {
    for (const entry of construct.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) {
        // CDK acknowledges some cfn-lint rules of its own; only AwsSolutions ones are ours.
        if (bare(id).startsWith('AwsSolutions-'))
          found.push({ at: construct.node.path, id: bare(id), reason });
      }
    }
  }
  return found;
}

/** Every AwsSolutions finding, acknowledged or not. */
function allFindings(root: IConstruct): Finding[] {
  const pack = new AwsSolutionsChecks(root);
  // Ask the pack what it would report if nothing were acknowledged (a private hook, test-only).
  (pack as unknown as { isAcknowledged: () => boolean }).isAcknowledged = () => false;
  return pack.validateScope(root).violations.flatMap((v) =>
    v.violatingResources.map((r) => ({
      path: r.constructPath ?? `(no construct path: ${r.resourceLogicalId})`,
      id: v.ruleName,
    })),
  );
}

const covers = (ack: Acknowledgement, finding: Finding) =>
  ack.id === finding.id && (finding.path === ack.at || finding.path.startsWith(`${ack.at}/`));

describe.each([
  ['without a VPC', {}],
  ['with static egress', { staticEgress: true }],
  ['with S3-managed mail keys', { mailEncryption: 's3' }],
])('AwsSolutions checks %s', (_, context) => {
  let synth: SynthesisedDequeue | undefined;
  let failure: unknown;

  beforeAll(() => {
    try {
      synth = synthDequeue({ ...EVERYTHING, ...context }, { nag: true, bundle: false });
    } catch (error) {
      failure = error;
    }
  });
  afterAll(() => synth?.dispose());

  it('leave no unacknowledged finding (synthesis fails on one)', () => {
    // The message is the cdk-nag report: which rule, which resource.
    expect(failure === undefined ? undefined : String((failure as Error).message)).toBeUndefined();
  });

  it('find only what is acknowledged, and every acknowledgement is used and explained', () => {
    expect(synth, 'synthesis failed: see the test above').toBeDefined();
    const app = synth!.app;
    const acks = acknowledgements(app);
    const findings = allFindings(app);
    expect(findings.length).toBeGreaterThan(0);
    expect(findings.filter((f) => !acks.some((a) => covers(a, f)))).toEqual([]);
    expect(acks.filter((a) => !findings.some((f) => covers(a, f)))).toEqual([]);
    for (const ack of acks) expect(ack.reason.length, `${ack.id} at ${ack.at}`).toBeGreaterThan(40);
  });
});
