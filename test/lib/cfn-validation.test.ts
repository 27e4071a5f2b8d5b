/**
 * CDK's built-in CloudFormation validation (cdk.json's `@aws-cdk/core:validateAgainstDefaultRules`:
 * a finding fails `cdk synth`) over every configuration the stack tests build. They synthesise
 * without it (test/lib/synth-dequeue.ts says why); here its rule engine is loaded once, in
 * beforeAll, and each configuration is one synthesis with the validation on, as `cdk synth` does.
 * Without bundling: the rules read the template, which bundling changes in nothing but the code's
 * S3Key (synth-dequeue.ts).
 */
import { Stack } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { ReleaseSignaller, type ReleaseSignallerProps } from '../../lib/release-signaller';
import { FIXTURE_ENTRY, inAnotherApp, synthDequeue, testApp } from './synth-dequeue';

const KMS = 'arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const EVERYTHING = {
  alarmEmail: 'ops@example.com',
  mailExpirationDays: 400,
  mailInfrequentAccessAfterDays: 30,
  ssmKmsKeyArn: KMS,
  secretsKmsKeyArn: KMS,
};

/** The dequeue app with this context (the configurations of release-signaller, static-egress, deployment-context and cdk-nag). */
const CONTEXTS: [string, Record<string, unknown>][] = [
  ['the default stack', {}],
  ['every optional resource, no VPC', EVERYTHING],
  ['static egress with every optional resource', { staticEgress: 'true', ...EVERYTHING }],
  [
    'static egress with an existing Elastic IP',
    {
      staticEgress: 'true',
      egressAllocationId: 'eipalloc-0123456789abcdef0',
      egressPorts: '25,2525',
    },
  ],
  [
    'every context option moved (deployment-context)',
    {
      stackName: 'DequeueProd',
      schedule: 'cron(0 6 ? * MON-FRI *)',
      scheduleTimeZone: 'Europe/Berlin',
      ssmPrefix: '/prod/dequeue',
      secretPrefix: 'prod/dequeue/',
      mailPrefix: 'atrn/',
      timeoutSeconds: '900',
      memoryMiB: '512',
      logRetentionDays: '90',
      failingAfterCycles: '5',
      staleAfterHours: '200',
      consoleTestEvents: 'false',
      ...EVERYTHING,
    },
  ],
];

/** ReleaseSignaller in a host stack (the configurations of release-signaller-props and work-queue). */
const CONSTRUCTS: [string, (stack: Stack) => ReleaseSignallerProps][] = [
  ['in another app, with its VPC and topic', inAnotherApp],
  ['without fan-out', () => ({ fanOut: false })],
  [
    'with its own worker settings',
    () => ({ workerBatchSize: 4, workerMaxConcurrency: 20, workerMaxReceiveCount: 5 }),
  ],
];

function hostTemplate(props: (stack: Stack) => ReleaseSignallerProps): Template {
  const stack = new Stack(testApp({}, { validate: true, bundle: false }), 'Host');
  new ReleaseSignaller(stack, 'Dequeue', { entry: FIXTURE_ENTRY, ...props(stack) });
  return Template.fromStack(stack);
}

describe("CDK's CloudFormation validation", () => {
  let refusal: unknown;
  beforeAll(() => {
    // The check is live: a queue outside CloudFormation's limits fails synthesis. (This also
    // loads the rule engine, so the syntheses below each take their own time only.)
    const stack = new Stack(testApp({}, { validate: true }), 'Broken');
    new sqs.CfnQueue(stack, 'Queue', { messageRetentionPeriod: 10 });
    try {
      Template.fromStack(stack);
    } catch (error) {
      refusal = error;
    }
  });

  it('refuses a template that breaks a rule (so a pass below means something)', () => {
    expect(String(refusal)).toMatch(/MessageRetentionPeriod: 10 is less than the minimum of 60/);
  });

  it.each(CONTEXTS)('passes %s', (_, context) => {
    const synth = synthDequeue(context, { validate: true, bundle: false });
    synth.dispose();
  });

  it.each(CONSTRUCTS)('passes ReleaseSignaller %s', (_, props) => {
    expect(Object.keys(hostTemplate(props).toJSON().Resources).length).toBeGreaterThan(0);
  });
});
