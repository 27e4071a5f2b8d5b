/**
 * The relay sink against a real SMTP server standing in for the customer's own MX (smtp-server,
 * the customer side after the turn, as docs/real-servers.md notes): the provider delivers to us, we
 * forward each message, and the provider hears 250 only after the relay's.
 */
import { SMTPServer, type SMTPServerDataStream } from 'smtp-server';
import { afterEach, describe, expect, it } from 'vitest';
import { createMailDirSink } from '../../cli/adapters/mail-dir-sink';
import { createRelaySink } from '../../lambda/adapters/relay-sink';
import { createMailReceiver } from '../../lambda/core/odmr/reversed-session';
import { releaseSignal } from '../../lambda/core/signal/session';
import { AtrnProvider, type AtrnProviderOptions } from '../../peers/atrn-provider';
import { ScriptedMailServer } from '../../peers/scripted-mail-server';
import {
  atrnTarget,
  credentials,
  heldMessage,
  readMailDir,
  tempDir,
} from '../core/odmr/odmr-fixtures';
import { watchLeftovers } from '../support/no-leftovers';

interface Relayed {
  from: string;
  to: string[];
  text: Buffer;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function customerMx(
  opts: { refuseRcpt?: (to: string) => Error | null; finalReply?: () => Error | null } = {},
) {
  const received: Relayed[] = [];
  const cutShort: number[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    size: 100 * 1024 * 1024,
    onRcptTo(address, _session, cb) {
      cb(opts.refuseRcpt?.(address.address) ?? undefined);
    },
    onData(stream: SMTPServerDataStream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const text = Buffer.concat(chunks);
        const refusal = opts.finalReply?.() ?? null;
        if (!refusal)
          received.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            text,
          });
        cb(refusal);
      });
      stream.on('error', () => cutShort.push(Buffer.concat(chunks).length));
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as { port: number }).port;
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port, received, cutShort };
}

async function pullVia(
  sinkPort: number,
  providerOptions: AtrnProviderOptions,
  archiveDir?: string,
) {
  const provider = await new AtrnProvider(providerOptions).start();
  cleanups.push(() => provider.stop());
  const sink = createRelaySink({
    relay: { host: '127.0.0.1', port: sinkPort, tls: 'opportunistic', tlsVerify: true },
    helloName: 'dequeue.customer.test',
    archive: archiveDir ? createMailDirSink(archiveDir) : undefined,
  });
  const report = await releaseSignal(
    atrnTarget(provider.port),
    {},
    { credentials, helloName: 'mx.customer.test', receiver: createMailReceiver(sink) },
  );
  await provider.idle();
  return { provider, report };
}

/** The relay got the provider's bytes after our trace header (one header, folded lines start with a tab). */
function withoutTrace(text: Buffer): Buffer {
  let end = text.indexOf('\r\n') + 2;
  while (text[end] === 0x09) end = text.indexOf('\r\n', end) + 2;
  return text.subarray(end);
}

describe('relay sink', () => {
  it("forwards every message with its envelope, line ends made CRLF (no smuggling); the provider's 250 follows the relay's", async () => {
    const mx = await customerMx();
    const queue = [heldMessage(0, 300_000), heldMessage(1), heldMessage(2)];
    const { provider, report } = await pullVia(mx.port, { queue });
    expect(report).toMatchObject({ outcome: 'signalled', messages: 3, error: null });
    expect(provider.waiting).toEqual([]);
    expect(mx.received).toHaveLength(3);
    for (const [i, got] of mx.received.entries()) {
      expect(got.from).toBe(queue[i]!.from);
      expect(got.to).toEqual(queue[i]!.to);
      expect(got.text.toString('latin1')).toMatch(/^Received: from provider\.test /);
      const canonical = queue[i]!.text.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n');
      expect(withoutTrace(got.text).toString('latin1') === canonical).toBe(true);
    }
  });

  it("a recipient the relay refuses for good (550) gets the relay's own 550; the message still goes to its other recipient", async () => {
    const mx = await customerMx({
      refuseRcpt: (to) =>
        to === 'user1@customer.test'
          ? Object.assign(new Error('No such user'), { responseCode: 550 })
          : null,
    });
    const { provider, report } = await pullVia(mx.port, {
      queue: [heldMessage(0), heldMessage(1), heldMessage(2)],
    });
    expect(report.outcome).toBe('permanent-failure');
    expect(report.messages).toBe(3);
    expect(report.error?.message).toMatch(/<user1@customer\.test>.*550 No such user/);
    expect(provider.customerReplies).toContain('550 No such user');
    expect(provider.waiting).toEqual([]);
    expect(mx.received.map((m) => [m.from, m.to])).toEqual([
      ['sender0@origin.test', ['user0@customer.test', 'other0@customer.test']],
      ['sender1@origin.test', ['other1@customer.test']],
      ['sender2@origin.test', ['user2@customer.test', 'other2@customer.test']],
    ]);
  });

  it('a relay that answers 451 to the final dot: 451 to the provider, which keeps it; the archive copy is withdrawn', async () => {
    let n = 0;
    const mx = await customerMx({
      finalReply: () =>
        ++n === 2 ? Object.assign(new Error('Try later'), { responseCode: 451 }) : null,
    });
    const dir = await tempDir('dequeue-relay-');
    cleanups.push(dir.remove);
    const { provider, report } = await pullVia(
      mx.port,
      { queue: [heldMessage(0), heldMessage(1), heldMessage(2)] },
      dir.path,
    );
    expect(report.outcome).toBe('temporary-failure');
    expect(report.messages).toBe(1);
    expect(provider.waiting.sort()).toEqual([1, 2]);
    // The archive keeps what the relay took, as a record outside the undelivered set.
    expect((await readMailDir(dir.path)).stored).toEqual([]);
    const archived = await readMailDir(dir.path, 'odmr-test/relayed');
    expect(archived.others).toEqual([]);
    expect(archived.stored.map((f) => f.envelope.mailFrom)).toEqual(['sender0@origin.test']);
    expect(archived.stored[0]!.envelope.relayedTo).toBe(`127.0.0.1:${mx.port}`);
  });

  it('a provider cut in the middle of DATA cuts the relayed copy too: the relay delivers nothing of it, and no timer of it is left', async () => {
    const mx = await customerMx();
    const leftovers = watchLeftovers();
    const { provider, report } = await pullVia(mx.port, {
      queue: [heldMessage(0, 200_000)],
      faults: { cutInData: { message: 0, afterBytes: 150_000 } },
    });
    expect(report.outcome).toBe('temporary-failure');
    expect(provider.waiting).toEqual([0]);
    // The cut connection's reply timers (up to 10 minutes for the final dot) went with it.
    expect(await leftovers.settle()).toEqual([]);
    await new Promise((r) => setTimeout(r, 100));
    expect(mx.received).toEqual([]);
  });

  it('a relay that cannot be reached: 451 to each RCPT, the provider keeps the message', async () => {
    const { provider, report } = await pullVia(1, { queue: [heldMessage(0)] });
    expect(report.outcome).toBe('temporary-failure');
    expect(report.error?.message).toMatch(/cannot connect to 127\.0\.0\.1:1/);
    expect(
      provider.customerReplies.filter((r) =>
        r.startsWith('451 4.4.1 The destination cannot take mail now'),
      ),
    ).toHaveLength(2);
    expect(provider.waiting).toEqual([0]);
  });

  it('a relay whose replies are out of step (354 to RCPT, 354 to the final dot) is not believed: 451, the provider keeps the mail, nothing left', async () => {
    for (const fault of [
      { rcpt: () => '354 Go ahead' },
      { final: () => '354 End data with <CR><LF>.<CR><LF>' },
    ]) {
      const mx = await new ScriptedMailServer(fault).start();
      cleanups.push(() => mx.stop());
      const leftovers = watchLeftovers();
      const { provider, report } = await pullVia(mx.port, { queue: [heldMessage(0)] });
      expect(report.outcome).toBe('temporary-failure');
      expect(report.error?.message).toMatch(
        /answered (RCPT|end of data) with 354, a reply that command cannot have/,
      );
      // Never a 554 to the provider for it: it keeps the message, nobody bounces it.
      expect(provider.waiting).toEqual([0]);
      expect(provider.customerReplies.filter((r) => r.startsWith('554'))).toEqual([]);
      await provider.stop();
      expect(await leftovers.settle()).toEqual([]);
    }
  });
});
