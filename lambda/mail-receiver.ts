/**
 * The one place that assembles what serves the reversed session after ATRN: the store the caller
 * has (the CLI's mail directory, the function's S3 bucket), behind the relay when
 * `settings.mail.relay` is set, with `settings.mail`'s limits. The handler and the CLI both call
 * it, so a message is received the same way wherever dequeue runs.
 */
import { hostname } from 'node:os';
import type { Settings } from './core/config';
import { createMailReceiver } from './core/odmr/reversed-session';
import type { MemoryBudget } from './core/memory-budget';
import type { MailReceiver, MailSink } from './core/ports';
import { withRelay } from './adapters/relay-sink';

/**
 * The receiver for one run, as the CLI and the handler wire it: the store they have (the mail
 * directory, S3), behind the relay when `settings.mail.relay` is set, with `settings.mail`'s
 * limits. Undefined when there is neither a store nor a relay (ATRN is then a config error).
 */
export function mailReceiverFor(store: MailSink | undefined, settings: Settings, tlsCa?: string, memory?: MemoryBudget): MailReceiver | undefined {
  const mail = settings.mail;
  const sink = withRelay(store, mail?.relay, settings.helloName ?? hostname(), tlsCa);
  return sink && createMailReceiver(sink, { maxMessageBytes: mail?.maxMessageBytes, maxRecipients: mail?.maxRecipients, memory });
}

