/**
 * SMTP smuggling through the relay (issue: a provider's message holding `\n.\r\nMAIL FROM:...`
 * was forwarded byte for byte, and a relay that ends DATA at LF "." CRLF ran a second transaction
 * from our trusted address). What we pass on is canonical and stuffed, and the stored copy and the
 * relayed copy are the same bytes.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createMailDirSink } from '../../cli/adapters/mail-dir-sink';
import { parseSettings } from '../../lambda/core/config';
import { releaseSignal } from '../../lambda/core/signal/session';
import { mailReceiverFor } from '../../lambda/mail-receiver';
import { AtrnProvider, type HeldMessage } from '../../peers/atrn-provider';
import { ScriptedMailServer } from '../../peers/scripted-mail-server';
import { atrnTarget, credentials, heldMessage, tempDir } from '../core/odmr/odmr-fixtures';

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
  const settings = parseSettings({ mail: { relay: { host: '127.0.0.1', port: relay.port, tls: 'none' } } }, 'test');
  const receiver = mailReceiverFor(archive ? createMailDirSink(archive) : undefined, settings)!;
  const report = await releaseSignal(atrnTarget(provider.port), {}, { credentials, helloName: 'mx.customer.test', receiver });
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
    expect(relay.lines.filter((l) => l.startsWith('MAIL FROM'))).toEqual(['MAIL FROM:<outsider@origin.test>']);
    expect(relay.accepted[0]!.text.toString('latin1')).toContain('harmless text\r\n.\r\nMAIL FROM:<ceo@customer.test>\r\n');
  });

  it('the stored copy and the relayed copy are the same bytes, CRLF line ends only', async () => {
    const relay = await new ScriptedMailServer().start();
    cleanups.push(() => relay.stop());
    const dir = await tempDir('dequeue-smuggle-');
    cleanups.push(dir.remove);
    const { report } = await pull([attack, heldMessage(1)], relay, dir.path);
    expect(report).toMatchObject({ outcome: 'signalled', messages: 2 });
    const names = (await readdir(join(dir.path, 'odmr-test'))).filter((n) => n.endsWith('.eml')).sort();
    const stored = await Promise.all(names.map((n) => readFile(join(dir.path, 'odmr-test', n))));
    expect(relay.accepted.map((a) => a.text.toString('latin1'))).toEqual(stored.map((s) => s.toString('latin1')));
    for (const s of stored) expect(/\r(?!\n)|(?<!\r)\n/.test(s.toString('latin1'))).toBe(false);
  });
});
