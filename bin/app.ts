#!/usr/bin/env node
/**
 * The CDK app: reads the deployment options from CDK context and creates the stack. Nothing else.
 * Options: docs/deploy.md, or lib/deployment-options.ts.
 */
import { App } from 'aws-cdk-lib';
import { DeploymentOptionsError, deploymentOptionsFrom } from '../lib/deployment-options';
import { DequeueStack } from '../lib/dequeue-stack';

const app = new App();
try {
  const options = deploymentOptionsFrom(
    (key) => app.node.tryGetContext(key),
    Object.keys(app.node.getAllContext()),
  );
  new DequeueStack(app, options.stackName, { options });
} catch (error) {
  // A bad context value is the operator's to fix: say which, without a stack trace.
  if (!(error instanceof DeploymentOptionsError)) throw error;
  console.error(`dequeue: ${error.message}`);
  process.exitCode = 1;
}
