/**
 * The default stack, synthesised once by test/lib/release-signaller.test.ts: what the function is:
 * runtime, environment, log, bundle, network.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Capture, Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { ESM_REQUIRE_BANNER, LAMBDA_NODE_MAJOR } from '../../../lib/bundling';
import {
  onlyResource,
  scheduleDeadLetterQueue,
  SIGNALLER,
  signallerFunction,
  type SynthesisedDequeue,
} from '../synth-dequeue';

export function functionTests(synthesised: () => SynthesisedDequeue): void {
  let template: Template;
  beforeAll(() => {
    template = synthesised().template;
  });

  describe('the function', () => {
    it(`runs on Node.js ${LAMBDA_NODE_MAJOR} on arm64, with the default timeout and memory`, () => {
      template.hasResourceProperties('AWS::Lambda::Function', {
        ...SIGNALLER,
        Runtime: `nodejs${LAMBDA_NODE_MAJOR}.x`,
        Architectures: ['arm64'],
        // Lambda's maximum: an ATRN reply alone may take 600 s (the default ATRN reply wait).
        Timeout: 900,
        MemorySize: 256,
      });
    });

    it('gets exactly the environment the handler reads', () => {
      const environment = new Capture();
      template.hasResourceProperties('AWS::Lambda::Function', {
        ...SIGNALLER,
        Environment: { Variables: environment },
      });
      const table = onlyResource(template, 'AWS::DynamoDB::Table');
      const bucket = onlyResource(template, 'AWS::S3::Bucket');
      const workQueue = onlyResource(template, 'AWS::SQS::Queue', {
        Properties: { RedrivePolicy: Match.anyValue() },
      });
      expect(environment.asObject()).toEqual({
        DEQUEUE_SSM_PREFIX: '/dequeue',
        DEQUEUE_SECRET_PREFIX: 'dequeue/',
        DEQUEUE_COUNTER_TABLE: { Ref: table.id },
        DEQUEUE_MAIL_BUCKET: { Ref: bucket.id },
        DEQUEUE_MAIL_PREFIX: 'mail/',
        DEQUEUE_WORK_QUEUE_URL: { Ref: workQueue.id },
        DEQUEUE_IN_VPC: 'false',
        DEQUEUE_FAILING_AFTER_CYCLES: '3',
        DEQUEUE_STALE_AFTER_HOURS: '24',
        DEQUEUE_SERVER_DOWN_AFTER_CYCLES: '4',
        // The stack's own name: two stacks in one account never mix their metrics.
        POWERTOOLS_SERVICE_NAME: 'Dequeue',
        POWERTOOLS_METRICS_NAMESPACE: 'Dequeue',
        NODE_OPTIONS: '--enable-source-maps',
      });
    });

    it('logs to a log group of its own, kept 30 days', () => {
      const logGroup = new Capture();
      template.hasResourceProperties('AWS::Lambda::Function', {
        ...SIGNALLER,
        LoggingConfig: { LogGroup: { Ref: logGroup } },
      });
      expect(template.toJSON().Resources[logGroup.asString()]).toMatchObject({
        Type: 'AWS::Logs::LogGroup',
        Properties: { RetentionInDays: 30 },
      });
    });

    it('is not re-run by Lambda after a failure, never runs later than one interval, and records what Lambda gave up on', () => {
      const fn = signallerFunction(template);
      const queue = scheduleDeadLetterQueue(template);
      template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
        FunctionName: { Ref: fn.id },
        Qualifier: '$LATEST',
        // The next cycle is the retry.
        MaximumRetryAttempts: 0,
        // Lambda's default is 6 hours: a throttled slot would run long after its time.
        MaximumEventAgeInSeconds: 900,
        DestinationConfig: {
          OnFailure: { Destination: { 'Fn::GetAtt': [queue.id, 'Arn'] } },
        },
      });
    });

    it('has the concurrency of the 10 workers, one cycle and one manual run reserved', () => {
      template.hasResourceProperties('AWS::Lambda::Function', {
        ...SIGNALLER,
        ReservedConcurrentExecutions: 12,
      });
    });

    it('is bundled as minified ESM with a source map and a require() banner', () => {
      const assetDir = readdirSync(synthesised().outdir).find(
        (name) =>
          name.startsWith('asset.') && existsSync(join(synthesised().outdir, name, 'index.mjs')),
      );
      expect(assetDir, 'bundled asset with index.mjs').toBeDefined();
      const code = readFileSync(join(synthesised().outdir, assetDir!, 'index.mjs'), 'utf8');
      expect(code.startsWith(ESM_REQUIRE_BANNER)).toBe(true);
      expect(code).toMatch(/export\s*\{[^}]*\bas handler\b|export\s*\{\s*handler\s*\}/);
      expect(code).toContain('//# sourceMappingURL=index.mjs.map');
      expect(existsSync(join(synthesised().outdir, assetDir!, 'index.mjs.map'))).toBe(true);
      // Minified: the fixture's comment and line structure are gone.
      expect(code).not.toContain('stand-in entry');
    });

    it('has no VPC without static egress', () => {
      template.resourceCountIs('AWS::EC2::VPC', 0);
      template.resourceCountIs('AWS::EC2::EIP', 0);
      template.hasResourceProperties('AWS::Lambda::Function', {
        ...SIGNALLER,
        VpcConfig: Match.absent(),
      });
      expect(template.findOutputs('EgressAddress')).toEqual({});
    });
  });
}
