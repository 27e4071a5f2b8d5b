/**
 * One session per target at a time (core/ports.ts, TargetLeases), in the cycle counter's table,
 * one item per target beside the counter:
 *
 *   lease#<target>   { holder, leaseUntil (epoch ms), expiresAt (TTL) }
 *
 * Holding is one conditional UpdateItem: it writes our holder and `until` only when there is no
 * lease or the last one has run out (`leaseUntil <= now`), so of two runs that try at once exactly
 * one gets it (DynamoDB applies conditional writes to one item one after another). `until` is the
 * run's deadline: Lambda ends the invocation there, so no session outlives its lease, and a run
 * that dies holding one blocks the target until then and no longer. A lease ending more than 16
 * minutes from now cannot be a run's and does not count. Releasing sets `leaseUntil`
 * back to 0, only while the holder is still ours. Both are UpdateItem on the table, which the
 * function is granted already (lib/signaller-permissions.ts, CountCycles); the items carry no
 * `kind`, so the status index never holds them. The clocks compared are Lambda's, kept by NTP;
 * a second of skew only shortens or lengthens an expired lease by as much.
 *
 * Each hold carries a holder of its own (a UUID): when the SDK sends the write again after its
 * answer was lost, the condition meets our own lease, which ALL_OLD hands back, and it is ours.
 * https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html
 */
import { randomUUID } from 'node:crypto';
import {
  ConditionalCheckFailedException,
  UpdateItemCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { DequeueError } from '../core/errors';
import type { HeldLease, TargetLeases } from '../core/ports';
import { awsErrorKind, describeAwsError } from './aws-errors';

/**
 * No run lasts longer than Lambda's 15 minutes (and a minute of clock skew): a lease that ends
 * later than that from now was not written by a run, and is ignored, so that whoever may write
 * the table cannot hold a target for ever (docs/security.md).
 */
const LONGEST_LEASE_MS = 16 * 60_000;
/** A lease item is of no use after its `until`; a day later DynamoDB's TTL removes it. */
const LEASE_TTL_SECONDS = 86_400;
/** Giving a lease back is a courtesy (it expires anyway): it may not hold up the run's report. */
const RELEASE_TIMEOUT_MS = 3_000;

export interface DynamoDbTargetLeasesOptions {
  readonly tableName: string;
  readonly now?: () => number;
}

export class DynamoDbTargetLeases implements TargetLeases {
  private readonly table: string;
  private readonly now: () => number;

  constructor(
    private readonly client: DynamoDBClient,
    options: DynamoDbTargetLeasesOptions,
  ) {
    this.table = options.tableName;
    this.now = options.now ?? Date.now;
  }

  async hold(target: string, until: number, signal?: AbortSignal): Promise<HeldLease | undefined> {
    const holder = randomUUID();
    const key = { pk: { S: `lease#${target}` } };
    const hold = new UpdateItemCommand({
      TableName: this.table,
      Key: key,
      UpdateExpression: 'SET holder = :holder, leaseUntil = :until, expiresAt = :ttl',
      ConditionExpression:
        'attribute_not_exists(leaseUntil) OR leaseUntil <= :now OR leaseUntil > :latest',
      ExpressionAttributeValues: {
        ':holder': { S: holder },
        ':until': { N: String(until) },
        ':now': { N: String(this.now()) },
        ':latest': { N: String(this.now() + LONGEST_LEASE_MS) },
        ':ttl': { N: String(Math.ceil(until / 1000) + LEASE_TTL_SECONDS) },
      },
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    });
    try {
      await this.client.send(hold, { abortSignal: signal });
    } catch (e) {
      if (e instanceof ConditionalCheckFailedException) {
        // Our own write, sent again by the SDK after its answer was lost: the lease is ours.
        if (e.Item?.holder?.S !== holder) return undefined;
      } else {
        throw new DequeueError(
          awsErrorKind(e),
          `target lease: DynamoDB UpdateItem on ${this.table} for ${target} failed: ${describeAwsError(e)}`,
          { cause: e },
        );
      }
    }
    return { release: () => this.release(key, holder) };
  }

  private async release(key: { pk: { S: string } }, holder: string): Promise<void> {
    const release = new UpdateItemCommand({
      TableName: this.table,
      Key: key,
      UpdateExpression: 'SET leaseUntil = :released',
      ConditionExpression: 'holder = :holder',
      ExpressionAttributeValues: { ':released': { N: '0' }, ':holder': { S: holder } },
    });
    try {
      await this.client.send(release, { abortSignal: AbortSignal.timeout(RELEASE_TIMEOUT_MS) });
    } catch {
      // Another run took it after ours ran out, or DynamoDB did not answer: either way the lease
      // ends at its `until`, which is all a release would have done sooner.
    }
  }
}
