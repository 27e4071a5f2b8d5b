/**
 * Mail stored the way ATRN stores it, for the `deliver` tests: written through the real sinks
 * (the mail directory, S3), so the layout under test is the one the product writes.
 */
import type { MailSink } from '../../../lambda/core/ports';
import type { MailEnvelope } from '../../../lambda/core/ports';

export interface StoredMessage {
  readonly id: string;
  readonly messageId: string;
  readonly mailFrom: string;
  readonly rcptTo: readonly string[];
  readonly text: Buffer;
}

let clock = Date.parse('2026-11-30T10:00:00Z');

/** A message whose text has what transparency must survive: dot lines, a bare LF, 8-bit. */
export function message(
  n: number,
  options: { from?: string; to?: readonly string[]; bodyBytes?: number; target?: string } = {},
): StoredMessage {
  const date = new Date((clock += 1000));
  const id = `${date.toISOString().replace(/[-:.]/g, '')}-${n.toString(16).padStart(12, '0')}`;
  const messageId = `<${n}.${id}@origin.test>`;
  const filler = 'x'
    .repeat(70)
    .concat('\r\n')
    .repeat(Math.ceil((options.bodyBytes ?? 200) / 72));
  const text = Buffer.from(
    `Message-ID: ${messageId}\r\nSubject: stored ${n}\r\n\r\n.\r\n..two\r\n.leading\r\nbare LF\n.after it\r\n\xe9t\xe9\r\n${filler}`,
    'latin1',
  );
  return {
    id,
    messageId,
    mailFrom: options.from ?? `sender${n}@origin.test`,
    rcptTo: options.to ?? [`user${n}@customer.test`],
    text,
  };
}

/** Store messages into `sink` under `target`, as received (bare LF and all), as the receiver stores them. */
export async function store(
  sink: MailSink,
  target: string,
  messages: readonly StoredMessage[],
): Promise<void> {
  for (const m of messages) {
    const envelope: MailEnvelope = {
      id: m.id,
      mailFrom: m.mailFrom,
      rcptTo: m.rcptTo,
      body: '8BITMIME',
      receivedAt: new Date().toISOString(),
      provider: 'provider.test:366',
      target,
      // As the receiver records them: the customer's domains its recipients were accepted for.
      domains: [...new Set(m.rcptTo.map((r) => r.slice(r.lastIndexOf('@') + 1).toLowerCase()))],
      heloName: 'provider.test',
      tls: false,
      traceBytes: 0,
    };
    const draft = await sink.begin(envelope);
    await draft.write([m.text]);
    await draft.commit();
  }
}
