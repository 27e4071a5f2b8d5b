/**
 * The managed policy for `dequeue status --table <CounterTableName>`, run with an operator's own
 * credentials: every target's status with a Query of the table's status index (which holds the
 * status items only), one target's with GetItem. No Scan: the claims and slots beside the
 * statuses stay unread. Nothing here can write.
 */
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';

export interface StatusReaderPolicyProps {
  /** The table holding the cycle counter and the per-target status items. */
  readonly table: dynamodb.ITable;
  /** The name of its global secondary index over the status items. */
  readonly statusIndex: string;
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
          sid: 'ListTargetStatus',
          actions: ['dynamodb:Query'],
          resources: [`${props.table.tableArn}/index/${props.statusIndex}`],
        }),
        new iam.PolicyStatement({
          sid: 'ReadTargetStatus',
          actions: ['dynamodb:GetItem'],
          resources: [props.table.tableArn],
        }),
      ],
    });
  }
}
