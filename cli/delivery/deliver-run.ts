/**
 * One `dequeue deliver` run: every undelivered message of the store, oldest first, to one mail
 * server, at least once and never lost (docs/odmr.md "Delivering stored mail").
 *
 * A message leaves the undelivered set only once every recipient has a final answer: all
 * accepted -> delivered (moved to delivered/, or deleted from S3); some refused for good (5xx),
 * or given up at the give-up time, -> failed/, with the replies, once the delivery status
 * notification its sender is owed has been sent (docs/bounces.md, bounce-send.ts). A 4xx, a cut or a timeout leaves it where it is, with the final
 * answers so far recorded, so that the next run sends only to the recipients still waiting.
 *
 * The mark comes after the server's answer: a crash between the two means the message is
 * delivered again next run (a duplicate, which a reader can recognise by its Message-ID), never
 * that it is lost.
 *
 * A run told to stop (SIGINT, SIGTERM: `request.stop`) starts no further message: the messages
 * already on the wire get their answers (each wait bounded as always) and their marks, so none is
 * sent twice for the stop, the claims taken ahead are given back, every connection ends with
 * QUIT, and the store is closed (its locks removed). The messages not started stay for the next
 * run.
 */
import { asDequeueError, type DequeueError } from '../../lambda/core/errors';
import type { Transcript } from '../../lambda/core/ports';
import type { TlsState } from '../../lambda/core/smtp/tls-policy';
import type { DeliveryOptions } from './delivery-options';
import type { Destination } from './destination';
import { type ConnectionLease, ConnectionPool, DEFAULT_CONNECTIONS } from './run-connection';
import { MAX_MARKS_IN_FLIGHT, ReportsInOrder } from './reports-in-order';
import type { ClaimedMail, MailStore, RecipientAnswer, StoredRef } from './mail-store';
import { type DomainsOf, recipientGate } from './recipient-gate';
import { type DeliveryOutcome, type MessageOutcome, messageOutcome } from './message-outcome';
import type { TransactionResult } from './transaction';
import { dsnDue, type Settled, settle } from './bounce-due';
import {
  BounceServer,
  type BounceSettings,
  type DsnReport,
  deferredDsn,
  suppressedReport,
} from './bounce-send';
import { pastGiveUp } from './give-up';
import { deferredReport, type MessageReport, unsendable } from './message-report';

export type { DeliveryOutcome } from './message-outcome';

export interface DeliverRequest {
  readonly targets?: readonly string[];
  readonly dryRun?: boolean;
  /** Fires when the run is told to stop (cli/stop-signals.ts): no further message is started. */
  readonly stop?: AbortSignal;
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
  /** Connections to the server at once (`--connections`), 1 to MAX_CONNECTIONS; default DEFAULT_CONNECTIONS. */
  readonly connections?: number;
  /** The run was stopped with `notStarted` of its messages not started (they stay in the store). */
  readonly onStopped?: (notStarted: number) => void;
  /** The targets' domains from `--config` (recipient-gate.ts); else each envelope's own. */
  readonly domainsOf?: DomainsOf;
  /**
   * Where the DSNs go and when recipients are given up (bounce-send.ts); absent: no DSN is sent
   * and nothing is given up (the CLI always gives it).
   */
  readonly bounce?: BounceSettings;
}

/**
 * The run, in its phases: list the store, claim each message (the next ones while these are
 * sent), send it on whichever of the run's connections is free (oldest first), mark it from its
 * recipients' answers in the background, report in order.
 */
export async function deliverStored(
  request: DeliverRequest,
  deps: DeliverDeps,
): Promise<MessageReport[]> {
  const { store } = deps;
  const connections = deps.connections ?? DEFAULT_CONNECTIONS;
  // Checked before anything is read: a bad number is the caller's mistake, not a store's.
  const pool = new ConnectionPool(deps.destination, deps, connections);
  await store.check();
  const refs = await store.list(request.targets);
  const reports = new ReportsInOrder<MessageReport>(
    deps.onReport,
    Math.max(MAX_MARKS_IN_FLIGHT, 2 * connections),
  );
  const bounce = deps.bounce && !request.dryRun ? new BounceServer(deps.bounce) : undefined;
  /** Targets whose mail another run holds, said once each. */
  const said = new Set<string>();
  let started = 0;
  try {
    for await (const { ref, claimed } of claimsAhead(store, refs, connections)) {
      if (request.stop?.aborted) {
        // Given back, as the claims taken ahead are (claimsAhead).
        if ('claim' in claimed) await claimed.claim?.release();
        break;
      }
      started++;
      if ('error' in claimed) {
        await reports.add(Promise.resolve(deferredReport(ref, claimed.error)));
        continue;
      }
      const claim = claimed.claim;
      if (!claim) {
        await leftToOtherRun(ref, deps, said);
        continue;
      }
      // A connection first: the next message starts only when one is free, in the store's order
      // (a dry run connects to nothing).
      const lease = request.dryRun ? NO_CONNECTION : await pool.acquire();
      if (request.stop?.aborted) {
        // Stopped while every connection was busy: this one goes back untouched.
        lease.release();
        await claim.release();
        started--;
        break;
      }
      const marking = deliverOne(claim, lease, request.dryRun === true, bounce, deps.domainsOf)
        .finally(() => lease.release())
        .then(
          ({ marking }) => marking,
          async (e: unknown) => {
            // Unexpected: nothing is marked, the claim is given up, the message stays.
            await claim.release();
            return deferredReport(ref, asDequeueError(e));
          },
        );
      await reports.inBackground(marking);
      // The next message goes on the wire only once the server has answered this one's envelope:
      // whatever connection each is on, the server sees them oldest first (so per recipient
      // domain too), while texts, final dots and marks overlap.
      await lease.started;
    }
  } finally {
    await reports.settled();
    await pool.close();
    await bounce?.close();
    await store.close();
  }
  if (request.stop?.aborted) deps.onStopped?.(refs.length - started);
  return reports.all;
}

/** A dry run's: it sends nothing. */
const NO_CONNECTION: ConnectionLease = {
  send: () => Promise.reject(new Error('a dry run sends nothing')),
  started: Promise.resolve(),
  release: () => undefined,
};

type Claimed = { readonly claim: ClaimedMail | null } | { readonly error: DequeueError };

/**
 * Each message with its claim. The store's work overlaps the network's (bench/deliver.ts): the
 * next `depth` messages are claimed while this one is sent. A claim taken ahead and not used (the
 * run stopped on an unexpected error) is given back.
 */
async function* claimsAhead(
  store: MailStore,
  refs: readonly StoredRef[],
  depth: number,
): AsyncGenerator<{ readonly ref: StoredRef; readonly claimed: Claimed }> {
  const claimOf = (ref: StoredRef): Promise<Claimed> =>
    store.claim(ref).then(
      (claim) => ({ claim }),
      (e: unknown) => ({ error: asDequeueError(e) }),
    );
  const ahead: Promise<Claimed>[] = [];
  let next = 0;
  const fill = () => {
    while (ahead.length < depth && next < refs.length) ahead.push(claimOf(refs[next++]!));
  };
  try {
    for (const ref of refs) {
      fill();
      const claimed: Claimed = await ahead.shift()!;
      fill();
      yield { ref, claimed };
    }
  } finally {
    for (const unused of await Promise.all(ahead.map((p) => p.catch(() => null))))
      if (unused && 'claim' in unused) await unused.claim?.release();
  }
}

/** Send one message; resolves, once the server has answered, to its mark in progress. */
async function deliverOne(
  claim: ClaimedMail,
  server: ConnectionLease,
  dryRun: boolean,
  bounce: BounceServer | undefined,
  domainsOf: DomainsOf | undefined,
): Promise<{ marking: Promise<MessageReport> }> {
  const { envelope, ref } = claim;
  // Issue 17 item 3: an envelope that failed its check on read never reaches the wire.
  if (claim.problem) return { marking: unsendable(claim, claim.problem, dryRun) };
  // Issue 17 item 2: a recipient outside the target's domains is answered here, never sent.
  const gate = recipientGate(envelope, ref.target, domainsOf);
  if ('unknown' in gate) {
    await claim.release();
    return { marking: Promise.resolve(deferredReport(ref, gate.unknown)) };
  }
  const recipients = [...new Set(envelope.rcptTo)];
  const earlier = new Map(claim.answered.map((a) => [a.address, a] as const));
  for (const refused of gate.refused) earlier.set(refused.address, refused);
  const waiting = recipients.filter((a) => !earlier.has(a));

  if (dryRun) {
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
        tls: null,
        dsn: null,
      }),
    };
  }

  // The next message on this connection waits for this one's answer. Pipelining its MAIL, RCPT
  // and DATA after this one's final dot (RFC 2920 3.1 allows it) was slower against Postfix's
  // smtp-sink (bench/deliver.ts), and a reply sent twice or not at all could then be paired with
  // the other message's commands; other connections (--connections) overlap instead.
  const result: TransactionResult = waiting.length
    ? await server.send({
        id: ref.id,
        mailFrom: envelope.mailFrom,
        recipients: waiting,
        body: envelope.body,
        ...(envelope.smtputf8 ? { smtputf8: envelope.smtputf8 } : {}),
        size: typeof envelope.bytes === 'number' ? envelope.bytes : undefined,
        text: () => claim.open(),
      })
    : { recipients: [], error: null };
  return {
    marking: mark(
      claim,
      messageOutcome(recipients, earlier, result),
      result.tls ?? null,
      bounce,
      gate.refused,
    ),
  };
}

/**
 * Mark the message as decided, once the DSN it owes (bounce-due.ts) is sent: its final answers
 * are recorded first, so that a crash after the DSN sends the DSN again, not the message. A mark
 * that fails leaves it deferred, in the undelivered set.
 */
async function mark(
  claim: ClaimedMail,
  decided: MessageOutcome,
  tls: TlsState | null,
  bounce: BounceServer | undefined,
  foreign: readonly RecipientAnswer[],
): Promise<MessageReport> {
  const { ref, envelope } = claim;
  const { finals } = decided;
  const expiredNow =
    bounce !== undefined &&
    pastGiveUp(
      envelope.receivedAt ?? envelope.storedAt,
      bounce.settings.now(),
      bounce.settings.giveUpAfterMs,
    );
  // No DSN for a recipient deliver refused as not the customer's: its sender may be forged, and
  // the customer's server would carry the bounce out (backscatter).
  const due = dsnDue(envelope.mailFrom, decided, claim.notified, expiredNow, foreign);
  let notified = claim.notified;
  let dsn: DsnReport | null = null;
  const report = (outcome: DeliveryOutcome, error: string | null): MessageReport => ({
    message: ref.id,
    target: ref.target,
    outcome,
    recipients: decided.recipients,
    error,
    tls,
    dsn,
  });
  let settled: Settled = { outcome: decided.outcome, error: decided.error };
  try {
    if (due.owed.length && due.suppressed) dsn = suppressedReport(due);
    else if (due.owed.length && bounce) {
      await claim.record(finals, notified);
      const sent = await bounce.send(claim, due).catch((e: unknown) => ({
        report: {
          ...deferredDsn(due, envelope.mailFrom, bounce.display),
          text: asDequeueError(e).message,
        },
        record: null,
      }));
      dsn = sent.report;
      if (sent.record) notified = [...notified, sent.record];
    }
    // Without a bounce server (a caller that sends none), a refusal settles as it always did.
    settled = settle(decided, due, !bounce || dsn?.outcome !== 'deferred');
    if (settled.outcome === 'delivered') await claim.delivered(finals);
    else if (settled.outcome === 'failed')
      await claim.failed([...finals, ...due.expired], notified);
    else await claim.deferred(finals, notified);
    return report(settled.outcome, settled.error);
  } catch (e) {
    // Still in the undelivered set: the next run delivers it again to whoever is recorded as
    // waiting, and sends the DSN that is not recorded as sent.
    return report('deferred', `${settled.outcome}, but ${asDequeueError(e).message}`);
  }
}

/**
 * A message another run holds is left to it. When the store knows who holds the whole target
 * (the mail directory's lock), the operator is told once per target; else the transcript says it
 * per message.
 */
async function leftToOtherRun(ref: StoredRef, deps: DeliverDeps, said: Set<string>): Promise<void> {
  deps.onSkipped?.(ref);
  const holder = await deps.store.heldBy?.(ref.target);
  if (!holder)
    deps.transcript.line(
      'deliver',
      '*',
      `message ${ref.id} (${ref.target}) is being delivered by another run; left to it`,
    );
  else if (!said.has(ref.target)) {
    said.add(ref.target);
    (deps.onNotice ?? ((text: string) => deps.transcript.line('deliver', '*', text)))(
      `the mail of ${ref.target} is being delivered by ${holder}; left to it`,
    );
  }
}
