/**
 * The interfaces the core needs from the outside. Adapters (lambda/adapters/) implement them; the
 * handler and the CLI choose which are plugged in. Nothing here imports an AWS SDK.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ConfigDocument, Settings, Target } from './config';
import type { ConfigError, DequeueError } from './errors';
import type { TargetResult } from './result';
import type { RecordedStatus } from './target-status';
import type { WorkOrder } from './fan-out';

/** Where the configuration comes from: a file (CLI) or SSM parameters (Lambda). */
export interface ConfigSource {
  /** `signal` ends the loading (and its retries) at the run's deadline. */
  load(signal?: AbortSignal): Promise<LoadedConfig>;
  /**
   * Optional: the settings and only the targets named, read now from the configuration (a worker
   * of fan-out reads what its work orders name, docs/fan-out.md). A target whose document is
   * invalid is in `invalid`; a reference the configuration does not hold (no such parameter, or
   * a place outside the configuration) is in `unknown`, with why. Rejects as `load` does when
   * nothing could be read.
   */
  lookup?(targets: readonly TargetReference[], signal?: AbortSignal): Promise<LoadedConfig>;
}

/** A target as a work order names it: its name, and where the configuration keeps it if known. */
export interface TargetReference {
  readonly name: string;
  /** The source's own place for it (an SSM parameter name); absent: the source's default for the name. */
  readonly location?: string;
}

/**
 * A loaded configuration. `invalid` lists targets whose own document was wrong (Lambda: one SSM
 * parameter each); they become `config-error` results while the valid targets still run. The CLI
 * validates its file whole instead and never fills it.
 */
export interface LoadedConfig extends ConfigDocument {
  readonly invalid: readonly InvalidTarget[];
  /** Where each target is kept (target name to SSM parameter name), when the source has places. */
  readonly locations?: Readonly<Record<string, string>>;
  /** lookup only: references that name nothing in the configuration, each with why. */
  readonly unknown?: readonly InvalidTarget[];
}

export interface InvalidTarget {
  /** The target's name as best known (from the parameter name when the document is unreadable). */
  readonly name: string;
  readonly error: ConfigError;
}

export interface AuthCredentials {
  readonly username: string;
  readonly password: string;
}

/**
 * Secrets by `secretId`. Rejects with a DequeueError of kind `config` when missing or malformed.
 * `signal` ends the request (and its retries) at the run's deadline.
 */
export interface Credentials {
  get(secretId: string, signal?: AbortSignal): Promise<AuthCredentials>;
}

/**
 * The cycle counter. A "slot" identifies one scheduled run (schedule ARN + scheduled time); a
 * slot is counted at most once however often its event is delivered.
 */
export interface CycleCounter {
  /**
   * Count one cycle for `slot` (undefined: an unscheduled run, always counted) and return its
   * number. When the slot was already counted, return the cycle it got then and `counted: false`.
   */
  count(slot?: string, signal?: AbortSignal): Promise<{ cycle: number; counted: boolean }>;
  /** The last counted cycle, without counting (for --force and --dry-run). 0 before the first. */
  peek(signal?: AbortSignal): Promise<number>;
  /**
   * Optional: claim the right to signal `target` in `cycle`. Returns false when another
   * delivery of the same slot already claimed it, so that a target is signalled exactly once
   * per counted cycle even when invocations overlap. (`signal`, here and above: ends the call and
   * its retries at the run's deadline, so the results are reported before the run is cut off.)
   */
  claim?(cycle: number, target: string, signal?: AbortSignal): Promise<boolean>;
}

/**
 * One session per target at a time: a lease on the target, held while its signal runs and
 * released after, so that two runs never talk to one provider for one target at once (a slow
 * cycle and the next, a manual run, a work order of an earlier cycle: Exim answers the second
 * ETRN `458 already processing`, and two ODMR sessions to one account deliver nothing twice as
 * fast). Claims cannot do this: they are per (cycle, target).
 */
export interface TargetLeases {
  /**
   * Hold `target` until `until` (epoch ms: the run's deadline, which no session outlives), unless
   * another holder's lease has not expired yet: then undefined. A holder that dies without
   * releasing blocks the target until its `until` and no longer.
   */
  hold(target: string, until: number, signal?: AbortSignal): Promise<HeldLease | undefined>;
}

export interface HeldLease {
  /** Gives the target back; never rejects (a lease not given back expires at its `until`). */
  release(): Promise<void>;
}

/**
 * Where each target's status is kept between cycles (lambda/core/target-status.ts has the rules):
 * the CLI's --state file, the function's DynamoDB table. Called once per target per cycle.
 */
export interface StatusRecorder {
  /**
   * Record `result`, handled at `at` (epoch ms); resolves to the target's status after it.
   * `signal` ends the write (and its retries) at the run's deadline.
   */
  record(result: TargetResult, at: number, signal?: AbortSignal): Promise<RecordedStatus>;
  /**
   * Optional: of `targets`, those whose last precheck found their server down (`serverDownSince`
   * set). The cycle checks them again even when they are not due, so that a server that comes
   * back is released at once.
   */
  serverDown?(targets: readonly string[], signal?: AbortSignal): Promise<ReadonlySet<string>>;
}

/**
 * Where a cycle that fans out sends its work orders (Lambda: an SQS queue feeding the workers;
 * docs/fan-out.md). Resolves with the orders it could not queue, each with why; every other
 * order is durably queued. Rejects only for a fault of the caller.
 */
export interface WorkQueue {
  send(orders: readonly WorkOrder[], signal?: AbortSignal): Promise<readonly QueueRefusal[]>;
  /**
   * Optional: make orders a worker hands back visible again `seconds` from now, instead of after
   * the queue's own visibility timeout (six times the function's: longer than an order lives).
   * Resolves with the orders it could not change, each with why; never rejects for them.
   */
  handBack?(
    orders: readonly HandedBackOrder[],
    seconds: number,
    signal?: AbortSignal,
  ): Promise<readonly HandBackFailure[]>;
}

/** An order as the worker received it: the queue's message id and this receipt's handle. */
export interface HandedBackOrder {
  readonly messageId: string;
  readonly receiptHandle: string;
}

export interface HandBackFailure {
  readonly messageId: string;
  readonly error: DequeueError;
}

export interface QueueRefusal {
  readonly target: string;
  readonly error: DequeueError;
}

/** What the signal session hands over after the provider accepted ATRN (RFC 2645 section 4). */
export interface ReversedTurn {
  /** The same connection, TLS included if it was negotiated; we now act as the SMTP server. */
  readonly socket: Socket | TLSSocket;
  /** Bytes already read from the socket past the ATRN reply (normally none). */
  readonly pending: Buffer;
  readonly target: Target;
  /** The provider, as `host:port`, for the envelope record. */
  readonly provider: string;
  /** Epoch ms by which the session must have ended (421 and close before then). */
  readonly deadline: number;
  readonly helloName: string;
  readonly transcript: Transcript;
  /**
   * The run was told to stop (SIGINT, SIGTERM; core/run-stop.ts): the session answers 421 at its
   * next wait, the message in flight not acknowledged, as at the deadline.
   */
  readonly stop?: AbortSignal;
}

export interface ReversedOutcome {
  /** Messages stored and acknowledged with 250. */
  readonly stored: number;
  /** Why the session ended badly, if it did; stored messages stay stored either way. */
  readonly error: DequeueError | null;
  /** Recipients refused as outside the customer's domains (550 5.7.1); absent when none. */
  readonly refusedRecipients?: number;
}

/** Serves the reversed session after ATRN. Absent: ATRN targets are a configuration error. */
export type MailReceiver = (turn: ReversedTurn) => Promise<ReversedOutcome>;

/**
 * One message's envelope as the provider gave it (RFC 5321 section 3.3), recorded beside the
 * message by every sink (docs/odmr.md "Envelope").
 */
export interface MailEnvelope {
  /** Unique and sortable by time: names the stored message, appears in our 250 and trace header. */
  readonly id: string;
  /** The reverse-path without its brackets; '' for the null reverse-path `<>` (a bounce). */
  readonly mailFrom: string;
  /** Every accepted forward-path, in the order given. */
  readonly rcptTo: readonly string[];
  /** MAIL parameters accepted: BODY (RFC 6152) and the declared SIZE (RFC 1870), when sent. */
  readonly body?: '7BIT' | '8BITMIME';
  readonly declaredSize?: number;
  /**
   * MAIL carried SMTPUTF8 (RFC 6531 section 3.4): the message needs a server that offers it
   * (UTF-8 addresses or headers); `deliver` passes it on, or fails the message. Absent: false.
   */
  readonly smtputf8?: true;
  /** ISO 8601, when DATA began. */
  readonly receivedAt: string;
  /** The provider, as `host:port`. */
  readonly provider: string;
  /** The target's name. */
  readonly target: string;
  /**
   * The customer's domains the session accepted recipients for (the ATRN command's, or the
   * target's mail.domains; lower case, customer-domains.ts). `deliver` sends to no recipient
   * outside them. Absent in envelopes stored before issue 17.
   */
  readonly domains?: readonly string[];
  /** The name the provider gave in EHLO/HELO. */
  readonly heloName: string;
  /** Whether the connection was encrypted. */
  readonly tls: boolean;
  /** Length of the trace header we prepended (RFC 5321 4.4); the provider's bytes follow it. */
  readonly traceBytes: number;
  /**
   * Set on the archive's copy of a message the relay took (`settings.mail.relay`): the relay as
   * `host:port`. The copy is a record of mail already handed on, kept outside the undelivered set
   * (DIR/<target>/relayed/, S3 `<prefix>relayed/`), so `deliver` never sends it a second time.
   */
  readonly relayedTo?: string;
}

/** A message made durable and visible by a sink. */
export interface StoredMessage {
  readonly id: string;
  /** Where it went: a file path, an `s3://` URL, a relay's `smtp://host:port`. */
  readonly location: string;
  /** Bytes stored, trace header included. */
  readonly bytes: number;
}

/**
 * Where received mail goes. The session streams each message through a draft as it arrives, so
 * memory never grows with message size; only a committed draft is acknowledged with 250.
 */
export interface MailSink {
  /** Open a place for one message. Rejects (DequeueError) when the sink cannot take it now. */
  begin(envelope: MailEnvelope): Promise<MessageDraft>;
  /**
   * Optional: learn the transaction as the provider gives it, MAIL first and then each RCPT, so
   * that each recipient is answered with the destination's own answer (the relay: a 550 for one
   * address does not refuse the others). The session then calls the transaction's `begin`
   * instead of this sink's.
   */
  transaction?(mail: TransactionStart): SinkTransaction;
  /**
   * Optional: whether a new message may come at all, asked at MAIL before anything is opened.
   * A store short of space refuses with 452 4.3.1 (RFC 3463; RFC 1870 6.1 for a declared SIZE
   * that would not leave enough) as Postfix does with `queue_minfree`: the provider keeps the
   * message. Null: it may come.
   */
  admit?(mail: TransactionStart): Promise<MailRefusal | null>;
  /**
   * Optional: the session that took `target`'s mail is over. A store that put off what it owes
   * after its answers (the mail directory's fsync that makes the last message's renames durable)
   * does it now; the session awaits it, within its deadline. Never rejects.
   */
  settle?(target: string): Promise<void>;
}

/** A sink's temporary refusal of a message at MAIL. */
export interface MailRefusal {
  /** The reply's code and text, e.g. 452 and `4.3.1 Insufficient system storage`. */
  readonly code: number;
  readonly text: string;
  /** What the run's result says about it. */
  readonly error: DequeueError;
  /**
   * Nothing more can be taken in this session (the store is below its bound whatever the
   * message): the session closes at the next command. False: only this message (its SIZE).
   */
  readonly closing: boolean;
}

/** What MAIL FROM said (RFC 5321 3.3). */
export interface TransactionStart {
  readonly mailFrom: string;
  /** The target whose mail this is (a store keeps each target's mail apart). */
  readonly target?: string;
  readonly body?: '7BIT' | '8BITMIME';
  readonly declaredSize?: number;
}

/** The destination's answer to one RCPT. */
export type RecipientVerdict =
  | { readonly accepted: true }
  | {
      readonly accepted: false;
      /** The reply the provider gets: the destination's own code (4xx keeps the recipient queued, 5xx bounces it). */
      readonly code: number;
      readonly text: string;
      /** Set when the destination itself failed (unreachable, cannot take 8-bit): the result says why. */
      readonly error?: DequeueError;
    };

export interface SinkTransaction {
  /** Ask the destination about one recipient. Never rejects: a failure is a 4xx verdict. */
  recipient(address: string): Promise<RecipientVerdict>;
  /** DATA: a place for the message, for the recipients accepted (`envelope.rcptTo`). */
  begin(envelope: MailEnvelope): Promise<MessageDraft>;
  /**
   * The transaction ended without DATA (RSET, EHLO, no recipient, the session's end). Idempotent.
   * May return a promise that settles (never rejects) once what the transaction held is let go:
   * the session waits for it, bounded, before it ends.
   */
  abandon(): void | Promise<void>;
}

export interface MessageDraft {
  /**
   * Append the next pieces of the message, in order: a writev, so the session hands over the
   * slices between stuffed dots without joining them. Resolves when the sink can take more
   * (backpressure); the buffers must not be modified afterwards. Rejects when the sink failed;
   * the draft is then only good for abort().
   */
  write(chunks: readonly Buffer[]): Promise<void>;
  /** Make the message and its envelope durable and visible, all or nothing. */
  commit(): Promise<StoredMessage>;
  /**
   * True when abort() after a successful commit takes the message back entirely (a store: the
   * mail directory, S3). Absent when a committed message has left our hands (a relay): the
   * session then cannot withdraw a message whose 250 never reached the provider, and says so.
   */
  readonly withdrawable?: boolean;
  /**
   * Drop the message: once this resolves nothing of it is visible, even if a commit was in
   * flight (a commit that completes anyway is undone). Safe to call more than once. Rejects
   * (DequeueError) when something of it could not be removed, naming what was left behind.
   */
  abort(): Promise<void>;
}

/**
 * The SMTP transcript (--verbose). Lines are already redacted where they are produced: a line
 * carrying a credential never reaches a Transcript.
 */
export interface Transcript {
  line(target: string, direction: 'C' | 'S' | '*', text: string): void;
}

export const silentTranscript: Transcript = { line: () => undefined };

export type { Settings, Target };
