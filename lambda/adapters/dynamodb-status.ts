/**
 * Each target's status (lambda/core/target-status.ts) in the cycle counter's table, one item per
 * target beside the counter:
 *
 *   status#<target>   { kind: "status", target, lastOutcome, lastAttemptAt, lastCycle,
 *                       lastSuccessAt, lastSuccessCycle, consecutiveFailures, failingSince,
 *                       lastError, messagesTotal, lastReason, serverDownSince,
 *                       serverDownChecks, lastPrecheck: {at, passed, text} }
 *                                                        (absent attribute = null; no TTL)
 *
 * `kind` and `target` are the keys of the table's global secondary index `status` (STATUS_INDEX):
 * only status items carry `kind`, so the index holds them and nothing else (the counter, the
 * slot and claim items, which are many more, stay out of it), sorted by target. Listing every
 * target's status is one Query of that index, page by page, never a Scan of the table.
 *
 * One UpdateItem per target per cycle, whose expression applies the rules of target-status.ts
 * inside DynamoDB: `consecutiveFailures = if_not_exists(consecutiveFailures, 0) + 1`,
 * `failingSince = if_not_exists(failingSince, now)`, `messagesTotal = ... + messages`, so that
 * overlapping invocations never lose an increment, and nothing is read first. ReturnValues
 * ALL_NEW hands back the whole item at no extra cost: the handler counts failing and stale
 * targets from those, without reading the table again. The condition `lastCycle <= cycle` keeps
 * a late invocation of an older cycle from overwriting a newer result.
 *
 * IAM: UpdateItem and GetItem on the table, which the counter is granted already; `list()` (for
 * `dequeue status --table` with the operator's own credentials, and for the coordinator's count
 * of failing and stale targets it handed to workers) is dynamodb:Query on `<table>/index/status`.
 * The index is eventually consistent: a status written a moment ago may not be listed yet.
 * https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.UpdateExpressions.html
 */
import {
  ConditionalCheckFailedException,
  GetItemCommand,
  QueryCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { DequeueError } from '../core/errors';
import type { StatusRecorder } from '../core/ports';
import { isFailure, type Outcome, type TargetResult } from '../core/result';
import {
  boundedText,
  errorOf,
  isSuccess,
  neverRun,
  type LastPrecheck,
  type RecordedStatus,
} from '../core/target-status';
import { STATUS_INDEX } from '../counter-table';
import { awsErrorKind, describeAwsError } from './aws-errors';

export const STATUS_KEY_PREFIX = 'status#';

type Item = Record<string, AttributeValue>;

export interface DynamoDbStatusOptions {
  readonly tableName: string;
}

export class DynamoDbStatusStore implements StatusRecorder {
  private readonly table: string;

  constructor(
    private readonly client: DynamoDBClient,
    options: DynamoDbStatusOptions,
  ) {
    this.table = options.tableName;
  }

  async record(result: TargetResult, at: number, signal?: AbortSignal): Promise<RecordedStatus> {
    const when = new Date(at).toISOString();
    const names: Record<string, string> = {
      '#kind': STATUS_INDEX.partitionKey,
      '#target': 'target',
      '#outcome': 'lastOutcome',
      '#at': 'lastAttemptAt',
      '#cycle': 'lastCycle',
      '#failures': 'consecutiveFailures',
      '#messages': 'messagesTotal',
      '#reason': 'lastReason',
    };
    const values: Item = {
      ':kind': { S: STATUS_INDEX.kind },
      ':target': { S: result.target },
      ':outcome': { S: result.outcome },
      ':at': { S: when },
      ':cycle': { N: String(result.cycle) },
      ':zero': { N: '0' },
      ':messages': { N: String(result.messages) },
    };
    const set = [
      '#kind = :kind',
      '#target = :target',
      '#outcome = :outcome',
      '#at = :at',
      '#cycle = :cycle',
      '#messages = if_not_exists(#messages, :zero) + :messages',
    ];
    const remove: string[] = [];
    if (isSuccess(result.outcome)) {
      Object.assign(names, {
        '#successAt': 'lastSuccessAt',
        '#successCycle': 'lastSuccessCycle',
        '#since': 'failingSince',
        '#error': 'lastError',
      });
      set.push('#successAt = :at', '#successCycle = :cycle', '#failures = :zero');
      remove.push('#since', '#error', '#reason');
    } else if (isFailure(result.outcome)) {
      Object.assign(names, { '#since': 'failingSince', '#error': 'lastError' });
      Object.assign(values, { ':one': { N: '1' }, ':error': { S: errorOf(result) } });
      set.push(
        '#failures = if_not_exists(#failures, :zero) + :one',
        '#since = if_not_exists(#since, :at)',
        '#error = :error',
      );
      remove.push('#reason');
    } else {
      set.push('#failures = if_not_exists(#failures, :zero)');
      if (result.reason) {
        values[':reason'] = { S: boundedText(result.reason) };
        set.push('#reason = :reason');
      } else {
        remove.push('#reason');
      }
    }
    precheckUpdate(result, when, { names, values, set, remove });
    const update = new UpdateItemCommand({
      TableName: this.table,
      Key: { pk: { S: STATUS_KEY_PREFIX + result.target } },
      UpdateExpression: `SET ${set.join(', ')}${remove.length ? ` REMOVE ${remove.join(', ')}` : ''}`,
      ConditionExpression: 'attribute_not_exists(#cycle) OR #cycle <= :cycle',
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
      ReturnValues: 'ALL_NEW',
    });
    try {
      const out = await this.call('UpdateItem', result.target, (c) =>
        c.send(update, { abortSignal: signal }),
      );
      return statusOfItem(out.Attributes ?? {}, result.target);
    } catch (e) {
      if (!(e instanceof DequeueError && e.cause instanceof ConditionalCheckFailedException))
        throw e;
      // A newer cycle was recorded meanwhile: that one stands.
      return (await this.read(result.target, signal)) ?? neverRun(result.target);
    }
  }

  /** One target's status; undefined when no run has recorded it. */
  async read(target: string, signal?: AbortSignal): Promise<RecordedStatus | undefined> {
    const get = new GetItemCommand({
      TableName: this.table,
      Key: { pk: { S: STATUS_KEY_PREFIX + target } },
      ConsistentRead: true,
    });
    const item = (await this.call('GetItem', target, (c) => c.send(get, { abortSignal: signal })))
      .Item;
    return item ? statusOfItem(item, target) : undefined;
  }

  /**
   * Every status item, by name: one Query of the status index, page after page (1 MB each, a few
   * hundred bytes an item: thousands of targets per page). Eventually consistent.
   */
  async list(signal?: AbortSignal): Promise<RecordedStatus[]> {
    const out: RecordedStatus[] = [];
    let start: Item | undefined;
    do {
      const page = await this.call('Query', `index ${STATUS_INDEX.indexName}`, (c) =>
        c.send(
          new QueryCommand({
            TableName: this.table,
            IndexName: STATUS_INDEX.indexName,
            KeyConditionExpression: '#kind = :kind',
            ExpressionAttributeNames: { '#kind': STATUS_INDEX.partitionKey },
            ExpressionAttributeValues: { ':kind': { S: STATUS_INDEX.kind } },
            ExclusiveStartKey: start,
          }),
          { abortSignal: signal },
        ),
      );
      for (const item of page.Items ?? [])
        out.push(statusOfItem(item, item.pk!.S!.slice(STATUS_KEY_PREFIX.length)));
      start = page.LastEvaluatedKey;
    } while (start);
    return out.sort((a, b) => (a.target < b.target ? -1 : 1));
  }

  private async call<T>(
    operation: string,
    what: string,
    request: (client: DynamoDBClient) => Promise<T>,
  ): Promise<T> {
    try {
      return await request(this.client);
    } catch (e) {
      throw new DequeueError(
        awsErrorKind(e),
        `target status (${what}): DynamoDB ${operation} on ${this.table} failed: ${describeAwsError(e)}`,
        { cause: e },
      );
    }
  }
}

/**
 * The precheck part of the update (target-status.ts rules): a failed check keeps the first
 * failure's time (`if_not_exists`) and adds one to `serverDownChecks` in the same expression, so
 * overlapping invocations cannot lose a count; a passed one, or a worked result without a check,
 * removes `serverDownSince` and zeroes the count; a skipped result without a check leaves them.
 */
function precheckUpdate(
  result: TargetResult,
  when: string,
  update: { names: Record<string, string>; values: Item; set: string[]; remove: string[] },
): void {
  const { names, values, set, remove } = update;
  const check = result.precheck;
  if (!check && result.outcome === 'skipped') return;
  Object.assign(names, { '#downSince': 'serverDownSince', '#downChecks': 'serverDownChecks' });
  if (check) {
    names['#precheck'] = 'lastPrecheck';
    values[':precheck'] = {
      M: {
        at: { S: when },
        passed: { BOOL: check.passed },
        text: { S: boundedText(check.text) },
      },
    };
    set.push('#precheck = :precheck');
  }
  values[':zero'] = { N: '0' };
  if (check && !check.passed) {
    values[':one'] = { N: '1' };
    set.push(
      '#downSince = if_not_exists(#downSince, :at)',
      '#downChecks = if_not_exists(#downChecks, :zero) + :one',
    );
  } else {
    set.push('#downChecks = :zero');
    remove.push('#downSince');
  }
}

export function statusOfItem(item: Item, target: string): RecordedStatus {
  const text = (name: string): string | null => item[name]?.S ?? null;
  const number = (name: string): number | null =>
    item[name]?.N === undefined ? null : Number(item[name]!.N);
  return {
    target,
    lastOutcome: text('lastOutcome') as Outcome | null,
    lastAttemptAt: text('lastAttemptAt'),
    lastCycle: number('lastCycle'),
    lastSuccessAt: text('lastSuccessAt'),
    lastSuccessCycle: number('lastSuccessCycle'),
    consecutiveFailures: number('consecutiveFailures') ?? 0,
    failingSince: text('failingSince'),
    lastError: text('lastError'),
    messagesTotal: number('messagesTotal') ?? 0,
    serverDownSince: text('serverDownSince'),
    lastPrecheck: precheckOf(item.lastPrecheck),
    lastReason: text('lastReason'),
    serverDownChecks: number('serverDownChecks') ?? 0,
  };
}

/** `lastPrecheck` is a map {at, passed, text}; anything else reads as none. */
function precheckOf(value: AttributeValue | undefined): LastPrecheck | null {
  const m = value?.M;
  if (!m || m.at?.S === undefined || m.passed?.BOOL === undefined || m.text?.S === undefined)
    return null;
  return { at: m.at.S, passed: m.passed.BOOL, text: m.text.S };
}
