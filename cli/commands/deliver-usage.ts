/** `dequeue deliver --help`: the flags, what each does, and the exit status (deliver.ts). */
import { DEFAULT_CONNECTIONS, MAX_CONNECTIONS } from '../delivery/run-connection';

export const DELIVER_USAGE = `Usage:
  dequeue deliver (--mail-dir DIR | --bucket NAME [--prefix mail/]) --to URL
                  [--target NAME]... [--dry-run] [--json] [--verbose]
                  [--tls none|opportunistic|required|implicit]
                  [--tls-verify | --no-tls-verify] [--tls-ca FILE]
                  [--helo-name NAME] [--timeout SECONDS] [--connections N]
                  [--give-up-after DURATION] [--bounce-via URL]
                  [--config FILE]

Hands the mail that ATRN stored to your mail server, oldest first, each message with its own
envelope (MAIL FROM, every RCPT TO). A message leaves the store only once every recipient has a
final answer: all accepted, it moves to DIR/<target>/delivered/ (S3: it is deleted; the versioned
bucket keeps the old version); refused for good (5xx) for some, to DIR/<target>/failed/ (S3:
<prefix>failed/) with the server's replies beside it. A 4xx leaves it, or the recipients still
waiting, for the next run. A recipient refused for good, or still waiting after --give-up-after,
gets its sender a delivery status notification (docs/bounces.md), never the null reverse-path.

  --mail-dir DIR   the directory a run stored ATRN mail into (its --mail-dir)
  --bucket NAME    the S3 bucket the function stored into (AWS access: AWS_PROFILE, AWS_REGION,
                   AWS_ENDPOINT_URL)
  --prefix P       the key prefix in that bucket (default mail/)
  --to URL         smtp://host[:port] (STARTTLS), smtps://host[:port] (TLS from the first
                   byte), lmtp://host:port, or lmtp:/path/to/socket (e.g. Dovecot's)
  --target NAME    only this target's mail (repeatable)
  --dry-run        list what would be delivered; connect to nothing, change nothing
  --connections N  connections to the server at once, 1 to ${MAX_CONNECTIONS} (default ${DEFAULT_CONNECTIONS}: polite to a small
                   server). Messages still start oldest first, each once the server has answered
                   the envelope of the one before; with 1 they are also accepted in that order
  --json           one JSON object per message on stdout; logs on stderr
  --verbose        the SMTP transcript on stderr
  --tls MODE       opportunistic: STARTTLS when offered, the certificate not verified (RFC
                   7435), cleartext (said on stderr) when not offered; required: STARTTLS
                   and a verified certificate, or nothing is sent (the mail stays, deferred);
                   implicit: TLS from the first byte (smtps://); none: never TLS.
                   Default: opportunistic for a loopback host (127.0.0.1, ::1, localhost),
                   required for any other host, implicit for smtps://, none for lmtp
  --tls-verify, --no-tls-verify
                   verify the certificate (chain and name) or not; default: verify for
                   required and implicit, not for opportunistic
  --tls-ca FILE    trust the CA certificates (PEM) in FILE instead of the system's (your own
                   CA, or a self-signed certificate itself); implies --tls-verify
  --helo-name NAME the name we give in EHLO/LHLO (default: this machine's host name)
  --config FILE    the configuration document: each target's domains (its ATRN command's or
                   mail.domains) are what its recipients are checked against. Without it, the
                   domains each envelope recorded when it was received; an envelope of an older
                   version, which records none, is then not sent (deferred). A recipient outside
                   them is never sent: the message goes to failed/ with the reason
  --timeout SECONDS
                   the longest wait for the server, each time: connecting, the greeting, each
                   reply (default: RFC 5321's, 5 minutes; 10 for the answer after the final dot)
  --give-up-after DURATION
                   give up a recipient still waiting this long after we accepted the message,
                   and notify its sender: 5d, 36h, 90m, 4d12h (default 5d, RFC 5321 4.5.4.1)
  --bounce-via URL smtp://host[:port] or smtps://host[:port]: the server that relays the
                   notifications (default: the --to server; required when --to is LMTP)
  -h, --help       this text

Exit status: 0 nothing failed or was deferred; 1 something failed or was deferred; 2 a usage
error (a --target with no folder in the --mail-dir is a typo), or a store that cannot be used;
75 nothing failed or was deferred, but mail was left to another run that holds it (a lock, a
claim): this run did not deliver it (sysexits.h EX_TEMPFAIL); 130 / 143 after SIGINT / SIGTERM:
the messages on the wire get their answers and marks, no further one starts, every connection
ends with QUIT; a second signal exits at once.`;
