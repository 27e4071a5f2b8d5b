/**
 * The relay answers each recipient itself (issue 9 item 10): every RCPT the provider sends is
 * forwarded before the provider gets its reply, so one refused or busy address does not refuse
 * the message for the others. 8-bit mail is not sent to a relay without 8BITMIME, and the shared
 * handshake's rules hold for the relay: a 4xx to EHLO is not a reason to say HELO; STARTTLS
 * refused goes on unencrypted only when "opportunistic".
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseSettings, type TlsMode } from '../../lambda/core/config';
import { releaseSignal } from '../../lambda/core/signal/session';
import { mailReceiverFor } from '../../lambda/mail-receiver';
import { AtrnProvider, type HeldMessage } from '../../peers/atrn-provider';
import {
  ScriptedMailServer,
  type ScriptedMailServerOptions,
} from '../../peers/scripted-mail-server';
import { atrnTarget, credentials, heldMessage } from '../core/odmr/odmr-fixtures';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function pull(
  queue: HeldMessage[],
  relayOptions: ScriptedMailServerOptions,
  tls: TlsMode = 'none',
) {
  const relay = await new ScriptedMailServer(relayOptions).start();
  const provider = await new AtrnProvider({ queue }).start();
  cleanups.push(
    () => relay.stop(),
    () => provider.stop(),
  );
  const settings = parseSettings(
    { mail: { relay: { host: '127.0.0.1', port: relay.port, tls } } },
    'test',
  );
  const report = await releaseSignal(
    atrnTarget(provider.port),
    {},
    { credentials, helloName: 'mx.customer.test', receiver: mailReceiverFor(undefined, settings)! },
  );
  await provider.idle();
  return { relay, provider, report };
}

const three = (): HeldMessage => ({
  ...heldMessage(0),
  to: ['ok@customer.test', 'busy@customer.test', 'gone@customer.test'],
});

describe('relay: recipients one by one', () => {
  it('250, 451 and 550 from the relay reach the provider as such: the message goes to the first, waits for the second, bounces for the third', async () => {
    const { relay, provider, report } = await pull([three()], {
      rcpt: (a) =>
        a.startsWith('busy')
          ? '451 4.2.1 mailbox busy'
          : a.startsWith('gone')
            ? '550 5.1.1 no such user'
            : '250 2.1.5 Ok',
    });
    expect(relay.accepted.map((m) => m.rcptTo)).toEqual([['ok@customer.test']]);
    expect(provider.customerReplies).toEqual(
      expect.arrayContaining(['451 4.2.1 mailbox busy', '550 5.1.1 no such user']),
    );
    // The provider still holds the message for the busy recipient only.
    expect(provider.acknowledged).toHaveLength(1);
    expect(provider.waiting).toEqual([0]);
    expect(report).toMatchObject({ outcome: 'permanent-failure', messages: 1 });
    expect(report.error?.message).toMatch(/<gone@customer\.test>: 550 5\.1\.1 no such user/);
    expect(report.error?.message).toMatch(
      /put off by the destination.*<busy@customer\.test>: 451 4\.2\.1 mailbox busy/,
    );
  });

  it('a message declared 8-bit is not sent to a relay without 8BITMIME: 451, the provider keeps it, the result says why', async () => {
    const { relay, provider, report } = await pull(
      [{ ...heldMessage(0), body: '8BITMIME' }, heldMessage(1)],
      { extensions: ['PIPELINING'] },
    );
    expect(relay.accepted).toEqual([]);
    expect(relay.lines.filter((l) => l.startsWith('MAIL'))).toEqual([]);
    expect(provider.waiting).toContain(0);
    expect(report.outcome).toBe('temporary-failure');
    expect(report.error?.message).toMatch(/does not offer 8BITMIME and the message is 8-bit/);
  });

  it('a 4xx to EHLO is a refusal for now, not a reason to say HELO: 451, the provider keeps the message', async () => {
    const { relay, provider, report } = await pull([heldMessage(0)], {
      replies: { EHLO: '421 4.3.2 too busy' },
    });
    expect(relay.lines.some((l) => l.startsWith('HELO'))).toBe(false);
    expect(provider.waiting).toEqual([0]);
    expect(report.outcome).toBe('temporary-failure');
    expect(report.error?.message).toMatch(/EHLO refused by relay 127\.0\.0\.1:\d+: 421/);
  });

  it('STARTTLS refused: "opportunistic" goes on unencrypted and delivers; "required" does not send the message', async () => {
    const refusing = {
      extensions: ['PIPELINING', '8BITMIME', 'STARTTLS'],
      replies: { STARTTLS: '454 4.7.0 TLS not available' },
    };
    const open = await pull([heldMessage(0)], refusing, 'opportunistic');
    expect(open.report).toMatchObject({ outcome: 'signalled', messages: 1 });
    expect(open.relay.accepted).toHaveLength(1);

    const strict = await pull([heldMessage(1)], refusing, 'required');
    expect(strict.relay.accepted).toEqual([]);
    expect(strict.provider.waiting).toEqual([0]);
    expect(strict.report.outcome).toBe('temporary-failure');
    expect(strict.report.error?.message).toMatch(/STARTTLS refused by relay .*454/);
  });
});
