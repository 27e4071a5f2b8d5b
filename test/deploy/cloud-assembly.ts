/**
 * What `cdk deploy` would ship, read from a cloud assembly made by `cdk synth` with the repo's
 * cdk.json (the same app command, context and bundling as a deployment): each stack's template,
 * and for the function a schedule invokes, its bundle directory, handler, runtime, limits,
 * environment and role, all taken from the template and the asset manifest.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Bundling two files and loading aws-cdk-lib twice; a busy shared machine may take a while. */
const SYNTH_TIMEOUT_MS = 120_000;

export type CfnValue = unknown;
export interface CfnResource {
  readonly Type: string;
  readonly Properties?: Record<string, CfnValue>;
  readonly Metadata?: Record<string, CfnValue>;
}
export interface CfnTemplate {
  readonly Resources: Record<string, CfnResource>;
  readonly Parameters?: Record<string, { readonly Default?: unknown }>;
  readonly Conditions?: Record<string, CfnValue>;
}

export interface StackArtifact {
  readonly name: string;
  /** The cloud assembly directory it was read from. */
  readonly dir: string;
  readonly template: CfnTemplate;
  /** Asset hash -> directory or file in the assembly, from the stack's asset manifest. */
  readonly assetPaths: ReadonlyMap<
    string,
    { readonly path: string; readonly objectKeys: readonly string[] }
  >;
}

export interface CloudAssembly {
  readonly dir: string;
  readonly stacks: readonly StackArtifact[];
  dispose(): void;
}

/** `cdk synth --quiet -o <tmp>` from the repository root, exactly as .ci/run and a user run it. */
export async function synthesise(): Promise<CloudAssembly> {
  const dir = mkdtempSync(join(tmpdir(), 'dequeue-deploy-'));
  await synthesiseInto(dir);
  return {
    dir,
    stacks: readAssembly(dir),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** `cdk synth --quiet -o <dir>` from the repository root; `dir` is removed when it fails. */
export async function synthesiseInto(dir: string): Promise<void> {
  try {
    await run(join(ROOT, 'node_modules', '.bin', 'cdk'), ['synth', '--quiet', '--output', dir], {
      cwd: ROOT,
      timeout: SYNTH_TIMEOUT_MS,
      maxBuffer: 16 * 1024 * 1024,
      env: { ...process.env, CDK_DISABLE_VERSION_CHECK: 'true' },
    });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    const err = e as Error & { stderr?: string };
    throw new Error(`cdk synth failed: ${err.message}\n${(err.stderr ?? '').slice(-2000)}`, {
      cause: e,
    });
  }
}

interface Manifest {
  readonly artifacts: Record<
    string,
    { type: string; properties?: Record<string, unknown>; dependencies?: string[] }
  >;
}

export function readAssembly(dir: string): StackArtifact[] {
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
  const stacks: StackArtifact[] = [];
  for (const [name, artifact] of Object.entries(manifest.artifacts)) {
    if (artifact.type !== 'aws:cloudformation:stack') continue;
    const template = JSON.parse(
      readFileSync(join(dir, String(artifact.properties?.templateFile)), 'utf8'),
    ) as CfnTemplate;
    const assetPaths = new Map<string, { path: string; objectKeys: string[] }>();
    for (const dependency of artifact.dependencies ?? []) {
      const assets = manifest.artifacts[dependency];
      if (assets?.type !== 'cdk:asset-manifest') continue;
      const files = JSON.parse(readFileSync(join(dir, String(assets.properties?.file)), 'utf8'))
        .files as Record<
        string,
        {
          source: { path: string; packaging?: string };
          destinations: Record<string, { objectKey: string }>;
        }
      >;
      for (const [hash, file] of Object.entries(files)) {
        assetPaths.set(hash, {
          path: join(dir, file.source.path),
          objectKeys: Object.values(file.destinations).map((d) => d.objectKey),
        });
      }
    }
    stacks.push({ name, dir, template, assetPaths });
  }
  return stacks;
}

/** A function as deployed: everything the Lambda service is told about it. */
export interface DeployedFunction {
  readonly stack: StackArtifact;
  readonly logicalId: string;
  /** Directory of the bundle (the asset Lambda unzips into /var/task). */
  readonly assetDir: string;
  readonly handler: string;
  readonly runtime: string;
  readonly timeoutSeconds: number;
  readonly memoryMiB: number;
  /** Environment.Variables as in the template (values may be intrinsics). */
  readonly environment: Record<string, CfnValue>;
  /** Logical id of the execution role (from `Role: {Fn::GetAtt: [id, Arn]}`). */
  readonly roleId: string;
  /** LoggingConfig as in the template. */
  readonly logging: Record<string, CfnValue>;
}

export interface ScheduledInvocation {
  readonly function: DeployedFunction;
  readonly scheduleId: string;
  readonly schedule: CfnResource;
  /** Target.Input as in the template: the event, with `<aws.scheduler.*>` placeholders. */
  readonly input: CfnValue;
}

const getAttId = (value: CfnValue, attribute: string): string | undefined => {
  const att = (value as { 'Fn::GetAtt'?: unknown } | undefined)?.['Fn::GetAtt'];
  const [id, attr] = Array.isArray(att) ? att : typeof att === 'string' ? att.split('.') : [];
  return attr === attribute ? (id as string) : undefined;
};

/** Every Lambda function an EventBridge Scheduler schedule invokes, across the assembly's stacks. */
export function scheduledInvocations(stacks: readonly StackArtifact[]): ScheduledInvocation[] {
  const found: ScheduledInvocation[] = [];
  for (const stack of stacks) {
    for (const [scheduleId, schedule] of Object.entries(stack.template.Resources)) {
      if (schedule.Type !== 'AWS::Scheduler::Schedule') continue;
      const target = schedule.Properties?.Target as
        | { Arn?: CfnValue; Input?: CfnValue }
        | undefined;
      const functionId = getAttId(target?.Arn, 'Arn');
      if (!functionId || stack.template.Resources[functionId]?.Type !== 'AWS::Lambda::Function')
        continue;
      found.push({
        function: deployedFunction(stack, functionId),
        scheduleId,
        schedule,
        input: target?.Input,
      });
    }
  }
  return found;
}

export function deployedFunction(stack: StackArtifact, logicalId: string): DeployedFunction {
  const resource = stack.template.Resources[logicalId]!;
  const p = resource.Properties ?? {};
  const where = `${stack.name}/${logicalId}`;
  const code = p.Code as { S3Key?: unknown; ZipFile?: unknown } | undefined;
  if (typeof code?.S3Key !== 'string')
    throw new Error(
      `${where}: Code.S3Key is not a literal key (${JSON.stringify(code)}); inline or image code is not run by this test`,
    );
  const hash = code.S3Key.replace(/\.zip$/, '');
  const asset = stack.assetPaths.get(hash);
  if (!asset?.objectKeys.includes(code.S3Key))
    throw new Error(`${where}: no asset in the manifest is published as ${code.S3Key}`);
  // The construct's own record of the asset, when the CLI wrote asset metadata: the same directory.
  const metadataPath = resource.Metadata?.['aws:asset:path'];
  if (typeof metadataPath === 'string' && join(stack.dir, metadataPath) !== asset.path) {
    throw new Error(
      `${where}: aws:asset:path ${metadataPath} is not the asset published as ${code.S3Key}`,
    );
  }
  if (!existsSync(asset.path) || !statSync(asset.path).isDirectory())
    throw new Error(`${where}: asset ${asset.path} is not a directory`);
  const roleId = getAttId(p.Role, 'Arn');
  if (!roleId)
    throw new Error(
      `${where}: Role is not {Fn::GetAtt: [<role>, Arn]} of this template (${JSON.stringify(p.Role)})`,
    );
  return {
    stack,
    logicalId,
    assetDir: asset.path,
    handler: String(p.Handler),
    runtime: String(p.Runtime),
    // CloudFormation's defaults when the template leaves them out.
    timeoutSeconds: Number(p.Timeout ?? 3),
    memoryMiB: Number(p.MemorySize ?? 128),
    environment: ((p.Environment as { Variables?: Record<string, CfnValue> } | undefined)
      ?.Variables ?? {}) as Record<string, CfnValue>,
    roleId,
    logging: (p.LoggingConfig ?? {}) as Record<string, CfnValue>,
  };
}

/** An SQS queue feeding the function through an event source mapping (the service polls it with the function's role). */
export interface QueueEventSource {
  readonly mappingId: string;
  readonly queueId: string;
  /** Records per invocation (BatchSize; SQS's default 10). */
  readonly batchSize: number;
  /** The function answers with `batchItemFailures` (FunctionResponseTypes: ReportBatchItemFailures). */
  readonly reportsBatchItemFailures: boolean;
}

export function queueEventSources(fn: DeployedFunction): QueueEventSource[] {
  const resources = fn.stack.template.Resources;
  const found: QueueEventSource[] = [];
  for (const [mappingId, mapping] of Object.entries(resources)) {
    if (mapping.Type !== 'AWS::Lambda::EventSourceMapping') continue;
    const p = mapping.Properties ?? {};
    const target = p.FunctionName as { Ref?: string } | undefined;
    if (target?.Ref !== fn.logicalId && getAttId(p.FunctionName, 'Arn') !== fn.logicalId) continue;
    if (p.Enabled === false) continue;
    const queueId = getAttId(p.EventSourceArn, 'Arn');
    if (!queueId || resources[queueId]?.Type !== 'AWS::SQS::Queue') continue;
    found.push({
      mappingId,
      queueId,
      batchSize: Number(p.BatchSize ?? 10),
      reportsBatchItemFailures: ((p.FunctionResponseTypes ?? []) as string[]).includes(
        'ReportBatchItemFailures',
      ),
    });
  }
  return found;
}
