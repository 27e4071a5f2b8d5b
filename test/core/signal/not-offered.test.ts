/**
 * A provider that does not offer the release command (OpenSMTPD has no ETRN: `500 5.5.1 Invalid
 * command`): the outcome is permanent-failure, and the result says why in words a user can act
 * on, with what the provider's EHLO does list.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseTarget } from '../../../lambda/core/config';
import { releaseSignal } from '../../../lambda/core/signal/session';
import { ScriptedProvider } from '../../../peers/scripted-provider';

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(stops.splice(0).map((stop) => stop()));
});

async function signalTo(extensions: string[]) {
  const provider = await new ScriptedProvider({
    extensions,
    etrn: { 'customer.test': '500 5.5.1 Invalid command' },
  }).start();
  stops.push(() => provider.stop());
  return releaseSignal(
    parseTarget(
      {
        name: 't',
        host: '127.0.0.1',
        port: provider.port,
        tls: 'none',
        command: 'ETRN customer.test',
        timeoutSeconds: 5,
      },
      'test',
    ),
    {},
    { credentials: { get: async () => ({ username: 'u', password: 'p' }) }, helloName: 'mx.test' },
  );
}

describe('a provider without ETRN', () => {
  it('says the provider does not offer ETRN and lists what its EHLO offers', async () => {
    const report = await signalTo(['PIPELINING', '8BITMIME', 'SIZE 36700160']);
    expect(report.outcome).toBe('permanent-failure');
    expect(report.replies).toEqual([
      { command: 'ETRN customer.test', code: 500, text: '5.5.1 Invalid command' },
    ]);
    expect(report.error?.message).toMatch(
      /does not offer ETRN \(its EHLO lists PIPELINING, 8BITMIME, SIZE\): 500 5\.5\.1 Invalid command/,
    );
  });

  it('a 500 from a provider that does list ETRN is only the reply', async () => {
    const report = await signalTo(['PIPELINING', 'ETRN']);
    expect(report.outcome).toBe('permanent-failure');
    expect(report.error).toBeNull();
  });
});
