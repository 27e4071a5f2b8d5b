/**
 * Issue 17 item 2: after ATRN the provider may deliver only the customer's mail (RFC 2645
 * section 4). A scripted provider that also holds mail for other domains delivers it, pipelined
 * and not: every foreign recipient gets 550 5.7.1 and is counted in the result, the customer's
 * recipients are stored (and only they), and a message for strangers only is not stored at all.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createMailDirSink } from '../../cli/adapters/mail-dir-sink';
import { resultBlock } from '../../cli/result-lines';
import { createMailReceiver } from '../../lambda/core/odmr/reversed-session';
import { releaseSignal } from '../../lambda/core/signal/session';
import { AtrnProvider, type HeldMessage } from '../../peers/atrn-provider';
import { atrnTarget, credentials, readMailDir, tempDir } from '../core/odmr/odmr-fixtures';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const held = (n: number, to: string[]): HeldMessage => ({
  from: `sender${n}@origin.test`,
  to,
  text: Buffer.from(`Message-ID: <${n}@provider.test>\r\nSubject: ${n}\r\n\r\nbody ${n}\r\n`),
});

/** The customer's, another customer's, a subdomain, a case and trailing-dot variant. */
const queue = [
  held(0, ['alice@customer.test', 'victim@elsewhere.example', 'BOB@Customer.TEST.']),
  held(1, ['victim@elsewhere.example', 'someone@other-customer.test']),
  held(2, ['x@sales.customer.test', 'carol@customer.test']),
];

async function pull(pipelining: boolean, target: Record<string, unknown>) {
  const provider = await new AtrnProvider({ queue, pipelining }).start();
  cleanups.push(() => provider.stop());
  const tmp = await tempDir('dequeue-foreign-');
  cleanups.push(tmp.remove);
  const report = await releaseSignal(
    atrnTarget(provider.port, target),
    {},
    {
      credentials,
      helloName: 'mx.customer.test',
      receiver: createMailReceiver(createMailDirSink(tmp.path)),
    },
  );
  await provider.idle();
  return { provider, report, mail: await readMailDir(tmp.path) };
}

describe.each([
  ['not pipelined', false],
  ['pipelined (RFC 2920)', true],
])('foreign recipients after ATRN, %s', (_name, pipelining) => {
  it.each([
    ['ATRN names the domain', { command: 'ATRN customer.test' }],
    ['a bare ATRN with mail.domains', { command: 'ATRN', mail: { domains: ['Customer.Test.'] } }],
  ])("%s: 550 5.7.1 for the others, counted; the customer's stored", async (_how, target) => {
    const { provider, report, mail } = await pull(pipelining, target);
    const refusals = provider.customerReplies.filter((r) => r.startsWith('550'));
    expect(refusals).toHaveLength(4);
    for (const r of refusals)
      expect(r).toMatch(/^550 5\.7\.1 <[^>]+> not accepted: .*customer\.test/);
    expect(report.refusedRecipients).toBe(4);
    expect(report.messages).toBe(2);
    // Refused for good: the provider returns the foreign mail to its senders.
    expect(report.outcome).toBe('permanent-failure');
    expect(report.error?.message).toMatch(/victim@elsewhere\.example/);
    // Only the customer's recipients are stored, and the domains they were checked against.
    expect(mail.stored.map((s) => s.envelope.rcptTo)).toEqual([
      ['alice@customer.test', 'BOB@Customer.TEST.'],
      ['carol@customer.test'],
    ]);
    for (const s of mail.stored) expect(s.envelope.domains).toEqual(['customer.test']);
    // The message for strangers only was never accepted: nothing of it in the store.
    expect(provider.bouncedNumbers).toEqual([1]);
    expect(provider.waiting).toEqual([]);
    const line = resultBlock({
      target: 'odmr-test',
      outcome: report.outcome,
      cycle: 1,
      durationMs: 1,
      replies: report.replies,
      messages: report.messages,
      refusedRecipients: report.refusedRecipients,
      error: report.error?.message ?? null,
    });
    expect(line).toMatch(/2 message\(s\) stored, 4 recipient\(s\) refused: not the customer's/);
  });
});

describe('whose mail it is, in the configuration', () => {
  it('a bare ATRN without mail.domains is a configuration error naming the field', () => {
    expect(() => atrnTarget(366, { mail: {} })).toThrow(
      /test: mail\.domains: is required for a bare "ATRN"/,
    );
  });

  it('mail.domains must list every domain the ATRN command names', () => {
    expect(() =>
      atrnTarget(366, { command: 'ATRN a.test,b.test', mail: { domains: ['a.test'] } }),
    ).toThrow(/test: mail\.domains: does not list "b\.test"/);
  });

  it('an ATRN argument that is no domain name is refused', () => {
    expect(() => atrnTarget(366, { command: 'ATRN a.test,,b.test' })).toThrow(
      /test: command: ATRN names "": each must be a domain name/,
    );
  });
});
