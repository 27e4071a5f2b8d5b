/**
 * The sink's answers during a transaction, each bounded by the session's command timeout and
 * stop time: its say on a new message at MAIL (MailSink.admit), and the destination's answer
 * for each recipient when the sink answers them one by one (the relay, issue 9 item 10), so one
 * refused address does not refuse the message for the others. A sink that does not answer in
 * time is a 4xx (the provider keeps the mail), unless the run's deadline came first.
 */
import { asDequeueError, DequeueError, TimeoutError } from '../errors';
import type {
  MailRefusal,
  MailSink,
  RecipientVerdict,
  SinkTransaction,
  TransactionStart,
} from '../ports';
import type { ReceiverLimits } from './receiver-limits';
import type { SessionWire } from './session-wire';

/** The sink's say on a new message; a failure to answer is a 451 that closes the session. */
export async function sinkAdmission(
  wire: SessionWire,
  limits: ReceiverLimits,
  admit: NonNullable<MailSink['admit']>,
  start: TransactionStart,
): Promise<MailRefusal | null> {
  const bound = wire.bound(limits.commandTimeoutMs);
  return wire.timer.within(admit(start), bound.until).catch((e: unknown) => {
    if (e instanceof TimeoutError && bound.byDeadline) throw wire.expired(bound, 'sink');
    const error = asDequeueError(e);
    return {
      code: 451,
      text: '4.3.0 Local error in processing, try again later',
      error: new DequeueError(
        'temporary',
        `the store could not say whether it takes mail now, the provider keeps it: ${error.message}`,
        { cause: error },
      ),
      closing: true,
    };
  });
}

/** The destination's answer for one recipient; no answer in time is a 451 for it. */
export async function destinationVerdict(
  wire: SessionWire,
  limits: ReceiverLimits,
  sinkTx: SinkTransaction,
  address: string,
): Promise<RecipientVerdict> {
  const bound = wire.bound(limits.commandTimeoutMs);
  return wire.timer.within(sinkTx.recipient(address), bound.until).catch((e: unknown) => {
    if (e instanceof TimeoutError && bound.byDeadline) throw wire.expired(bound, 'relay');
    const error = asDequeueError(e);
    return {
      accepted: false as const,
      code: 451,
      text: '4.4.1 The destination did not answer in time',
      error,
    };
  });
}
