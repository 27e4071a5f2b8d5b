#!/usr/bin/env node
/**
 * The CDK app: reads the deployment options from CDK context and creates the stack. Nothing else.
 * Options: docs/deploy.md, or lib/deployment-options.ts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { DeploymentOptionsError, deploymentOptionsFrom } from '../lib/deployment-options';
import { DequeueStack } from '../lib/dequeue-stack';

const app = new App();
try {
  const options = deploymentOptionsFrom(
    (key) => app.node.tryGetContext(key),
    Object.keys(app.node.getAllContext()),
    committedContext(),
  );
  new DequeueStack(app, options.stackName, { options });
} catch (error) {
  // A bad context value is the operator's to fix: say which, without a stack trace.
  if (!(error instanceof DeploymentOptionsError)) throw error;
  console.error(`dequeue: ${error.message}`);
  process.exitCode = 1;
}

/**
 * The `context` block of the cdk.json the CDK CLI read (it runs the app in that directory), on
 * its own: what every later deploy reads too, unlike a `-c` value (lib/egress-options.ts).
 */
function committedContext(): (key: string) => unknown {
  let context: Record<string, unknown> = {};
  try {
    context = JSON.parse(readFileSync(join(process.cwd(), 'cdk.json'), 'utf8')).context ?? {};
  } catch {
    // No readable cdk.json: nothing is committed, and static egress is refused with the reason.
  }
  return (key) => context[key];
}
