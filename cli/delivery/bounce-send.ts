/**
 * Sending the delivery status notification a message owes (bounce-due.ts), through the bounce
 * server: `--bounce-via`, else the `--to` server when it is SMTP (LMTP cannot relay, RFC 2033 1).
 * The DSN goes from the null reverse-path (RFC 5321 4.5.5, RFC 3464 2) to the message's
 * reverse-path, on a connection of its own, opened when the first DSN is due.
 *
 * At least once, never lost: the message's final answers are recorded before the DSN goes out,
 * and the DSN is recorded (DsnRecord) with the message's mark after the server's 250. A crash
 * between the two sends the same DSN (same Message-ID) once more at the next run, and nothing
 * else again.
 */
import { deliveryStatusNotification } from '../../lambda/core/dsn/delivery-status';
import { headerSection } from '../../lambda/core/dsn/header-section';
import { expiredStatus, refusedStatus } from '../../lambda/core/dsn/status-code';
import type { Transcript } from '../../lambda/core/ports';
import type { DsnDue } from './bounce-due';
import type { DeliveryOptions } from './delivery-options';
import type { Destination } from './destination';
import type { ClaimedMail, DsnRecord } from './mail-store';
import { ConnectionPool } from './run-connection';
import type { TransactionResult } from './transaction';

/** What `--json` shows of a message's DSN (docs/bounces.md). */
export interface DsnReport {
  /**
   * sent: the bounce server took it (250); deferred: not yet, tried again at the next run (the
   * message stays); refused: the bounce server refused it for good (not tried again);
   * suppressed: the message's reverse-path is null, so none is owed.
   */
  readonly outcome: 'sent' | 'deferred' | 'refused' | 'suppressed';
  /** The reverse-path it goes to ('' for the null one). */
  readonly to: string;
  readonly via: string | null;
  /** Its Message-ID, without brackets; null when none was made. */
  readonly messageId: string | null;
  /** The recipients it reports. */
  readonly recipients: readonly string[];
  /** The bounce server's reply (or why none came); null when nothing was sent. */
  readonly code: number | null;
  readonly text: string | null;
}

export interface BounceSettings {
  /** Where DSNs go; an SMTP or SMTPS server. */
  readonly via: Destination;
  /** How to connect to it (our name, TLS, timeouts). */
  readonly options: DeliveryOptions;
  /** The customer's server whose replies the DSN quotes (RFC 3464 Remote-MTA), when it has a name. */
  readonly remoteMta?: string;
  readonly giveUpAfterMs: number;
  /** "5 days", for the DSN's text. */
  readonly giveUpWords: string;
  readonly now: () => Date;
}

/** The bounce server, connected when the first DSN is due; one connection, DSNs in turn. */
export class BounceServer {
  private pool: ConnectionPool | null = null;

  constructor(readonly settings: BounceSettings) {}

  get display(): string {
    return this.settings.via.display;
  }

  /** Build the DSN `due` and send it; resolves to its report and, once settled, its record. */
  async send(
    claim: ClaimedMail,
    due: DsnDue,
  ): Promise<{ readonly report: DsnReport; readonly record: DsnRecord | null }> {
    const { envelope, ref } = claim;
    const { settings } = this;
    const mta = settings.options.helloName;
    const messageId = `${ref.id}.dsn${claim.notified.length + 1}@${mta.replace(/^\[|\]$/g, '')}`;
    const now = settings.now();
    const owed = new Set(due.owed);
    const headers = await headerSection(claim.open());
    const { text } = deliveryStatusNotification({
      reportingMta: mta,
      reversePath: envelope.mailFrom,
      messageId,
      arrivalDate: new Date(envelope.receivedAt),
      receivedFromMta: envelope.heloName,
      ...(settings.remoteMta ? { remoteMta: settings.remoteMta } : {}),
      date: now,
      giveUpAfter: settings.giveUpWords,
      headers,
      recipients: [
        ...due.refused
          .filter((a) => owed.has(a.address))
          .map((a) => ({
            address: a.address,
            status: refusedStatus(a.code, a.text),
            reason: 'refused' as const,
            diagnostic: `${a.code} ${a.text}`,
          })),
        ...due.expired
          .filter((a) => owed.has(a.address))
          .map((a) => ({
            address: a.address,
            status: expiredStatus(a.code, a.text),
            reason: 'expired' as const,
            diagnostic: a.code !== null ? `${a.code} ${a.text ?? ''}` : null,
          })),
      ],
    });
    this.pool ??= new ConnectionPool(settings.via, labelled(settings.options), 1);
    const lease = await this.pool.acquire();
    let result: TransactionResult;
    try {
      result = await lease.send({
        id: `${ref.id} (DSN)`,
        mailFrom: '',
        recipients: [envelope.mailFrom],
        ...(envelope.smtputf8 ? { smtputf8: true as const } : {}),
        size: text.length,
        text: () => [text],
      });
    } finally {
      lease.release();
    }
    const answer = result.recipients[0];
    const code = answer?.code ?? null;
    const outcome = answer?.final && code !== null ? (code < 300 ? 'sent' : 'refused') : 'deferred';
    const report: DsnReport = {
      outcome,
      to: envelope.mailFrom,
      via: this.display,
      messageId,
      recipients: due.owed,
      code,
      text: answer?.text ?? result.error?.message ?? null,
    };
    const record: DsnRecord | null =
      outcome === 'deferred'
        ? null
        : {
            messageId,
            to: envelope.mailFrom,
            via: this.display,
            recipients: due.owed,
            at: settings.now().toISOString(),
            code: code!,
            text: answer!.text,
          };
    return { report, record };
  }

  async close(): Promise<void> {
    await this.pool?.close();
  }
}

/** A DSN that could not be sent this run (an error before the server answered it). */
export function deferredDsn(due: DsnDue, to: string, via: string): DsnReport {
  return {
    outcome: 'deferred',
    to,
    via,
    messageId: null,
    recipients: due.owed,
    code: null,
    text: null,
  };
}

/** The null reverse-path is owed nothing: no DSN is made. */
export function suppressedReport(due: DsnDue): DsnReport {
  return {
    outcome: 'suppressed',
    to: '',
    via: null,
    messageId: null,
    recipients: due.owed,
    code: null,
    text: 'the null reverse-path gets no DSN',
  };
}

/** The bounce connection's transcript lines are labelled `bounce`, not `deliver`. */
function labelled(options: DeliveryOptions): DeliveryOptions {
  const inner: Transcript = options.transcript;
  return { ...options, transcript: { line: (_label, d, t) => inner.line('bounce', d, t) } };
}
