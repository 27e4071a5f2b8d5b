/**
 * The one place that assembles what serves the reversed session after ATRN: the store the caller
 * has (the CLI's mail directory, the function's S3 bucket), behind the relay when the target's
 * mail settings name one, with those settings' limits. The handler and the CLI both call it, so
 * a message is received the same way wherever dequeue runs.
 *
 * Per target: `target.mail` overrides `settings.mail` field by field and `target.helloName` the
 * settings' (config.ts mailSettingsFor), so that one deployment serves many customers, each with
 * their own relay and limits.
 *
 * The store gets each message as received (after dot-unstuffing, after our trace header): a bare
 * LF or CR the provider sent is kept. What leaves us for another server is canonical whatever we
 * received: the relay and `deliver` send through DotStuffer (core/smtp/dot-stuffing.ts), which
 * makes every line end CRLF and stuffs every line that then starts with a dot, so no server
 * downstream can find the end of the data anywhere but at the end (SMTP smuggling).
 */
import { hostname } from 'node:os';
import { helloNameFor, mailSettingsFor, type Settings } from './core/config';
import { createMailReceiver } from './core/odmr/reversed-session';
import { ConfigError } from './core/errors';
import type { MemoryBudget } from './core/memory-budget';
import type { MailReceiver, MailSink } from './core/ports';
import { withRelay } from './adapters/relay-sink';

/**
 * The receiver for one run, as the CLI and the handler wire it. Undefined when there is neither a
 * store nor a relay anywhere in the configuration (ATRN is then a config error); a target whose
 * own settings leave it with neither is refused when its turn comes.
 */
export function mailReceiverFor(
  store: MailSink | undefined,
  settings: Settings,
  tlsCa?: string,
  memory?: MemoryBudget,
  targets: readonly { readonly mail?: Settings['mail'] }[] = [],
  /** Added to the error of a relay connection to port 25 that timed out (Lambda outside a VPC). */
  port25Hint?: string,
): MailReceiver | undefined {
  const anyRelay =
    settings.mail?.relay !== undefined || targets.some((t) => t.mail?.relay !== undefined);
  if (!store && !anyRelay) return undefined;
  return (turn) => {
    const mail = mailSettingsFor(settings, turn.target);
    const sink = withRelay(
      store,
      mail?.relay,
      helloNameFor(settings, turn.target) ?? hostname(),
      tlsCa,
      port25Hint,
    );
    if (!sink) {
      return Promise.resolve({
        stored: 0,
        error: new ConfigError(
          turn.target.name,
          'mail.relay',
          'ATRN needs somewhere to store the mail it pulls: this target has no relay and there is no store',
        ),
      });
    }
    return createMailReceiver(sink, {
      maxMessageBytes: mail?.maxMessageBytes,
      maxRecipients: mail?.maxRecipients,
      memory,
    })(turn);
  };
}
