/**
 * The managed policy for `dequeue status --table <CounterTableName>`, run with an operator's own
 * credentials: it reads every `status#<target>` item with a Scan (filtered on that prefix; a
 * Scan cannot be narrowed to some keys by IAM, so it reads the table) and one item with GetItem.
 * Nothing here can write. The function itself needs none of this: it writes each target's status
 * with one UpdateItem and reads one back with GetItem, which its role already has.
 */
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';

export interface StatusReaderPolicyProps {
  /** The table holding the cycle counter and the per-target status items. */
  readonly table: dynamodb.ITable;
}

export class StatusReaderPolicy extends Construct {
  readonly policy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: StatusReaderPolicyProps) {
    super(scope, id);
    this.policy = new iam.ManagedPolicy(this, 'Policy', {
      description:
        'dequeue status --table: read the per-target status items of the cycle counter table',
      statements: [
        new iam.PolicyStatement({
          sid: 'ReadTargetStatus',
          actions: ['dynamodb:Scan', 'dynamodb:GetItem'],
          resources: [props.table.tableArn],
        }),
      ],
    });
  }
}
