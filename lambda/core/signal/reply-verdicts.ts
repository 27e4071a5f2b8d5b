/**
 * What a provider's reply to a release command means beyond its code: a reply that belongs to no
 * such command (the stream is shifted), ATRN's 450, a command the provider never offered, and the
 * goodbye's verdict on the pairing (smtp/reply-pairing.ts keeps the rules).
 */
import { verbOf } from '../config';
import { boundedText, type ClientSession, type Goodbye } from '../smtp/client-handshake';
import { DequeueError, ProtocolError } from '../errors';
import type { SmtpReply } from '../smtp/reply';
import { canAnswer } from '../smtp/reply-pairing';

/** A reply no honest server gives to this command: the stream is shifted. */
export function misfit(command: string, reply: SmtpReply): string | null {
  const verb = verbOf(command);
  if ((verb === 'ETRN' || verb === 'QSND') && !canAnswer('ETRN', reply.code)) {
    return `${command} was answered ${reply.code}, which is no reply to ${verb} (RFC 1985 section 5)`;
  }
  return null;
}

/** RFC 2645 section 4: 450 means the provider refused the request, not that it is busy. */
export function atrnRefused(peer: string, reply: SmtpReply): DequeueError {
  return new DequeueError(
    'permanent',
    `${peer} refused ATRN (450, "ATRN request refused" in RFC 2645): ${boundedText(reply)}; ask the provider which domains this account may release`,
  );
}

/**
 * A release command refused as unknown (500, 502) by a provider whose EHLO did not list it
 * (OpenSMTPD: `500 5.5.1 Invalid command`): say that, and what it does offer.
 */
export function notOffered(
  peer: string,
  saidEhlo: boolean,
  session: ClientSession,
  verb: string,
  reply: SmtpReply,
): DequeueError | null {
  if ((verb !== 'ETRN' && verb !== 'ATRN') || (reply.code !== 500 && reply.code !== 502))
    return null;
  if (!saidEhlo || session.extensions.has(verb)) return null;
  const offered = [...session.extensions.keys()];
  return new DequeueError(
    'permanent',
    `${peer} does not offer ${verb} (its EHLO lists ${offered.length ? offered.join(', ') : 'no extensions'}): ${reply.code} ${boundedText(reply)}`,
  );
}

/** The goodbye's verdict on the pairing: the reply paired with QUIT is 221 and nothing follows. */
export function pairingDoubt(bye: Goodbye): string | null {
  if (bye.reply && !canAnswer('QUIT', bye.reply.code))
    return `QUIT was answered ${bye.reply.code}, not 221`;
  if (bye.after)
    return `${bye.after} came ${bye.reply ? 'after the 221 to QUIT' : 'before the QUIT'}`;
  // Garbage where QUIT's reply should be; silence or a close there proves nothing either way.
  if (bye.error instanceof ProtocolError) return bye.error.message;
  return null;
}
