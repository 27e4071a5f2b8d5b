/**
 * The `raw` protocol: FINGER (RFC 1288) and TELNET-style release triggers. Connect, send each
 * command as one line, then read what the host says until it closes, falls silent for
 * FINGER_QUIET_MS, or the reply timeout passes. The target is `signalled` once its line is written:
 * such hosts release on the connection or the line, and what they print is informational.
 * What is read is capped; the rest is discarded, never buffered.
 */
import type { Target } from '../config';
import { openTcp, peerName, startTls } from '../smtp/connection';
import { asDequeueError, DequeueError } from '../errors';
import { outcomeOfError, type CommandOutcome } from '../outcome';
import { silentTranscript } from '../ports';
import type { ReplyRecord } from '../result';
import { replyTimeoutMs } from '../smtp/timeouts';
import { RAW_TLS_WORDS } from '../smtp/tls-policy';
import type { SignalDeps, SignalOptions, SignalReport } from './types';

/** How long a silent host is waited for after our line or its last byte. */
export const FINGER_QUIET_MS = 2_000;
/** What is kept of a FINGER (raw) host's answer. */
export const FINGER_MAX_KEPT_BYTES = 4096;

export async function fingerSignal(
  target: Target,
  options: SignalOptions,
  deps: SignalDeps,
): Promise<SignalReport> {
  const transcript = deps.transcript ?? silentTranscript;
  const now = deps.now ?? Date.now;
  const timeoutMs = replyTimeoutMs(target.timeoutSeconds);
  const bound = (ms: number) =>
    options.deadline === undefined ? ms : Math.max(0, Math.min(ms, options.deadline - now()));
  const peer = peerName(target.host, target.port);
  const fail = (e: unknown): SignalReport => {
    const error = asDequeueError(e);
    return { outcome: outcomeOfError(error) as CommandOutcome, replies: [], messages: 0, error };
  };

  let socket;
  try {
    socket = await openTcp(target.host, target.port, bound(timeoutMs));
    if (target.tls === 'implicit') {
      socket = await startTls(
        target.host,
        target.port,
        { verify: target.tlsVerify, ca: deps.tlsCa, words: RAW_TLS_WORDS },
        bound(timeoutMs),
        socket,
        'implicit',
      );
    }
  } catch (e) {
    return fail(e);
  }
  transcript.line(target.name, '*', `connected to ${peer}`);

  const chunks: Buffer[] = [];
  let kept = 0;
  const heard = new Promise<void>((resolve) => {
    let quiet: NodeJS.Timeout;
    const hush = () => {
      clearTimeout(quiet);
      quiet = setTimeout(finish, Math.min(FINGER_QUIET_MS, bound(timeoutMs)));
    };
    const overall = setTimeout(finish, bound(timeoutMs));
    function finish(): void {
      clearTimeout(quiet);
      clearTimeout(overall);
      resolve();
    }
    socket.on('data', (chunk: Buffer) => {
      if (kept < FINGER_MAX_KEPT_BYTES) {
        const part = chunk.subarray(0, FINGER_MAX_KEPT_BYTES - kept);
        chunks.push(Buffer.from(part));
        kept += part.length;
      }
      hush();
    });
    socket.on('end', finish);
    socket.on('close', finish);
    socket.on('error', finish);
    hush();
  });

  // The line counts as sent once the kernel took it; a reset before then is a failure.
  const written = new Promise<Error | null | undefined>((resolve) => {
    for (const command of target.commands) transcript.line(target.name, 'C', command);
    if (!target.commands.length) return resolve(null);
    socket.write(target.commands.map((c) => `${c}\r\n`).join(''), resolve);
  });
  const [writeError] = await Promise.all([written, heard]);
  socket.destroy();
  if (writeError)
    return fail(
      new DequeueError('temporary', `${peer}: the line could not be sent: ${writeError.message}`, {
        cause: writeError,
      }),
    );

  const text = Buffer.concat(chunks).toString('utf8').replace(/\r\n/g, '\n').trimEnd();
  for (const line of text.split('\n').filter(Boolean)) transcript.line(target.name, 'S', line);
  const replies: ReplyRecord[] = target.commands.length
    ? [{ command: target.commands.join(' / '), code: null, text }]
    : [];
  return { outcome: 'signalled', replies, messages: 0, error: null };
}
