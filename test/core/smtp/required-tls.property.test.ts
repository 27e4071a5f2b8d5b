/**
 * `required` TLS towards the customer's server (`deliver --tls required`, `"mail.relay.tls":
 * "required"`) against a hostile server or someone on the path: whatever the server offers and
 * answers, nothing but EHLO, HELO, STARTTLS and QUIT is ever said in cleartext, and with
 * verification on, nothing at all is said to a server whose certificate does not verify.
 *
 * Each case draws the server: its EHLO reply (250, or a 4xx/5xx that pushes towards HELO), how it
 * offers STARTTLS (not at all, as a man in the middle strips it; in another case; a look-alike
 * keyword), its reply to STARTTLS (220, 454, 502, a 220 with a reply injected behind it), and its
 * certificate (one the client trusts, one from a CA it does not know, one for another name). The
 * client is the one handshake deliver and the relay share (openClientSession), followed by MAIL
 * as both callers send it once the session is open; its verification is drawn too.
 *
 * Invariants:
 * - the session settles (opens or is refused), never hangs past its bounds;
 * - the lines the server read in cleartext are only EHLO, HELO, STARTTLS and QUIT;
 * - a session that opens is encrypted, and verified when verification was asked for;
 * - with verification on, a certificate that does not verify means MAIL never reaches the server.
 */
import { TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { silentTranscript } from '../../../lambda/core/ports';
import { openClientSession, sayGoodbye } from '../../../lambda/core/smtp/client-handshake';
import { RELAY_TLS_WORDS } from '../../../lambda/core/smtp/tls-policy';
import { testCa, testCert } from '../../../peers/scripted-provider';
import { checkProperty } from '../../support/fuzz';
import { LoopbackPeer } from '../../support/loopback-peer';

interface ServerPlan {
  readonly ehlo: 250 | 421 | 550;
  /** How STARTTLS appears in the EHLO reply (stripped: not at all). */
  readonly offer: 'stripped' | 'STARTTLS' | 'starttls' | 'X-STARTTLS' | 'STARTTLSX';
  readonly startTlsReply: '220' | '454' | '502' | '220+injected';
  readonly cert: 'trusted' | 'unknown-ca' | 'wrong-name';
}

interface Heard {
  readonly line: string;
  readonly encrypted: boolean;
}

const REPLY_MS = 1_000;
const CERTS = { trusted: testCert('localhost'), 'wrong-name': testCert('wrong') };

/** A server playing `plan`, recording every line it reads and whether TLS was on. */
class HostileServer extends LoopbackPeer {
  readonly heard: Heard[] = [];
  constructor(private readonly plan: ServerPlan) {
    super();
  }

  protected serve(raw: Socket): void {
    const p = this.plan;
    let socket: Socket = raw;
    let encrypted = false;
    let buffered = '';
    const send = (text: string) => socket.write(`${text}\r\n`);
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      for (let i = buffered.indexOf('\r\n'); i >= 0; i = buffered.indexOf('\r\n')) {
        const line = buffered.slice(0, i);
        buffered = buffered.slice(i + 2);
        this.heard.push({ line, encrypted });
        onLine(line);
      }
    };
    const onLine = (line: string) => {
      const verb = (line.split(' ')[0] ?? '').toUpperCase();
      switch (verb) {
        case 'EHLO': {
          if (!encrypted && p.ehlo !== 250) return send(`${p.ehlo} 4.3.0 not now`);
          const offer = !encrypted && p.offer !== 'stripped' ? [p.offer] : [];
          return send(
            [
              '250-mx.customer.test',
              '250-PIPELINING',
              ...offer.map((o) => `250-${o}`),
              '250 8BITMIME',
            ].join('\r\n'),
          );
        }
        case 'HELO':
          return send('250 mx.customer.test');
        case 'STARTTLS': {
          if (encrypted) return send('503 5.5.1 TLS already active');
          if (p.startTlsReply === '454') return send('454 4.7.0 TLS not available now');
          if (p.startTlsReply === '502') return send('502 5.5.1 not implemented');
          const injected = p.startTlsReply === '220+injected' ? '\r\n250 2.1.0 injected' : '';
          socket.write(`220 2.0.0 ready${injected}\r\n`, () => {
            if (socket.destroyed) return;
            socket.removeAllListeners('data');
            const cert = p.cert === 'wrong-name' ? CERTS['wrong-name'] : CERTS.trusted;
            socket = new TLSSocket(socket, { isServer: true, ...cert });
            socket.on('error', () => undefined);
            socket.on('data', onData);
            encrypted = true;
          });
          return;
        }
        case 'QUIT':
          return socket.write('221 2.0.0 bye\r\n', () => socket.end());
        default:
          return send('250 2.0.0 ok');
      }
    };
    socket.on('data', onData);
    send('220 mx.customer.test ESMTP');
  }
}

// Weighted so that about one case in five gets as far as an encrypted session.
const serverPlans: fc.Arbitrary<ServerPlan> = fc.record({
  ehlo: fc.constantFrom(250, 250, 250, 250, 421, 550),
  offer: fc.constantFrom(
    'STARTTLS',
    'STARTTLS',
    'STARTTLS',
    'starttls',
    'stripped',
    'stripped',
    'X-STARTTLS',
    'STARTTLSX',
  ),
  startTlsReply: fc.constantFrom('220', '220', '220', '220', '454', '502', '220+injected'),
  cert: fc.constantFrom('trusted', 'trusted', 'unknown-ca', 'wrong-name'),
});

const CLEARTEXT_ALLOWED = /^(EHLO|HELO|STARTTLS|QUIT)\b/i;

describe('required TLS towards the customer server (property)', () => {
  it('nothing but EHLO, HELO, STARTTLS and QUIT in cleartext; MAIL only over TLS that verified when asked', async () => {
    await checkProperty(
      'required TLS never speaks in cleartext',
      fc.asyncProperty(serverPlans, fc.boolean(), async (plan, verify) => {
        const server = await new HostileServer(plan).start();
        try {
          // The CA the client trusts: the test CA unless the server's certificate is from a CA
          // the client does not know (then the system's store, which does not hold it).
          const ca = plan.cert === 'unknown-ca' ? undefined : testCa;
          const opened = await openClientSession({
            host: 'localhost',
            port: server.port,
            tls: 'required',
            tlsVerify: verify,
            tlsCa: ca,
            tlsWords: RELAY_TLS_WORDS,
            ehlo: true,
            helloName: 'dq.customer.test',
            label: 'relay',
            transcript: silentTranscript,
            bound: () => REPLY_MS,
          }).then(
            (session) => session,
            () => null,
          );
          if (opened) {
            expect(opened.encrypted).toBe(true);
            if (verify) expect(opened.verified).toBe(true);
            // What deliver and the relay say next, once the session is open.
            await opened.channel.command('MAIL FROM:<a@origin.test>', REPLY_MS).catch(() => null);
            await sayGoodbye(opened.channel, opened.socket, 200);
          }
          const clear = server.heard.filter((h) => !h.encrypted).map((h) => h.line);
          expect(clear.filter((l) => !CLEARTEXT_ALLOWED.test(l))).toEqual([]);
          const mail = server.heard.filter((h) => /^MAIL\b/i.test(h.line));
          if (verify && plan.cert !== 'trusted') expect(mail).toEqual([]);
          for (const m of mail) expect(m.encrypted).toBe(true);
        } finally {
          await server.stop();
        }
      }),
      { ci: 60, fuzzShare: 0.1 },
    );
  }, 60_000);
});
