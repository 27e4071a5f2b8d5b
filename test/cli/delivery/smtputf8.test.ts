/**
 * `deliver` and a message the provider sent with SMTPUTF8 (RFC 6531; its envelope record says
 * `"smtputf8": true`): passed on with MAIL's SMTPUTF8 to a server that offers it; to one that does
 * not, never sent, and failed for every recipient (553 5.6.7) so that its sender is owed a DSN.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createMailDirSink } from '../../../cli/adapters/mail-dir-sink';
import type { MailEnvelope } from '../../../lambda/core/ports';
import { ScriptedMailServer } from '../../../peers/scripted-mail-server';
import { tempDir } from '../../core/odmr/odmr-fixtures';
import { deliverTo } from './mail-dir-delivery';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const ID = '20261130T100001000Z-0000000000aa';

async function storedInternational(): Promise<string> {
  const dir = await tempDir('dequeue-deliver-utf8-');
  cleanups.push(dir.remove);
  const envelope: MailEnvelope = {
    id: ID,
    mailFrom: 'sender@origin.test',
    rcptTo: ['josé@customer.test'],
    body: '8BITMIME',
    smtputf8: true,
    receivedAt: new Date().toISOString(),
    provider: 'provider.test:366',
    target: 'odmr',
    domains: ['customer.test'],
    heloName: 'provider.test',
    tls: true,
    traceBytes: 0,
  };
  const draft = await createMailDirSink(dir.path).begin(envelope);
  await draft.write([Buffer.from('Subject: café\r\n\r\ncafé\r\n', 'utf8')]);
  await draft.commit();
  return dir.path;
}

async function server(extensions: string[]) {
  const s = await new ScriptedMailServer({ extensions }).start();
  cleanups.push(() => s.stop());
  return s;
}

describe('deliver: a message that needs SMTPUTF8', () => {
  it('goes with MAIL ... SMTPUTF8 to a server that offers it', async () => {
    const root = await storedInternational();
    const mx = await server(['PIPELINING', '8BITMIME', 'SMTPUTF8']);
    const out = await deliverTo(root, mx.port, '--json');
    expect(out.status, out.stderr).toBe(0);
    expect(out.json).toMatchObject([{ outcome: 'delivered' }]);
    expect(mx.lines.find((l) => l.startsWith('MAIL '))).toBe(
      'MAIL FROM:<sender@origin.test> BODY=8BITMIME SMTPUTF8',
    );
    // The scripted server reads bytes as latin1: the UTF-8 address went out as UTF-8.
    const rcpt = mx.lines.find((l) => l.startsWith('RCPT '));
    expect(Buffer.from(rcpt ?? '', 'latin1').toString('utf8')).toBe('RCPT TO:<josé@customer.test>');
  });

  it('fails for every recipient, unsent, at a server that does not offer it', async () => {
    const root = await storedInternational();
    const mx = await server(['PIPELINING', '8BITMIME']);
    const out = await deliverTo(root, mx.port, '--json');
    expect(out.status).toBe(1);
    expect(out.json).toMatchObject([
      {
        outcome: 'failed',
        recipients: [
          {
            address: 'josé@customer.test',
            code: 553,
            text: expect.stringMatching(/^5\.6\.7 not sent: .* does not offer SMTPUTF8/),
          },
        ],
      },
    ]);
    expect(mx.lines.some((l) => l.startsWith('MAIL '))).toBe(false);
    expect(await readdir(join(root, 'odmr', 'failed'))).toContain(`${ID}.eml`);
  });
});
