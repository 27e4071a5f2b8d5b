/**
 * The cycle counter in one DynamoDB table (partition key `pk`, String; TTL attribute `expiresAt`).
 *
 * Items:
 *   counter                     { cycle: N }                 the last counted cycle
 *   slot#<slot>                 { cycle, nonce, expiresAt }  a scheduled slot, counted as `cycle`
 *   claim#<cycle>#<target>      { nonce, expiresAt }         `target` was started in `cycle`
 *
 * Counting a slot exactly once, however often its event arrives (EventBridge Scheduler retries
 * with a new execution id and the same scheduled time; Lambda's asynchronous invocation retries
 * too, and deliveries may overlap):
 *
 *   1. read `slot#<slot>` (strongly consistent): present -> {its cycle, counted: false}
 *   2. read `counter` (strongly consistent): N
 *   3. TransactWriteItems, all or nothing:
 *        Put    slot#<slot> {cycle: N+1}   if attribute_not_exists(pk)
 *        Update counter SET cycle = N+1    if cycle = N  (N = 0: or it does not exist yet)
 *   4. cancelled because the slot exists: another delivery counted it -> read it back, {cycle,
 *      counted: false}; cancelled because the counter moved (another slot won the race) or a
 *      TransactionConflict: back off with jitter and go to 1, a bounded number of times.
 *
 * Both conditions sit in one transaction, so a slot item exists exactly when the counter was
 * advanced for it: no crash between two writes can count a slot twice or lose one.
 * https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html
 * (IAM: TransactWriteItems is authorised by the item actions it contains, PutItem and UpdateItem:
 * https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html)
 *
 * An unscheduled run (a manual `{}`) has no slot of its own, so it gets one made up for this
 * call (`slot#run#<uuid>`): always counted, and counted through the same transaction, so that an
 * SDK retry of a count whose answer was lost is known as ours (below) instead of counting the
 * run twice, which a plain ADD did (the cycle skipped a number, and a target due in it was not
 * signalled).
 *
 * `claim` is a conditional PutItem: the first delivery to claim (cycle, target) signals it, any
 * other delivery of the same slot skips it, so a target is signalled once per counted cycle.
 *
 * Our own write, retried: the SDK sends a request again when its answer was lost (a reset
 * connection, a timeout), and a conditional write that succeeded the first time then fails its own
 * condition. So each conditional write carries a nonce of its own (one per call, the same bytes in
 * every SDK retry of it) and asks for the item it met (ReturnValuesOnConditionCheckFailure:
 * ALL_OLD, in PutItem and in a transaction's Put alike): an item with our nonce is our write,
 * and the claim or the slot count is ours, not another delivery's.
 * https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_PutItem.html#DDB-PutItem-request-ReturnValuesOnConditionCheckFailure
 */
import {
  ConditionalCheckFailedException,
  GetItemCommand,
  PutItemCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { randomUUID } from 'node:crypto';
import { DequeueError } from '../core/errors';
import type { CycleCounter } from '../core/ports';
import { awsErrorKind, describeAwsError } from './aws-errors';

export const COUNTER_KEY = 'counter';
/** Scheduler retries an event for at most 24 hours; 90 days leaves room for audits. */
export const DEFAULT_SLOT_TTL_DAYS = 90;
/** A claim need outlive only the retries of its slot (at most 24 hours). */
export const DEFAULT_CLAIM_TTL_DAYS = 7;
/** Concurrent slots each win one round at least: this bounds a burst of distinct slots. */
export const DEFAULT_MAX_ATTEMPTS = 25;

export interface DynamoDbCycleCounterOptions {
  readonly tableName: string;
  readonly slotTtlDays?: number;
  readonly claimTtlDays?: number;
  /** Rounds of the read-transact loop before giving up on a contended counter. */
  readonly maxAttempts?: number;
  readonly now?: () => number;
  /** Back-off between rounds; default: full jitter up to 20 ms x attempt. */
  readonly sleep?: (attempt: number) => Promise<void>;
}

const jitter = (attempt: number) =>
  new Promise<void>((r) => setTimeout(r, Math.random() * 20 * Math.min(attempt, 10)));

export class DynamoDbCycleCounter implements CycleCounter {
  private readonly table: string;
  private readonly slotTtlSeconds: number;
  private readonly claimTtlSeconds: number;
  private readonly maxAttempts: number;
  private readonly now: () => number;
  private readonly sleep: (attempt: number) => Promise<void>;

  constructor(
    private readonly client: DynamoDBClient,
    options: DynamoDbCycleCounterOptions,
  ) {
    this.table = options.tableName;
    this.slotTtlSeconds = (options.slotTtlDays ?? DEFAULT_SLOT_TTL_DAYS) * 86_400;
    this.claimTtlSeconds = (options.claimTtlDays ?? DEFAULT_CLAIM_TTL_DAYS) * 86_400;
    this.maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? jitter;
  }

  async peek(signal?: AbortSignal): Promise<number> {
    return (await this.readCycle(COUNTER_KEY, signal)) ?? 0;
  }

  async count(slot?: string, signal?: AbortSignal): Promise<{ cycle: number; counted: boolean }> {
    const slotKey = `slot#${slot ?? `run#${randomUUID()}`}`;
    // One nonce for all our rounds: a transaction that went through unanswered is still ours.
    const nonce = randomUUID();
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      const already = await this.readCycle(slotKey, signal);
      if (already !== undefined) return { cycle: already, counted: false };
      const current = await this.peek(signal);
      try {
        await this.call('TransactWriteItems', (c) =>
          c.send(this.countSlot(slotKey, current, nonce), { abortSignal: signal }),
        );
        return { cycle: current + 1, counted: true };
      } catch (e) {
        const reasons =
          e instanceof DequeueError && e.cause instanceof TransactionCanceledException
            ? (e.cause.CancellationReasons ?? [])
            : undefined;
        if (!reasons) throw e;
        const [slotReason, counterReason] = reasons.map((r) => r.Code);
        if (slotReason === 'ConditionalCheckFailed') {
          // Our own transaction, sent again by the SDK after its answer was lost: counted by us.
          const met = reasons[0]?.Item;
          if (met?.nonce?.S === nonce && met.cycle?.N !== undefined)
            return { cycle: Number(met.cycle.N), counted: true };
          // Another delivery of this slot counted it between our read and our write.
          const cycle = await this.readCycle(slotKey, signal);
          if (cycle !== undefined) return { cycle, counted: false };
        } else if (
          counterReason !== 'ConditionalCheckFailed' &&
          slotReason !== 'TransactionConflict' &&
          counterReason !== 'TransactionConflict'
        ) {
          throw e;
        }
        // The counter moved under us (another slot won) or the items were locked: again.
        await this.sleep(attempt);
      }
    }
    throw new DequeueError(
      'temporary',
      `cycle counter in ${this.table}: ${slot === undefined ? 'an unscheduled run' : `slot ${slot}`} could not be counted in ${this.maxAttempts} attempts (the counter kept moving)`,
    );
  }

  async claim(cycle: number, target: string, signal?: AbortSignal): Promise<boolean> {
    const nonce = randomUUID();
    const claim = new PutItemCommand({
      TableName: this.table,
      Item: {
        pk: { S: `claim#${cycle}#${target}` },
        nonce: { S: nonce },
        claimedAt: { S: new Date(this.now()).toISOString() },
        expiresAt: { N: String(this.epochSeconds() + this.claimTtlSeconds) },
      },
      ConditionExpression: 'attribute_not_exists(pk)',
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    });
    try {
      await this.call('PutItem', (c) => c.send(claim, { abortSignal: signal }));
      return true;
    } catch (e) {
      if (e instanceof DequeueError && e.cause instanceof ConditionalCheckFailedException)
        // Our nonce: the SDK sent our claim again after its answer was lost; the claim is ours.
        return e.cause.Item?.nonce?.S === nonce;
      throw e;
    }
  }

  /** Step 3 above: the slot appears and the counter moves from `current`, or neither happens. */
  private countSlot(slotKey: string, current: number, nonce: string): TransactWriteItemsCommand {
    const next = current + 1;
    return new TransactWriteItemsCommand({
      TransactItems: [
        {
          Put: {
            TableName: this.table,
            Item: {
              pk: { S: slotKey },
              cycle: { N: String(next) },
              nonce: { S: nonce },
              countedAt: { S: new Date(this.now()).toISOString() },
              expiresAt: { N: String(this.epochSeconds() + this.slotTtlSeconds) },
            },
            ConditionExpression: 'attribute_not_exists(pk)',
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          },
        },
        {
          Update: {
            TableName: this.table,
            Key: { pk: { S: COUNTER_KEY } },
            UpdateExpression: 'SET #cycle = :next',
            // Before the first cycle the counter item does not exist yet.
            ConditionExpression:
              current === 0
                ? 'attribute_not_exists(#cycle) OR #cycle = :current'
                : '#cycle = :current',
            ExpressionAttributeNames: { '#cycle': 'cycle' },
            ExpressionAttributeValues: {
              ':next': { N: String(next) },
              ':current': { N: String(current) },
            },
          },
        },
      ],
    });
  }

  private async readCycle(key: string, signal?: AbortSignal): Promise<number | undefined> {
    const read = new GetItemCommand({
      TableName: this.table,
      Key: { pk: { S: key } },
      ConsistentRead: true,
      ProjectionExpression: '#cycle',
      ExpressionAttributeNames: { '#cycle': 'cycle' },
    });
    const value = (await this.call('GetItem', (c) => c.send(read, { abortSignal: signal }))).Item
      ?.cycle?.N;
    return value === undefined ? undefined : Number(value);
  }

  private epochSeconds(): number {
    return Math.floor(this.now() / 1000);
  }

  /** Every DynamoDB failure leaves as a DequeueError naming the table, the SDK error as cause. */
  private async call<T>(
    operation: string,
    request: (client: DynamoDBClient) => Promise<T>,
  ): Promise<T> {
    try {
      return await request(this.client);
    } catch (e) {
      throw new DequeueError(
        awsErrorKind(e),
        `cycle counter: DynamoDB ${operation} on ${this.table} failed: ${describeAwsError(e)}`,
        { cause: e },
      );
    }
  }
}
