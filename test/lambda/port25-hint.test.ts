/**
 * A relay connection to port 25 that times out from Lambda outside a VPC: AWS drops outbound 25
 * there without a word, so the result's error must say so (the stack tells the function whether it
 * is in a VPC: DEQUEUE_IN_VPC).
 */
import { describe, expect, it } from 'vitest';
import { port25Hint } from '../../lambda/deployed-adapters';
import { readEnvironment } from '../../lambda/environment';

describe('port 25 from Lambda', () => {
  it("the stack's DEQUEUE_IN_VPC is read; absent, it is unknown", () => {
    const base = { DEQUEUE_COUNTER_TABLE: 't' };
    expect(readEnvironment({ ...base, DEQUEUE_IN_VPC: 'true' }).inVpc).toBe(true);
    expect(readEnvironment({ ...base, DEQUEUE_IN_VPC: 'false' }).inVpc).toBe(false);
    expect(readEnvironment(base).inVpc).toBeUndefined();
  });

  it('outside a VPC the error says that AWS blocks port 25 and what to do; in a VPC it says nothing more', () => {
    expect(port25Hint(false)).toMatch(
      /^this function is not in a VPC: AWS blocks outbound TCP port 25 .*static egress.*587/,
    );
    expect(port25Hint(undefined)).toMatch(
      /^if this function is not in a VPC: AWS blocks outbound TCP port 25/,
    );
    expect(port25Hint(true)).toBeUndefined();
  });
});
