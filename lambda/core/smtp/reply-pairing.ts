/**
 * Reply pairing: which reply belongs to which command, and when we stop believing that it does.
 *
 * An SMTP reply names no command: it belongs to one only by its place in the stream (RFC 5321
 * 4.2, RFC 2920 3.1). A server that sends one reply too many or too few shifts every later reply
 * onto the wrong command, and a client that goes on reads one domain's, or one recipient's,
 * answer as another's. Exim and sendmail do exactly that with pipelined ETRNs: they fork with
 * their output unflushed, and the buffered reply goes out twice (docs/real-servers.md). So both
 * clients, the release signal and `deliver`, keep three rules (this module knows neither side;
 * each applies the rules where its own commands are):
 *
 * 1. A reply must be one its command can have (canAnswer, canAnswerAfterRefusedMail). One that
 *    cannot (a 354 to RCPT, a 250 to DATA, a 221 to ETRN, anything but 221 to QUIT) means the
 *    stream is shifted: none of the session's, or the message's, replies is shown as a
 *    command's answer, and nothing is marked on one.
 * 2. A reply with no command waiting for it is a protocol error, never ignored
 *    (replyForNoCommand; smtp/reply-channel.ts raises it the moment the reply is complete, and
 *    smtp/client-handshake.ts sayGoodbye reports one that came before or after the QUIT). The
 *    one exception is 421, which a server may send at any time before it closes (RFC 5321 3.8):
 *    the connection is still over, but as the server going away, not as a pairing fault.
 * 3. A pipelined group with a reply missing (a timeout, a cut) is not believed (groupMissingReply):
 *    a reply dropped earlier in the group would have shifted the rest onto the wrong commands.
 *
 * Where RFC 2920 pipelining is decided (what goes out in one group, and when):
 * - the release signal, lambda/core/signal/session.ts `release()`: one unanswered ETRN at a time,
 *   TLS or not (Exim and sendmail send a reply twice when ETRNs are pipelined); only the last one
 *   travels with the QUIT when PIPELINING is offered, and when the check after it fails, the
 *   commands go again one at a time on a new connection. Its checks: `misfit()` (rule 1 for ETRN
 *   and QSND) and `pairingDoubt()` (rule 1 for QUIT, rule 2 at the end of the session).
 * - `deliver`, cli/delivery/delivery-client.ts `envelope()`: MAIL, every RCPT and DATA in one
 *   group when the server offers PIPELINING; never one message's commands behind another's final
 *   dot (cli/delivery/deliver-run.ts says why). Its checks: cli/delivery/transaction.ts
 *   `envelopeMisfit()` and `dotOutcomes()` (rule 1), groupMissingReply (rule 3), RSET (rule 1).
 * - the wire, lambda/core/smtp/reply-channel.ts `pipeline()`: one waiter per command queued
 *   before the group is written, each with its own bound.
 * - the relay (lambda/adapters/relay-sink.ts) sends one command at a time and checks each reply
 *   against its command (rule 1), MAIL, RCPT, DATA and the final dot.
 * - as the server after ATRN, lambda/core/odmr/reversed-session.ts advertises PIPELINING and
 *   lambda/core/odmr/provider-stream.ts holds replies back while more of a group is waiting
 *   (RFC 2920 3.2).
 */
import { DequeueError, ProtocolError } from '../errors';
import type { SmtpReply } from './reply';

/** The commands whose replies are checked, named as in the RFCs; `end of data` is the final dot. */
export type PairedCommand = 'MAIL' | 'RCPT' | 'DATA' | 'end of data' | 'RSET' | 'QUIT' | 'ETRN';

/** RFC 1985 section 5: the only success codes an ETRN (and Post.Office's QSND) can get. */
export const ETRN_SUCCESS: ReadonlySet<number> = new Set([250, 251, 252, 253]);

const positive = (code: number) => code >= 200 && code < 300;
const refusal = (code: number) => code >= 400 && code < 600;

/**
 * Whether `code` can answer `command` at all (RFC 5321 4.2.1 and 4.3.2, RFC 2033 4.2 for LMTP's
 * end of data, RFC 1985 5 for ETRN). A refusal (4xx, 5xx) can answer any command but RSET and
 * QUIT; the positive codes are each command's own.
 */
export function canAnswer(command: PairedCommand, code: number): boolean {
  switch (command) {
    case 'MAIL':
    case 'RCPT':
    case 'end of data':
      return positive(code) || refusal(code);
    case 'DATA':
      return code === 354 || refusal(code);
    // A refused RSET is as good as a misplaced reply: the next transaction cannot start clean.
    case 'RSET':
      return positive(code);
    case 'QUIT':
      return code === 221;
    case 'ETRN':
      return code >= 400 || ETRN_SUCCESS.has(code);
  }
}

/**
 * After MAIL was refused there is no transaction (RFC 5321 3.3): in the same pipelined group a
 * RCPT cannot be accepted and DATA cannot get 354 (RFC 2920 3.1). One that is, is another
 * command's reply.
 */
export function canAnswerAfterRefusedMail(command: 'RCPT' | 'DATA', code: number): boolean {
  return command === 'RCPT' ? code >= 300 : code !== 354;
}

/**
 * Rule 3: the first reply missing from a pipelined group (each element a reply, or the error
 * that stands for it), or null when every command was answered. Missing one, the group's other
 * replies are not believed either.
 */
export function groupMissingReply<E extends Error>(answers: readonly (SmtpReply | E)[]): E | null {
  return answers.find((r): r is E => r instanceof Error) ?? null;
}

/** Rule 2: what a complete reply that came when no command was waiting for one means. */
export function replyForNoCommand(peer: string, reply: SmtpReply): DequeueError {
  // RFC 5321 3.8: a server may say 421 at any time before it closes (Dovecot does on SIGTERM,
  // while we stream a message): the server going away, not a pairing fault.
  if (reply.code === 421)
    return new DequeueError(
      'temporary',
      `${peer} is closing the connection: ${reply.code} ${reply.lines[0] ?? ''}`,
    );
  return new ProtocolError(
    `${peer} sent a reply nobody asked for: ${reply.code} ${reply.lines[0] ?? ''}`,
  );
}
