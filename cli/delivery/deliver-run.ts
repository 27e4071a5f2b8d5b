/**
 * One `dequeue deliver` run: every undelivered message of the store, oldest first, to one mail
 * server, at least once and never lost (docs/odmr.md "Delivering stored mail").
 *
 * A message leaves the undelivered set only once every recipient has a final answer: all
 * accepted -> delivered (moved to delivered/, or deleted from S3); some refused for good (5xx)
 * -> failed/, with the replies. A 4xx, a cut or a timeout leaves it where it is, with the final
 * answers so far recorded, so that the next run sends only to the recipients still waiting.
 *
 * The mark comes after the server's answer: a crash between the two means the message is
 * delivered again next run (a duplicate, which a reader can recognise by its Message-ID), never
 * that it is lost.
 */
import { asDequeueError, DequeueError } from '../../lambda/core/errors';
import type { Transcript } from '../../lambda/core/ports';
import { DeliveryConnection, type DeliveryOptions, type Destination, type RecipientOutcome } from './delivery-client';
import type { ClaimedMail, MailStore, RecipientAnswer } from './mail-store';

export type DeliveryOutcome = 'delivered' | 'deferred' | 'failed';

/** One line of `--json` (SPEC "Operating commands"). `pending` only in a dry run. */
export interface MessageReport {
  readonly message: string;
  readonly target: string;
  readonly outcome: DeliveryOutcome | 'pending';
  readonly recipients: readonly { readonly address: string; readonly code: number | null; readonly text: string | null }[];
  readonly error: string | null;
}

export interface DeliverRequest {
  readonly targets?: readonly string[];
  readonly dryRun?: boolean;
}

export interface DeliverDeps extends DeliveryOptions {
  readonly store: MailStore;
  readonly destination: Destination;
  readonly transcript: Transcript;
  readonly onReport?: (report: MessageReport) => void;
}

export async function deliverStored(request: DeliverRequest, deps: DeliverDeps): Promise<MessageReport[]> {
  const { store, destination } = deps;
  await store.check();
  const refs = await store.list(request.targets);
  const reports: MessageReport[] = [];
  const report = (r: MessageReport) => {
    reports.push(r);
    deps.onReport?.(r);
  };
  let connection = null as DeliveryConnection | null;
  /** Set when the server cannot be reached: the rest of the run is deferred without trying. */
  let down: DequeueError | null = null;

  try {
    for (const ref of refs) {
      let claim: ClaimedMail | null;
      try {
        claim = await store.claim(ref);
      } catch (e) {
        report({ message: ref.id, target: ref.target, outcome: 'deferred', recipients: [], error: asDequeueError(e).message });
        continue;
      }
      if (!claim) {
        deps.transcript.line('deliver', '*', `message ${ref.id} (${ref.target}) is being delivered by another run; left to it`);
        continue;
      }
      try {
        await deliverOne(claim);
      } catch (e) {
        // Unexpected: nothing is marked, the claim is given up, the message stays.
        await claim.release();
        report({ message: ref.id, target: ref.target, outcome: 'deferred', recipients: [], error: asDequeueError(e).message });
      }
    }
  } finally {
    await connection?.close();
    await store.close();
  }
  return reports;

  async function deliverOne(claim: ClaimedMail): Promise<void> {
    const { envelope, ref } = claim;
    const recipients = [...new Set(envelope.rcptTo)];
    const earlier = new Map(claim.answered.map((a) => [a.address, a] as const));
    const waiting = recipients.filter((a) => !earlier.has(a));

    if (request.dryRun) {
      await claim.release();
      report({
        message: ref.id, target: ref.target, outcome: 'pending',
        recipients: recipients.map((address) => earlier.get(address) ?? { address, code: null, text: null }),
        error: null,
      });
      return;
    }

    let fresh: readonly RecipientOutcome[] = [];
    let error: DequeueError | null = null;
    if (waiting.length) {
      if (!down && !connection?.usable) {
        await connection?.close();
        connection = null;
        try {
          connection = await DeliveryConnection.open(destination, deps);
        } catch (e) {
          down = asDequeueError(e);
        }
      }
      if (down || !connection) {
        error = down ?? new DequeueError('temporary', `no connection to ${destination.display}`);
        fresh = waiting.map((address) => ({ address, code: null, text: error!.message, final: false }));
      } else {
        const result = await connection.send({
          id: ref.id, mailFrom: envelope.mailFrom, recipients: waiting, body: envelope.body,
          size: typeof envelope.bytes === 'number' ? envelope.bytes : undefined, text: () => claim.open(),
        });
        fresh = result.recipients;
        error = result.error;
      }
    }

    const now = new Map(fresh.map((o) => [o.address, o] as const));
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
    const outcome: DeliveryOutcome = !allFinal ? 'deferred' : finals.every((a) => a.code < 300) ? 'delivered' : 'failed';
    let markError: DequeueError | null = null;
    try {
      if (outcome === 'delivered') await claim.delivered(finals);
      else if (outcome === 'failed') await claim.failed(finals);
      else await claim.deferred(finals);
    } catch (e) {
      markError = asDequeueError(e);
    }
    const why = outcome === 'failed'
      ? `refused for good for ${finals.filter((a) => a.code >= 500).map((a) => `<${a.address}> (${a.code})`).join(', ')}; kept in failed/ with the replies`
      : null;
    if (markError) {
      // Still in the undelivered set: the next run delivers it again to whoever is recorded as waiting.
      report({ message: ref.id, target: ref.target, outcome: 'deferred', recipients: shown, error: `${outcome}, but ${markError.message}` });
    } else {
      report({ message: ref.id, target: ref.target, outcome, recipients: shown, error: outcome === 'deferred' ? (error?.message ?? 'some recipients are still waiting') : why });
    }
  }
}
