/**
 * Shareable test events for the function in the Lambda console: dry run, ordinary cycle, force,
 * one target (docs/lambda.md "Events": `{"force"?: true, "targets"?: ["name"], "dryRun"?: true}`).
 *
 * The console keeps shareable test events as one EventBridge schema per function, named
 * `_<function name>-schema`, in the schema registry `lambda-testevent-schemas`; each event is an
 * entry of the OpenAPI document's `components.examples`, under its name, its JSON in `value`.
 * https://docs.aws.amazon.com/lambda/latest/dg/testing-functions.html#creating-shareable-events
 *
 * That registry is not there in every account: Lambda creates it the first time someone saves a
 * shareable test event in the console of that account and region. CloudFormation can own neither
 * case alone: an `AWS::EventSchemas::Registry` fails to create where the console already made
 * one, and a stack that owned it would, when deleted, take every other function's shareable
 * events with it. So a small custom resource calls CreateRegistry once, takes "it already exists"
 * (ConflictException) as success, and never deletes the registry.
 *
 * The schema has the same problem on a smaller scale: its name is the one the console uses, so
 * someone who saved a shareable event for the function by hand (before this stack made them, or
 * with `consoleTestEvents` off) already has `_<function>-schema`, and an
 * `AWS::EventSchemas::Schema` of that name fails the deploy. The schema is therefore made by the
 * same kind of custom resource: CreateSchema on create, and a schema already there is left as
 * its owner saved it; UpdateSchema when the events change (nothing to update is fine); DeleteSchema
 * with the stack (the function goes with it), "not there" being fine too.
 */
import { ArnFormat, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';

/** The registry the Lambda console reads shareable test events from. */
export const TEST_EVENT_REGISTRY = 'lambda-testevent-schemas';

/** The manual events a user picks in the console, by the name the console shows. */
export const CONSOLE_TEST_EVENTS = {
  'dry-run': { dryRun: true },
  'ordinary-cycle': {},
  force: { force: true },
  'one-target': { targets: ['isp-etrn'] },
} as const;

export interface ConsoleTestEventsProps {
  /** The function the events are for. */
  readonly function: lambda.IFunction;
}

export class ConsoleTestEvents extends Construct {
  /** The custom resource that keeps the schema `_<function name>-schema`. */
  readonly schema: cr.AwsCustomResource;

  constructor(scope: Construct, id: string, props: ConsoleTestEventsProps) {
    super(scope, id);
    const registryArn = Stack.of(this).formatArn({
      service: 'schemas',
      resource: 'registry',
      resourceName: TEST_EVENT_REGISTRY,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });

    // A role of our own: the default one would carry AWSLambdaBasicExecutionRole, which may write
    // to every log group of the account. This one writes its own log and creates one registry.
    const log = new logs.LogGroup(this, 'RegistryLog', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const role = new iam.Role(this, 'RegistryRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description:
        "dequeue: creates the lambda-testevent-schemas registry when the account lacks it, and the function's shareable test events in it",
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [log.logGroupArn],
      }),
    );

    const registry = new cr.AwsCustomResource(this, 'Registry', {
      resourceType: 'Custom::LambdaTestEventRegistry',
      // Create only; no onUpdate (nothing to change) and no onDelete (the registry is shared).
      onCreate: {
        service: 'schemas',
        action: 'CreateRegistry',
        parameters: {
          RegistryName: TEST_EVENT_REGISTRY,
          Description:
            'Shareable test events of Lambda functions (the Lambda console reads them here)',
        },
        physicalResourceId: cr.PhysicalResourceId.of(TEST_EVENT_REGISTRY),
        // The console (or another stack) made it already: that is what we wanted.
        ignoreErrorCodesMatching: 'ConflictException',
      },
      policy: cr.AwsCustomResourcePolicy.fromSdkCalls({ resources: [registryArn] }),
      installLatestAwsSdk: false,
      role,
      logGroup: log,
    });

    const schemaName = `_${props.function.functionName}-schema`;
    const schema = {
      RegistryName: TEST_EVENT_REGISTRY,
      SchemaName: schemaName,
    };
    const content = {
      ...schema,
      Type: 'OpenApi3',
      Description:
        'dequeue manual events: dry run, ordinary cycle, force, one target (edit the target name)',
      Content: JSON.stringify(testEventDocument()),
    };
    this.schema = new cr.AwsCustomResource(this, 'Schema', {
      resourceType: 'Custom::LambdaTestEventSchema',
      onCreate: {
        service: 'schemas',
        action: 'CreateSchema',
        parameters: content,
        physicalResourceId: cr.PhysicalResourceId.of(schemaName),
        // Saved by hand before: the operator's events stay as they are.
        ignoreErrorCodesMatching: 'ConflictException',
      },
      onUpdate: {
        service: 'schemas',
        action: 'UpdateSchema',
        parameters: content,
        physicalResourceId: cr.PhysicalResourceId.of(schemaName),
        // Deleted by hand meanwhile: nothing to update.
        ignoreErrorCodesMatching: 'NotFoundException',
      },
      onDelete: {
        service: 'schemas',
        action: 'DeleteSchema',
        parameters: schema,
        ignoreErrorCodesMatching: 'NotFoundException',
      },
      policy: cr.AwsCustomResourcePolicy.fromSdkCalls({
        resources: [
          Stack.of(this).formatArn({
            service: 'schemas',
            resource: 'schema',
            resourceName: `${TEST_EVENT_REGISTRY}/${schemaName}`,
            arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
          }),
        ],
      }),
      installLatestAwsSdk: false,
      role,
      logGroup: log,
    });
    this.schema.node.addDependency(registry);
  }
}

/** The OpenAPI 3 document the console reads: the event's shape and one example per test event. */
export function testEventDocument(): object {
  return {
    openapi: '3.0.0',
    info: { version: '1.0.0', title: 'Event' },
    paths: {},
    components: {
      schemas: {
        Event: {
          type: 'object',
          properties: {
            dryRun: {
              type: 'boolean',
              description: 'validate and resolve everything, send nothing, count nothing',
            },
            force: {
              type: 'boolean',
              description: 'signal whatever the cycle count says, without advancing it',
            },
            targets: {
              type: 'array',
              description: 'work only these targets',
              items: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' },
            },
          },
          additionalProperties: false,
        },
      },
      examples: Object.fromEntries(
        Object.entries(CONSOLE_TEST_EVENTS).map(([name, value]) => [name, { value }]),
      ),
    },
  };
}
