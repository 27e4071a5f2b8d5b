/**
 * A MailSink in front of another that hands it every message in canonical form: CRLF line ends
 * only (smtp/canonical-lines.ts). lambda/mail-receiver.ts puts it in front of the store and the
 * relay, so that what is stored and what is relayed are the same bytes, and neither holds a bare
 * LF or CR that a server downstream could read as the end of the data (SMTP smuggling).
 */
import { LineCanonicaliser } from '../smtp/canonical-lines';
import type { MailEnvelope, MailSink, MessageDraft, SinkTransaction, StoredMessage, TransactionStart } from '../ports';

export function canonicalSink(inner: MailSink): MailSink {
  const sink: MailSink = {
    async begin(envelope: MailEnvelope): Promise<MessageDraft> {
      return new CanonicalDraft(await inner.begin(envelope));
    },
  };
  if (!inner.transaction) return sink;
  const open = inner.transaction.bind(inner);
  return {
    ...sink,
    transaction(mail: TransactionStart): SinkTransaction {
      const tx = open(mail);
      return {
        recipient: (address) => tx.recipient(address),
        begin: async (envelope) => new CanonicalDraft(await tx.begin(envelope)),
        abandon: () => tx.abandon(),
      };
    },
  };
}

class CanonicalDraft implements MessageDraft {
  private readonly lines = new LineCanonicaliser();

  constructor(private readonly inner: MessageDraft) {}

  /** As the store behind: canonical lines change what is written, not whether a commit can be undone. */
  get withdrawable(): boolean | undefined {
    return this.inner.withdrawable;
  }

  write(chunks: readonly Buffer[]): Promise<void> {
    if (chunks.length === 1) return this.inner.write(this.lines.push(chunks[0]!));
    const out: Buffer[] = [];
    for (const chunk of chunks) for (const piece of this.lines.push(chunk)) out.push(piece);
    return this.inner.write(out);
  }

  async commit(): Promise<StoredMessage> {
    const rest = this.lines.end();
    if (rest.length) await this.inner.write(rest);
    return this.inner.commit();
  }

  abort(): Promise<void> {
    return this.inner.abort();
  }
}
