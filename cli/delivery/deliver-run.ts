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
import { DeliveryConnection, type DeliveryOptions } from './delivery-client';
import type { Destination } from './destination';
import type { ClaimedMail, MailStore, RecipientAnswer, StoredRef } from './mail-store';
import type { TransactionResult } from './transaction';

/** Marks (renames, deletes) completing in the background while the next messages go out. */
const MAX_MARKS_IN_FLIGHT = 16;

export type DeliveryOutcome = 'delivered' | 'deferred' | 'failed';

/** One line of `--json` (SPEC "Operating commands"). `pending` only in a dry run. */
export interface MessageReport {
  readonly message: string;
  readonly target: string;
  readonly outcome: DeliveryOutcome | 'pending';
  readonly recipients: readonly {
    readonly address: string;
    readonly code: number | null;
    readonly text: string | null;
  }[];
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
  /** What the operator should see without --verbose: another run holding a target's mail. */
  readonly onNotice?: (text: string) => void;
  /** A message left alone because another run holds it. */
  readonly onSkipped?: (ref: StoredRef) => void;
}

export async function deliverStored(
  request: DeliverRequest,
  deps: DeliverDeps,
): Promise<MessageReport[]> {
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
  /** Targets whose mail another run holds, said once each. */
  const held = new Set<string>();

  /**
   * The store's work overlaps the network's (bench/deliver.ts): the next message is claimed while
   * this one is sent, and marks complete in the background, at most MAX_MARKS_IN_FLIGHT at once.
   * Reports still come out in order, each once its mark is done.
   */
  let reported: Promise<void> = Promise.resolve();
  const marks: Promise<void>[] = [];
  const later = (marking: Promise<MessageReport>): Promise<void> => {
    reported = reported.then(() => marking).then(report);
    const settled = reported.catch(() => undefined);
    marks.push(settled);
    return settled;
  };
  type Claimed = { claim: ClaimedMail | null } | { error: DequeueError };
  let ahead: Promise<Claimed> | null = null;
  const claimOf = (ref: StoredRef): Promise<Claimed> =>
    store.claim(ref).then(
      (claim) => ({ claim }),
      (e: unknown) => ({ error: asDequeueError(e) }),
    );

  try {
    ahead = refs.length ? claimOf(refs[0]!) : null;
    for (const [i, ref] of refs.entries()) {
      const claimed: Claimed = await ahead!;
      ahead = i + 1 < refs.length ? claimOf(refs[i + 1]!) : null;
      if ('error' in claimed) {
        await later(
          Promise.resolve({
            message: ref.id,
            target: ref.target,
            outcome: 'deferred',
            recipients: [],
            error: claimed.error.message,
          }),
        );
        continue;
      }
      const claim = claimed.claim;
      if (!claim) {
        deps.onSkipped?.(ref);
        const holder = await store.heldBy?.(ref.target);
        if (!holder)
          deps.transcript.line(
            'deliver',
            '*',
            `message ${ref.id} (${ref.target}) is being delivered by another run; left to it`,
          );
        else if (!held.has(ref.target)) {
          held.add(ref.target);
          (deps.onNotice ?? ((text: string) => deps.transcript.line('deliver', '*', text)))(
            `the mail of ${ref.target} is being delivered by ${holder}; left to it`,
          );
        }
        continue;
      }
      try {
        const { marking } = await deliverOne(claim);
        void later(marking);
        while (marks.length > MAX_MARKS_IN_FLIGHT) await marks.shift();
      } catch (e) {
        // Unexpected: nothing is marked, the claim is given up, the message stays.
        await claim.release();
        await later(
          Promise.resolve({
            message: ref.id,
            target: ref.target,
            outcome: 'deferred',
            recipients: [],
            error: asDequeueError(e).message,
          }),
        );
      }
    }
  } finally {
    // A claim taken ahead and not used (an unexpected error above) is given back.
    const unused = await ahead?.catch(() => null);
    if (unused && 'claim' in unused) await unused.claim?.release();
    await Promise.all(marks);
    await reported.catch(() => undefined);
    await connection?.close();
    await store.close();
  }
  return reports;

  /** Send one message; resolves, once the server has answered, to its mark in progress. */
  async function deliverOne(claim: ClaimedMail): Promise<{ marking: Promise<MessageReport> }> {
    const { envelope, ref } = claim;
    const recipients = [...new Set(envelope.rcptTo)];
    const earlier = new Map(claim.answered.map((a) => [a.address, a] as const));
    const waiting = recipients.filter((a) => !earlier.has(a));

    if (request.dryRun) {
      await claim.release();
      return {
        marking: Promise.resolve({
          message: ref.id,
          target: ref.target,
          outcome: 'pending',
          recipients: recipients.map(
            (address) => earlier.get(address) ?? { address, code: null, text: null },
          ),
          error: null,
        }),
      };
    }

    let result: TransactionResult = { recipients: [], error: null };
    for (let tries = 0; waiting.length; tries++) {
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
        const error =
          down ?? new DequeueError('temporary', `no connection to ${destination.display}`);
        result = {
          recipients: waiting.map((address) => ({
            address,
            code: null,
            text: error.message,
            final: false,
          })),
          error,
        };
        break;
      }
      // The next message waits for this one's answer. Pipelining its MAIL, RCPT and DATA after
      // this one's final dot (RFC 2920 3.1 allows it) was slower against Postfix's smtp-sink
      // (bench/deliver.ts), and a reply sent twice or not at all could then be paired with the
      // other message's commands.
      result = await connection.send({
        id: ref.id,
        mailFrom: envelope.mailFrom,
        recipients: waiting,
        body: envelope.body,
        ...(envelope.smtputf8 ? { smtputf8: envelope.smtputf8 } : {}),
        size: typeof envelope.bytes === 'number' ? envelope.bytes : undefined,
        text: () => claim.open(),
      });
      // Not taken up at all (the connection broke first): once more, on a new connection.
      if (!(result.unsent && tries === 0)) break;
    }
    const marking = mark(claim, recipients, earlier, result);
    return { marking };
  }

  /** Decide the message's outcome from every recipient's final answer so far, and mark it. */
  function mark(
    claim: ClaimedMail,
    recipients: readonly string[],
    earlier: ReadonlyMap<string, RecipientAnswer>,
    result: TransactionResult,
  ): Promise<MessageReport> {
    const { ref } = claim;
    const fresh = result.recipients;
    const error = result.error;
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
    const outcome: DeliveryOutcome = !allFinal
      ? 'deferred'
      : finals.every((a) => a.code < 300)
        ? 'delivered'
        : 'failed';
    const why =
      outcome === 'failed'
        ? `refused for good for ${finals
            .filter((a) => a.code >= 500)
            .map((a) => `<${a.address}> (${a.code})`)
            .join(', ')}; kept in failed/ with the replies`
        : null;
    const marked =
      outcome === 'delivered'
        ? claim.delivered(finals)
        : outcome === 'failed'
          ? claim.failed(finals)
          : claim.deferred(finals);
    return marked.then(
      (): MessageReport => ({
        message: ref.id,
        target: ref.target,
        outcome,
        recipients: shown,
        error:
          outcome === 'deferred' ? (error?.message ?? 'some recipients are still waiting') : why,
      }),
      // Still in the undelivered set: the next run delivers it again to whoever is recorded as waiting.
      (e: unknown): MessageReport => ({
        message: ref.id,
        target: ref.target,
        outcome: 'deferred',
        recipients: shown,
        error: `${outcome}, but ${asDequeueError(e).message}`,
      }),
    );
  }
}
