/**
 * Many domains in one target: at most `maxEtrnPerSession` ETRNs in one session, the rest on
 * further sessions of the same cycle, each domain with its own reply.
 *
 * Why a cap: sendmail (8.17, Debian 12's) treats more than 8 ETRNs in one session as an attack
 * and delays each further reply 1, 2, 4, ... 32 seconds (its MAXETRNCOMMANDS); with 14 domains
 * the 13th reply came after the 30 s timeout, the target failed, and the 14th domain was never
 * asked for, every cycle. A new session starts the count again. The default, 8, is sendmail's own
 * number; `settings.maxEtrnPerSession` changes it (docs/configuration.md).
 */
import { verbOf } from '../config';
import { DequeueError } from '../errors';
import { worstOutcome, type ReplyRecord } from '../result';
import type { CommandOutcome } from '../outcome';
import type { SignalReport } from './types';

/** sendmail's MAXETRNCOMMANDS: the ETRNs of one session before it starts delaying its replies. */
export const DEFAULT_MAX_ETRN_PER_SESSION = 8;

/**
 * The commands of each session: runs of at most `max` when every command is ETRN (or QSND, its
 * Post.Office twin); otherwise all of them in one session (ATRN must come last in its own).
 */
export function etrnSessions(commands: readonly string[], max: number): string[][] {
  const releases = commands.every((c) => verbOf(c) === 'ETRN' || verbOf(c) === 'QSND');
  if (!releases || commands.length <= max) return [[...commands]];
  const sessions: string[][] = [];
  for (let i = 0; i < commands.length; i += max) sessions.push(commands.slice(i, i + max));
  return sessions;
}

/**
 * Run each session's commands in turn, as long as there is time for another, and combine the
 * reports: every command's reply in order, the outcome the worst of theirs, the first error.
 * Commands that no session was left to carry are named in `replies`.
 */
export async function inSessions(
  sessions: readonly (readonly string[])[],
  options: {
    readonly run: (commands: readonly string[]) => Promise<SignalReport>;
    readonly timeLeft: () => boolean;
    readonly note: (text: string) => void;
  },
): Promise<SignalReport> {
  const reports: SignalReport[] = [];
  const notSent: ReplyRecord[] = [];
  for (const [i, commands] of sessions.entries()) {
    if (i > 0 && !options.timeLeft()) {
      for (const command of sessions.slice(i).flat())
        notSent.push({ command, code: null, text: "not sent: the run's deadline came first" });
      break;
    }
    if (i > 0)
      options.note(
        `session ${i + 1} of ${sessions.length}: at most ${sessions[0]!.length} ETRNs a session (sendmail slows its replies after 8)`,
      );
    reports.push(await options.run(commands));
  }
  const outcomes: CommandOutcome[] = reports.map((r) => r.outcome);
  let error = reports.find((r) => r.error)?.error ?? null;
  if (notSent.length) {
    outcomes.push('temporary-failure');
    error ??= new DequeueError(
      'temporary',
      `${notSent.length} command(s) not sent: the run's deadline came before their session`,
    );
  }
  return {
    outcome: worstOutcome(outcomes) as CommandOutcome,
    replies: [...reports.flatMap((r) => r.replies), ...notSent],
    messages: reports.reduce((n, r) => n + r.messages, 0),
    error,
  };
}
