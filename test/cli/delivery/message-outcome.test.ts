/**
 * The outcome of a stored message from its recipients' answers (cli/delivery/message-outcome.ts),
 * with plain values: what `deliver --json` reports and where the message goes.
 */
import { describe, expect, it } from 'vitest';
import { DequeueError } from '../../../lambda/core/errors';
import type { RecipientAnswer } from '../../../cli/delivery/mail-store';
import { messageOutcome } from '../../../cli/delivery/message-outcome';
import type { RecipientOutcome, TransactionResult } from '../../../cli/delivery/transaction';

const answered = (address: string, code: number | null, text = 'reply'): RecipientOutcome => ({
  address,
  code,
  text,
  final: code !== null && (code < 400 || code >= 500),
});
const result = (
  recipients: RecipientOutcome[],
  error: DequeueError | null = null,
): TransactionResult => ({ recipients, error });
const none = new Map<string, RecipientAnswer>();

describe("a message's outcome from its answers", () => {
  it('every recipient accepted: delivered, with no error and every answer recorded', () => {
    const o = messageOutcome(
      ['a@x.example', 'b@x.example'],
      none,
      result([answered('a@x.example', 250, 'ok'), answered('b@x.example', 250, 'ok')]),
    );
    expect(o.outcome).toBe('delivered');
    expect(o.error).toBeNull();
    expect(o.finals).toEqual([
      { address: 'a@x.example', code: 250, text: 'ok' },
      { address: 'b@x.example', code: 250, text: 'ok' },
    ]);
  });

  it('all answered, one refused for good: failed, and the error names who and with what', () => {
    const o = messageOutcome(
      ['a@x.example', 'b@x.example'],
      none,
      result([answered('a@x.example', 250), answered('b@x.example', 550, 'no such user')]),
    );
    expect(o.outcome).toBe('failed');
    expect(o.error).toBe(
      'refused for good for <b@x.example> (550); kept in failed/ with the replies',
    );
  });

  it('one still waiting (451): deferred, only the final answers recorded, the reply still shown', () => {
    const o = messageOutcome(
      ['a@x.example', 'b@x.example'],
      none,
      result(
        [answered('a@x.example', 250, 'ok'), answered('b@x.example', 451, 'later')],
        new DequeueError('temporary', 'some recipients were deferred'),
      ),
    );
    expect(o.outcome).toBe('deferred');
    expect(o.error).toBe('some recipients were deferred');
    expect(o.finals).toEqual([{ address: 'a@x.example', code: 250, text: 'ok' }]);
    expect(o.recipients).toEqual([
      { address: 'a@x.example', code: 250, text: 'ok' },
      { address: 'b@x.example', code: 451, text: 'later' },
    ]);
  });

  it("an earlier run's final answers count: the one left waiting accepted now makes it delivered", () => {
    const earlier = new Map([
      ['a@x.example', { address: 'a@x.example', code: 250, text: 'ok then' }],
    ]);
    const o = messageOutcome(
      ['a@x.example', 'b@x.example'],
      earlier,
      result([answered('b@x.example', 250, 'ok now')]),
    );
    expect(o.outcome).toBe('delivered');
    expect(o.recipients).toEqual([
      { address: 'a@x.example', code: 250, text: 'ok then' },
      { address: 'b@x.example', code: 250, text: 'ok now' },
    ]);
    expect(o.finals).toHaveLength(2);
  });

  it('no answer at all (the server was down): deferred, the error says why, no code shown', () => {
    const down = new DequeueError('temporary', 'connection to smtp://mx:25: ECONNREFUSED');
    const o = messageOutcome(
      ['a@x.example'],
      none,
      result([answered('a@x.example', null, down.message)], down),
    );
    expect(o.outcome).toBe('deferred');
    expect(o.error).toBe(down.message);
    expect(o.finals).toEqual([]);
    expect(o.recipients).toEqual([{ address: 'a@x.example', code: null, text: down.message }]);
  });
});
