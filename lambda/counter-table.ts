/**
 * The shape of the counter table, defined once for the function's adapters, the CDK construct
 * (which creates the table: lib/release-signaller.ts) and whatever makes one by hand (tests,
 * benchmarks, scripts/invoke-local.ts):
 *
 * - partition key `pk` (String): the counter, its slot and claim items, and one status item per
 *   target (`status#<target>`);
 * - TTL on `expiresAt` (slot and claim items);
 * - the global secondary index `status` over the status items (STATUS_INDEX): only they carry its
 *   partition key, so it holds them and nothing else, sorted by target, and every target's status
 *   is one Query (lambda/adapters/dynamodb-status.ts) instead of a Scan of the whole table.
 */
export const COUNTER_TABLE_KEY = 'pk';
export const COUNTER_TABLE_TTL = 'expiresAt';

export const STATUS_INDEX = {
  indexName: 'status',
  /** Present on status items only, always with the value `kind` below. */
  partitionKey: 'kind',
  kind: 'status',
  sortKey: 'target',
} as const;

/** A CreateTable request for a counter table named `tableName` (on demand), as the stack makes it. */
export function counterTableDefinition(tableName: string) {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST' as const,
    AttributeDefinitions: [
      { AttributeName: COUNTER_TABLE_KEY, AttributeType: 'S' as const },
      { AttributeName: STATUS_INDEX.partitionKey, AttributeType: 'S' as const },
      { AttributeName: STATUS_INDEX.sortKey, AttributeType: 'S' as const },
    ],
    KeySchema: [{ AttributeName: COUNTER_TABLE_KEY, KeyType: 'HASH' as const }],
    GlobalSecondaryIndexes: [
      {
        IndexName: STATUS_INDEX.indexName,
        KeySchema: [
          { AttributeName: STATUS_INDEX.partitionKey, KeyType: 'HASH' as const },
          { AttributeName: STATUS_INDEX.sortKey, KeyType: 'RANGE' as const },
        ],
        Projection: { ProjectionType: 'ALL' as const },
      },
    ],
  };
}
