/**
 * Synthesises the dequeue app the way bin/app.ts does (cdk.json context, then the options read
 * from it), with a tiny fixture entry instead of the real handler so that bundling stays fast.
 * Each test file synthesises once per configuration, in beforeAll.
 *
 * Without CDK's built-in CloudFormation validation (cdk.json's validateAgainstDefaultRules): its
 * rule engine is WebAssembly that takes ~7 s of CPU to load in each process that synthesises, so
 * every stack test file paid it again, and under load a synthesis inside a test ran past its
 * timeout. These tests check what the template holds; test/lib/cfn-validation.test.ts runs the
 * validation over every configuration they build (and CI's `cdk synth` over the real app).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App, Validations, type AppProps, type Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { deploymentOptionsFrom, type DeploymentOptions } from '../../lib/deployment-options';
import { DequeueStack } from '../../lib/dequeue-stack';
import type { ReleaseSignallerProps } from '../../lib/release-signaller';

export const FIXTURE_ENTRY = fileURLToPath(new URL('./fixtures/handler.ts', import.meta.url));
const CDK_JSON = fileURLToPath(new URL('../../cdk.json', import.meta.url));

/** The context block of cdk.json: the same feature flags as `cdk synth`. */
export function cdkJsonContext(): Record<string, unknown> {
  return JSON.parse(readFileSync(CDK_JSON, 'utf8')).context;
}

/** How a test app is made; every switch is off by default but `bundle`. */
export interface TestAppSettings {
  /** CDK's built-in CloudFormation validation (above). */
  readonly validate?: boolean;
  /**
   * Bundle the functions (default true). CDK bundles with `npx --no-install esbuild` in a shell,
   * ~1 s of CPU for npm's start-up alone in every synthesis; a test that reads only the template
   * turns it off: the template differs in nothing but the code's S3Key (the asset hash). The
   * switch is CDK's own, the one the CLI sets for stacks it does not deploy
   * (`aws:cdk:bundling-stacks`).
   */
  readonly bundle?: boolean;
}

/**
 * An App as `cdk synth` makes one (cdk.json's context, then `context`), without the built-in
 * validation unless `validate`, bundling unless `bundle` is false (above).
 */
export function testApp(props: AppProps = {}, settings: TestAppSettings = {}): App {
  return new App({
    ...props,
    context: {
      ...cdkJsonContext(),
      ...props.context,
      ...(settings.bundle === false ? { 'aws:cdk:bundling-stacks': [] } : {}),
    },
    builtinCloudFormationValidation: settings.validate ?? false,
  });
}

/** ReleaseSignaller in another app: that app's own VPC and alarm topic, created in `stack`. */
export function inAnotherApp(stack: Stack): ReleaseSignallerProps {
  return {
    vpc: new ec2.Vpc(stack, 'Network', { natGateways: 1, maxAzs: 2 }),
    alarmTopic: new sns.Topic(stack, 'OpsTopic'),
  };
}

export interface SynthesisedDequeue {
  readonly app: App;
  readonly stack: DequeueStack;
  readonly options: DeploymentOptions;
  readonly template: Template;
  /** Directory of the cloud assembly (holds the bundled asset). */
  readonly outdir: string;
  /** Removes the cloud assembly. */
  dispose(): void;
}

export function synthDequeue(
  context: Record<string, unknown> = {},
  settings: TestAppSettings & { readonly nag?: boolean } = {},
): SynthesisedDequeue {
  const outdir = mkdtempSync(join(tmpdir(), 'dequeue-cdk-'));
  const app = testApp({ outdir, context }, settings);
  if (settings.nag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  // Everything a test gives counts as committed to cdk.json (bin/app.ts reads the file itself).
  const get = (key: string) => app.node.tryGetContext(key);
  const options = deploymentOptionsFrom(get, Object.keys(app.node.getAllContext()), get);
  const stack = new DequeueStack(app, options.stackName, { options, entry: FIXTURE_ENTRY });
  app.synth();
  return {
    app,
    stack,
    options,
    template: Template.fromStack(stack),
    outdir,
    dispose: () => rmSync(outdir, { recursive: true, force: true }),
  };
}

/**
 * A CloudFormation value as readable text: `{Ref: X}` becomes `${X}`, `{Fn::GetAtt: [X, Arn]}`
 * becomes `${X.Arn}` and `Fn::Join` is joined, so ARNs can be compared as whole strings.
 */
export function cfnText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const v = value as Record<string, unknown>;
    if ('Ref' in v) return `\${${v.Ref as string}}`;
    if ('Fn::GetAtt' in v) return `\${${(v['Fn::GetAtt'] as string[]).join('.')}}`;
    if ('Fn::Join' in v) {
      const [separator, parts] = v['Fn::Join'] as [string, unknown[]];
      return parts.map(cfnText).join(separator);
    }
  }
  throw new Error(`cfnText: cannot render ${JSON.stringify(value)}`);
}

/**
 * Properties that pick dequeue's own function out of the template (the stack has a second one,
 * the custom resource that creates the console's test event registry).
 */
export const SIGNALLER = {
  Handler: 'index.handler',
  Description: Match.stringLikeRegexp('^dequeue: signals mail providers'),
} as const;

/** dequeue's function: its logical id and resource. */
export function signallerFunction(template: Template): { id: string; resource: any } {
  return onlyResource(template, 'AWS::Lambda::Function', { Properties: SIGNALLER });
}

/** The log group dequeue's function writes to. */
export function signallerLogGroup(template: Template): { id: string; resource: any } {
  const id = signallerFunction(template).resource.Properties.LoggingConfig.LogGroup.Ref as string;
  return { id, resource: template.toJSON().Resources[id] };
}

/** The statements of the function role's inline policy, by Sid. */
export function functionStatements(template: Template): Map<string, any> {
  const fn = signallerFunction(template);
  const roleId = fn.resource.Properties.Role['Fn::GetAtt'][0];
  const policy = onlyResource(template, 'AWS::IAM::Policy', {
    Properties: { Roles: [{ Ref: roleId }] },
  });
  return new Map(policy.resource.Properties.PolicyDocument.Statement.map((s: any) => [s.Sid, s]));
}

/** The work queue: the queue with a redrive policy (the other two are dead-letter queues). */
export function workQueue(template: Template): { id: string; resource: any } {
  return onlyResource(template, 'AWS::SQS::Queue', {
    Properties: { RedrivePolicy: Match.anyValue() },
  });
}

/** The function role's inline statements, in order. */
export function functionStatementList(template: Template): any[] {
  return [...functionStatements(template).values()];
}

/** The schedule's dead-letter queue (the fan-out work queue and its own DLQ are the other two). */
export function scheduleDeadLetterQueue(template: Template): { id: string; resource: any } {
  const schedule = onlyResource(template, 'AWS::Scheduler::Schedule');
  const id = schedule.resource.Properties.Target.DeadLetterConfig.Arn['Fn::GetAtt'][0];
  return { id, resource: template.toJSON().Resources[id] };
}

/** The one resource of a type, failing when there is not exactly one. */
export function onlyResource(
  template: Template,
  type: string,
  props: object = {},
): { id: string; resource: any } {
  const found = Object.entries(template.findResources(type, props));
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
  const [id, resource] = found[0]!;
  return { id, resource };
}
