/**
 * `deliver`'s bounce flags (docs/bounces.md): `--give-up-after DURATION` and `--bounce-via URL`,
 * checked against `--to`, and how a message's DSN reads in the result line.
 */
import { isIP } from 'node:net';
import type { TlsPolicy } from '../../lambda/core/smtp/tls-policy';
import type { BounceSettings, DsnReport } from '../delivery/bounce-send';
import type { DeliveryOptions } from '../delivery/delivery-options';
import { deliveryTls } from '../delivery/delivery-tls';
import { parseDestination, type Destination } from '../delivery/destination';
import { DEFAULT_GIVE_UP_MS, durationWords, parseGiveUpAfter } from '../delivery/give-up';
import { UsageError } from '../usage';

export interface BounceFlags {
  /** Where DSNs go: `--bounce-via`, else the `--to` server (SMTP). */
  readonly via: Destination;
  readonly giveUpAfterMs: number;
}

export function bounceFlags(
  values: { readonly 'give-up-after'?: string; readonly 'bounce-via'?: string },
  to: Destination,
): BounceFlags {
  let giveUpAfterMs = DEFAULT_GIVE_UP_MS;
  if (values['give-up-after'] !== undefined) {
    try {
      giveUpAfterMs = parseGiveUpAfter(values['give-up-after']);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  const text = values['bounce-via'];
  if (text === undefined) {
    // RFC 2033 1: an LMTP server delivers to its own mailboxes and relays nothing, so the DSN to
    // a sender elsewhere needs a server that does.
    if (to.protocol === 'lmtp')
      throw new UsageError(
        `--to ${to.display} is LMTP, which cannot relay the delivery status notifications owed to senders: give --bounce-via smtp://host[:port] (a server that relays for this host)`,
      );
    return { via: to, giveUpAfterMs };
  }
  let via: Destination;
  try {
    via = parseDestination(text);
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/^--to /, '--bounce-via '));
  }
  if (via.protocol === 'lmtp')
    throw new UsageError(
      `--bounce-via ${text}: LMTP cannot relay; give an SMTP server: smtp://host[:port] or smtps://host[:port]`,
    );
  return { via, giveUpAfterMs };
}

/** The run's bounce settings (bounce-send.ts) from the flags. */
export function bounceSettings(
  flags: BounceFlags,
  run: {
    readonly to: Destination;
    /** The --tls policy of --to. */
    readonly toTls: TlsPolicy;
    /** Our name, the CA for tests, the transcript, --timeout, the operator's notices. */
    readonly connection: Omit<DeliveryOptions, 'tls'>;
    readonly now?: () => Date;
  },
): BounceSettings {
  const { via, giveUpAfterMs } = flags;
  const { to } = run;
  return {
    via,
    // The --to server's TLS policy when the DSNs go there; --bounce-via's own defaults else.
    options: { ...run.connection, tls: via === to ? run.toTls : deliveryTls(via) },
    // RFC 3464 2.3.5: a host name; an address as a literal (RFC 5321 4.1.3); none for a socket.
    ...(to.socketPath ? {} : { remoteMta: isIP(to.host) ? `[${to.host}]` : to.host }),
    giveUpAfterMs,
    giveUpWords: durationWords(giveUpAfterMs),
    now: run.now ?? (() => new Date()),
  };
}

/** The DSN's part of a result line: ` [DSN sent to <a@b> via smtp://...]`, or '' when none. */
export function dsnWords(dsn: DsnReport | null, visible: (text: string) => string): string {
  if (!dsn) return '';
  const reply =
    dsn.code !== null ? `: ${dsn.code} ${visible((dsn.text ?? '').split('\n')[0]!)}` : '';
  switch (dsn.outcome) {
    case 'sent':
      return ` [DSN sent to <${visible(dsn.to)}> via ${dsn.via}${reply}]`;
    case 'refused':
      return ` [DSN to <${visible(dsn.to)}> refused for good by ${dsn.via}${reply}; not sent again]`;
    case 'deferred':
      return ` [DSN to <${visible(dsn.to)}> not sent yet (${visible(dsn.text ?? 'no reply')}); tried again next run]`;
    case 'suppressed':
      return ' [no DSN: the null reverse-path gets none]';
  }
}
