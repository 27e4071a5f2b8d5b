/**
 * The relay's TLS (`mail.relay.tls`, `tlsVerify`, `tlsCa`): the same policy as `deliver --tls`,
 * from the configuration document as a user writes it. A provider (peers/atrn-provider.ts)
 * delivers one held message after ATRN; the relay is a scripted server (the customer's MX) with a
 * certificate the system does not trust (signed by the loopback peers' own CA, peers/tls/), one
 * without STARTTLS, or a plain port where implicit TLS was configured.
 *
 * What a user notices: the message relayed (the provider's 250) or kept by the provider (451,
 * the result's error saying why and which field to change); under `required`, nothing said to
 * the relay after EHLO.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createRelaySink } from '../../lambda/adapters/relay-sink';
import { parseConfigDocument } from '../../lambda/core/config';
import { createMailReceiver } from '../../lambda/core/odmr/reversed-session';
import { releaseSignal } from '../../lambda/core/signal/session';
import { AtrnProvider } from '../../peers/atrn-provider';
import {
  ScriptedMailServer,
  type ScriptedMailServerOptions,
} from '../../peers/scripted-mail-server';
import { testCert } from '../../peers/scripted-provider';
import { atrnTarget, credentials, heldMessage } from '../core/odmr/odmr-fixtures';

const CA_FILE = join(import.meta.dirname, '../../peers/tls/ca.pem');
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function relayServer(options: ScriptedMailServerOptions) {
  const s = await new ScriptedMailServer(options).start();
  cleanups.push(() => s.stop());
  return s;
}

/** One held message pulled with ATRN and relayed to 127.0.0.1:`port` under `fields`. */
async function relayOne(port: number, fields: Record<string, unknown>) {
  const { settings } = parseConfigDocument(
    { settings: { mail: { relay: { host: '127.0.0.1', port, ...fields } } }, targets: [] },
    'config.json',
  );
  const provider = await new AtrnProvider({ queue: [heldMessage(0)] }).start();
  cleanups.push(() => provider.stop());
  // No test CA here: the relay's certificate is as unknown to us as a snakeoil one.
  const sink = createRelaySink({ relay: settings.mail!.relay!, helloName: 'dq.customer.test' });
  const report = await releaseSignal(
    atrnTarget(provider.port),
    {},
    { credentials, helloName: 'mx.customer.test', receiver: createMailReceiver(sink) },
  );
  await provider.idle();
  return { provider, report };
}

const STARTTLS = { tls: testCert('localhost') };
const kept = (provider: AtrnProvider) => expect(provider.waiting).toEqual([0]);
const relayed = (provider: AtrnProvider) => expect(provider.waiting).toEqual([]);

describe('mail.relay TLS against a certificate nobody vouches for', () => {
  it('opportunistic (the default) encrypts without verifying (RFC 7435): relayed over TLS', async () => {
    const mx = await relayServer(STARTTLS);
    const { provider, report } = await relayOne(mx.port, {});
    expect(report.outcome).toBe('signalled');
    relayed(provider);
    expect(mx.accepted).toHaveLength(1);
    expect(mx.encryptedConnections).toBe(1);
  });

  it('required verifies: the provider keeps the message (451), the error names the fields to change', async () => {
    const mx = await relayServer(STARTTLS);
    const { provider, report } = await relayOne(mx.port, { tls: 'required' });
    kept(provider);
    expect(provider.customerReplies.some((r) => r.startsWith('451 '))).toBe(true);
    expect(report.error?.message).toMatch(
      /^the destination could not take mail, the provider keeps it: TLS with 127\.0\.0\.1:\d+ failed: .*certificate.* \(give the CA that signed it in "mail\.relay\.tlsCa", or set "mail\.relay\.tlsVerify": false to encrypt without authenticating the relay\)$/,
    );
    expect(mx.lines.some((l) => /^MAIL/i.test(l))).toBe(false);
  });

  it('required with "tlsVerify": false, or with "tlsCa" holding the CA that signed it: relayed', async () => {
    const mx = await relayServer(STARTTLS);
    const unverified = await relayOne(mx.port, { tls: 'required', tlsVerify: false });
    relayed(unverified.provider);
    const ca = await readFile(CA_FILE, 'utf8');
    const verified = await relayOne(mx.port, { tls: 'required', tlsCa: ca });
    relayed(verified.provider);
    expect(mx.accepted).toHaveLength(2);
    expect(mx.encryptedConnections).toBe(2);
  });

  it('"tlsCa" verifies under opportunistic too: a certificate for another name is refused', async () => {
    const mx = await relayServer({ tls: testCert('wrong') });
    const ca = await readFile(CA_FILE, 'utf8');
    const { provider, report } = await relayOne(mx.port, { tlsCa: ca });
    kept(provider);
    expect(report.error?.message).toMatch(/TLS with 127\.0\.0\.1:\d+ failed/);
    expect(mx.accepted).toHaveLength(0);
  });
});

describe('mail.relay TLS against a relay without STARTTLS, or in the wrong mode', () => {
  it('required: nothing said after EHLO, the provider keeps the message, the error says why', async () => {
    const mx = await relayServer({});
    const { provider, report } = await relayOne(mx.port, { tls: 'required' });
    kept(provider);
    expect(report.error?.message).toBe(
      `the destination could not take mail, the provider keeps it: relay 127.0.0.1:${mx.port} does not offer STARTTLS and "mail.relay.tls" is "required": nothing was sent`,
    );
    expect(mx.lines.filter((l) => !/^(EHLO|QUIT)/.test(l))).toEqual([]);
  });

  it('implicit against a plain port: the provider keeps the message; the error says to use STARTTLS there', async () => {
    const mx = await relayServer({});
    const { provider, report } = await relayOne(mx.port, { tls: 'implicit' });
    kept(provider);
    expect(report.error?.message).toBe(
      `the destination could not take mail, the provider keeps it: TLS with 127.0.0.1:${mx.port} failed: the server speaks plain SMTP on this port, not TLS from the first byte: use STARTTLS here ("mail.relay.tls": "opportunistic" or "required"), or the port of its implicit TLS (465)`,
    );
  });
});

describe('mail.relay TLS fields', () => {
  const parse = (relay: Record<string, unknown>) => () =>
    parseConfigDocument(
      { settings: { mail: { relay: { host: 'mx.test', ...relay } } }, targets: [] },
      'f.json',
    );

  it.each([
    [{ tlsCa: 'not a certificate' }, 'settings.mail.relay.tlsCa: holds no PEM certificate'],
    [
      { tlsCa: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----' },
      'settings.mail.relay.tlsCa: certificate 1 of 1 does not parse',
    ],
    [
      { tls: 'none', tlsVerify: true },
      'settings.mail.relay.tls: there is no certificate to verify',
    ],
  ])('%j is refused, naming the field', (relay, message) => {
    expect(parse(relay)).toThrow(`f.json: ${message}`);
  });

  it('a CA with "tlsVerify": false, or with "tls": "none", is refused as meaningless', async () => {
    const ca = await readFile(CA_FILE, 'utf8');
    expect(parse({ tlsCa: ca, tlsVerify: false })).toThrow(
      'f.json: settings.mail.relay.tlsCa: a CA is for verifying the certificate, and "tlsVerify": false says not to',
    );
    expect(parse({ tlsCa: ca, tls: 'none' })).toThrow(
      'f.json: settings.mail.relay.tls: there is no certificate to verify with "tls": "none"',
    );
  });
});
