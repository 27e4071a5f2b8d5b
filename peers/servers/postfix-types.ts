/**
 * What a private Postfix instance (postfix.ts) offers a test: its options, the queue entries it
 * lists, the messages it holds, and the instance itself.
 */

export interface PostfixOptions {
  /**
   * Domains Postfix relays and holds for ETRN (`relay_domains`, and `fast_flush_domains =
   * $relay_domains`). Default `["customer.test"]`.
   */
  readonly relayDomains?: readonly string[];
  /** The loopback port of the customer's MX: where released mail is delivered. Required. */
  readonly customerMxPort: number;
  /** Extra or overriding main.cf parameters, e.g. `{ smtpd_etrn_restrictions: 'reject' }`. */
  readonly mainCf?: Readonly<Record<string, string>>;
}

export interface QueueEntry {
  readonly queue_name: string;
  readonly queue_id: string;
  readonly sender: string;
  readonly recipients: readonly { readonly address: string; readonly delay_reason?: string }[];
}

export interface HeldMessage {
  readonly queueId: string;
  /** With its angle brackets, as in the header. */
  readonly messageId: string;
  readonly subject: string;
  readonly from: string;
  readonly to: string;
}

export interface PostfixInstance {
  readonly host: '127.0.0.1';
  /** The smtpd listener: where ETRN goes. */
  readonly port: number;
  readonly dir: string;
  readonly configDir: string;
  readonly logFile: string;
  readonly masterPid: number;
  /** Inject a message with `sendmail -C` and wait until Postfix holds it in the deferred queue. */
  inject(message: {
    to: string;
    from?: string;
    subject?: string;
    body?: string;
  }): Promise<HeldMessage>;
  /** The queue as `postqueue -j` lists it. */
  queue(): Promise<QueueEntry[]>;
  /**
   * Wait (bounded) until `count` queue entries that `match` are in the deferred queue: only then
   * does `postqueue -s` (or ETRN) release them, since Postfix adds a message to a site's fast
   * flush list when it defers it. Mail that has just arrived is still in incoming or active.
   */
  waitForDeferred(match: (entry: QueueEntry) => boolean, count: number): Promise<QueueEntry[]>;
  /** The whole maillog so far ('' before the first line). */
  log(): Promise<string>;
  /** Wait (bounded) until a maillog line matches; resolves to that line. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Stop Postfix, make sure nothing of it lives on, and remove its directory. Safe to repeat. */
  stop(): Promise<void>;
}
