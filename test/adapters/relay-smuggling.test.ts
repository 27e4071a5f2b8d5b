/**
 * SMTP smuggling through the relay (issue: a provider's message holding `\n.\r\nMAIL FROM:...`
 * was forwarded byte for byte, and a relay that ends DATA at LF "." CRLF ran a second transaction
 * from our trusted address). What we pass on is canonical and stuffed, whatever we received; the
 * stored copy is the text as received.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createMailDirSink } from '../../cli/adapters/mail-dir-sink';
import { parseSettings } from '../../lambda/core/config';
import { releaseSignal } from '../../lambda/core/signal/session';
import { mailReceiverFor } from '../../lambda/mail-receiver';
import { AtrnProvider, type HeldMessage } from '../../peers/atrn-provider';
import { ScriptedMailServer } from '../../peers/scripted-mail-server';
import {
  atrnTarget,
  canonicalText,
  credentials,
  heldMessage,
  providerBytes,
  readMailDir,
  tempDir,
} from '../core/odmr/odmr-fixtures';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const attack: HeldMessage = {
  from: 'outsider@origin.test',
  to: ['user@customer.test'],
  text: Buffer.from(
    'Subject: hello\r\n\r\nharmless text\n.\r\nMAIL FROM:<ceo@customer.test>\r\nRCPT TO:<victim@customer.test>\r\nDATA\r\n' +
      'Subject: smuggled\r\n\r\npay the invoice\r\n.\r\n' +
      // the same with a bare CR, for servers that split there
      'more\r.\r\nMAIL FROM:<ceo@customer.test>\r\n',
    'latin1',
  ),
};

async function pull(queue: HeldMessage[], relay: ScriptedMailServer, archive?: string) {
  const provider = await new AtrnProvider({ queue }).start();
  cleanups.push(() => provider.stop());
  const settings = parseSettings(
    { mail: { relay: { host: '127.0.0.1', port: relay.port, tls: 'none' } } },
    'test',
  );
  const receiver = mailReceiverFor(archive ? createMailDirSink(archive) : undefined, settings)!;
  const report = await releaseSignal(
    atrnTarget(provider.port),
    {},
    { credentials, helloName: 'mx.customer.test', receiver },
  );
  await provider.idle();
  return { provider, report };
}

describe('relay: what we pass on is canonical', () => {
  it('a smuggling attempt reaches a relay that ends DATA at LF "." CRLF as one message, never as a second transaction', async () => {
    const relay = await new ScriptedMailServer({ naiveEndOfData: true }).start();
    cleanups.push(() => relay.stop());
    const { report } = await pull([attack], relay);
    expect(report).toMatchObject({ outcome: 'signalled', messages: 1 });
    expect(relay.accepted).toHaveLength(1);
    expect(relay.accepted[0]!.mailFrom).toBe('outsider@origin.test');
    expect(relay.lines.filter((l) => l.startsWith('MAIL FROM'))).toEqual([
      'MAIL FROM:<outsider@origin.test>',
    ]);
    expect(relay.accepted[0]!.text.toString('latin1')).toContain(
      'harmless text\r\n.\r\nMAIL FROM:<ceo@customer.test>\r\n',
    );
  });

  it('with a mail directory too: the stored copy is the text as received, the relayed copy that text in CRLF line ends, stuffed', async () => {
    const relay = await new ScriptedMailServer({ naiveEndOfData: true }).start();
    cleanups.push(() => relay.stop());
    const dir = await tempDir('dequeue-smuggle-');
    cleanups.push(dir.remove);
    const queue = [attack, heldMessage(1)];
    const { report } = await pull(queue, relay, dir.path);
    expect(report).toMatchObject({ outcome: 'signalled', messages: 2 });
    const { stored, others } = await readMailDir(dir.path, 'odmr-test/relayed');
    expect(others).toEqual([]);
    expect(stored.map((f) => f.envelope.mailFrom)).toEqual(queue.map((m) => m.from));
    // Stored: after our trace header, the provider's bytes, the bare LF, the bare CR and the
    // "\n.\r\n" kept; `bytes` is the file's size.
    for (const [i, f] of stored.entries()) {
      expect(providerBytes(f).equals(queue[i]!.text)).toBe(true);
      expect(f.envelope.bytes).toBe(f.message.length);
    }
    // Relayed: one transaction per message, the same text (trace header and all) in CRLF line
    // ends only, every line that starts with a dot stuffed.
    expect(relay.accepted.map((a) => a.mailFrom)).toEqual(queue.map((m) => m.from));
    expect(relay.lines.filter((l) => l.startsWith('MAIL FROM'))).toHaveLength(2);
    for (const [i, a] of relay.accepted.entries()) {
      expect(a.text.equals(canonicalText(stored[i]!.message))).toBe(true);
      expect(/\r(?!\n)|(?<!\r)\n/.test(a.wire.toString('latin1'))).toBe(false);
    }
    expect(relay.accepted[0]!.wire.toString('latin1')).toContain(
      'harmless text\r\n..\r\nMAIL FROM:<ceo@customer.test>\r\n',
    );
    expect(relay.accepted[0]!.wire.toString('latin1')).toContain(
      'more\r\n..\r\nMAIL FROM:<ceo@customer.test>\r\n',
    );
  });
});
