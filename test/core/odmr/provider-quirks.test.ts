/**
 * What real ODMR providers do after the turn that a plain reading of RFC 2645 does not prepare
 * for, with the in-process provider (peers/atrn-provider.ts) scripted to do it: Exim's final dot
 * and QUIT in one write followed by its half-close, and a provider with nothing to send that
 * closes or says QUIT at once. What a user sees: the message stored and counted, the provider's
 * queue empty, and "no mail" rather than a success that brought nothing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createMailDirSink } from '../../../cli/adapters/mail-dir-sink';
import { createMailReceiver } from '../../../lambda/core/odmr/reversed-session';
import { releaseSignal } from '../../../lambda/core/signal/session';
import { AtrnProvider, type AtrnProviderOptions } from '../../../peers/atrn-provider';
import {
  atrnTarget,
  credentials,
  heldMessage,
  providerBytes,
  readMailDir,
  tempDir,
} from './odmr-fixtures';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function pull(providerOptions: AtrnProviderOptions) {
  const provider = await new AtrnProvider(providerOptions).start();
  cleanups.push(() => provider.stop());
  const tmp = await tempDir('dequeue-odmr-quirks-');
  cleanups.push(tmp.remove);
  const transcript: string[] = [];
  const report = await releaseSignal(
    atrnTarget(provider.port),
    {},
    {
      credentials,
      helloName: 'mx.customer.test',
      receiver: createMailReceiver(createMailDirSink(tmp.path)),
      transcript: { line: (_t, d, text) => transcript.push(`${d} ${text}`) },
    },
  );
  await provider.idle();
  return { provider, report, mail: await readMailDir(tmp.path), transcript };
}

describe('ODMR providers after the turn', () => {
  it('the final dot and QUIT in one write, then a half-close: the message is stored, acknowledged and counted', async () => {
    const queue = [heldMessage(1), heldMessage(2)];
    const { provider, report, mail, transcript } = await pull({
      queue,
      faults: { quitWithLastDot: true },
    });
    expect(report, transcript.join('\n')).toMatchObject({
      outcome: 'signalled',
      messages: 2,
      error: null,
    });
    expect(mail.stored.map((f) => providerBytes(f))).toEqual(queue.map((m) => m.text));
    // The provider read our 250 for the last message after it had half-closed, then our 221.
    expect(provider.acknowledged.map((a) => a.number)).toEqual([0, 1]);
    expect(provider.waiting).toEqual([]);
    expect(provider.customerReplies.at(-1)).toMatch(/^221 /);
  });

  it('nothing to send, and the provider says QUIT at once: no-mail', async () => {
    const { report, mail } = await pull({ queue: [] });
    expect(report).toMatchObject({ outcome: 'no-mail', messages: 0, error: null });
    expect(report.replies.at(-1)).toMatchObject({ command: 'ATRN', code: 250 });
    expect(mail.stored).toEqual([]);
  });

  it('nothing to send, and the provider closes right after its 250: no-mail, not a failure', async () => {
    const { report, mail } = await pull({ queue: [], faults: { closeAfterAtrn: true } });
    expect(report).toMatchObject({ outcome: 'no-mail', messages: 0, error: null });
    expect(mail.stored).toEqual([]);
  });
});
