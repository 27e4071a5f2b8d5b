/**
 * The outcome of one stored message from its recipients' answers (README "deliver"): every
 * recipient accepted -> delivered; every recipient answered for good, some refused (5xx) ->
 * failed; any recipient still without a final answer (a 4xx, a cut, a timeout) -> deferred, with
 * the final answers so far recorded so that the next run sends only to those still waiting.
 */
import type { RecipientAnswer } from './mail-store';
import type { TransactionResult } from './transaction';

export type DeliveryOutcome = 'delivered' | 'deferred' | 'failed';

/** What a report shows for one recipient: its final answer, or the last reply (null: none). */
export interface ShownRecipient {
  readonly address: string;
  readonly code: number | null;
  readonly text: string | null;
}

export interface MessageOutcome {
  readonly outcome: DeliveryOutcome;
  /** The final answers (2xx, 5xx) of earlier runs and of this one, to record with the mark. */
  readonly finals: readonly RecipientAnswer[];
  /** Every recipient of the message, in its order, as the report shows it. */
  readonly recipients: readonly ShownRecipient[];
  /** Why the message is not delivered, for the report; null when it is. */
  readonly error: string | null;
}

/**
 * Decide a message's outcome from every recipient's final answer so far: `earlier` runs' and
 * this run's `result` (which covers the recipients that were still waiting).
 */
export function messageOutcome(
  recipients: readonly string[],
  earlier: ReadonlyMap<string, RecipientAnswer>,
  result: TransactionResult,
): MessageOutcome {
  const now = new Map(result.recipients.map((o) => [o.address, o] as const));
  const finals: RecipientAnswer[] = [];
  for (const address of recipients) {
    const before = earlier.get(address);
    if (before) finals.push(before);
    const o = now.get(address);
    if (o?.final && o.code !== null) finals.push({ address, code: o.code, text: o.text });
  }
  const shown = recipients.map((address) => {
    const o = now.get(address);
    return earlier.get(address) ?? { address, code: o?.code ?? null, text: o?.text ?? null };
  });
  const allFinal = finals.length === recipients.length;
  const outcome: DeliveryOutcome = !allFinal
    ? 'deferred'
    : finals.every((a) => a.code < 300)
      ? 'delivered'
      : 'failed';
  const error =
    outcome === 'deferred'
      ? (result.error?.message ?? 'some recipients are still waiting')
      : outcome === 'failed'
        ? `refused for good for ${finals
            .filter((a) => a.code >= 500)
            .map((a) => `<${a.address}> (${a.code})`)
            .join(', ')}; kept in failed/ with the replies`
        : null;
  return { outcome, finals, recipients: shown, error };
}
