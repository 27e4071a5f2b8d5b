/**
 * The release signal against a model-based hostile provider. Each case draws a provider (what it
 * offers: PIPELINING, STARTTLS, AUTH; how it answers each command: the reply class) and, for
 * every reply it sends, how it misbehaves: a multi-line reply, a reply split across segments, a
 * delay, silence from then on, a cut, the reply sent twice, bytes injected after its 220 to
 * STARTTLS. The target is drawn too: 1-3 ETRNs, a TLS mode, AUTH or not.
 *
 * Invariants, whatever the provider does:
 * - the session ends with exactly one classified result (it never rejects), within its bound;
 * - no rejection goes unhandled; no timer or socket of the session is left afterwards;
 * - the credentials never appear in the transcript or the result;
 * - each reply reported for a command is the one the provider sent for that command, or the
 *   result says the pairing failed (a protocol error, no code reported).
 *
 * A provider that sends a reply twice then answers honestly to the end, so that the fault is
 * visible on the wire: a duplicate followed by a cut looks exactly like an honest answer followed
 * by a cut, and no client can tell them apart.
 */
import { createHmac } from 'node:crypto';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseTarget } from '../../../lambda/core/config';
import { ProtocolError } from '../../../lambda/core/errors';
import type { Credentials } from '../../../lambda/core/ports';
import { releaseSignal } from '../../../lambda/core/signal/session';
import { testCa, testCert } from '../../../peers/scripted-provider';
import { checkProperty } from '../../support/fuzz';
import { LoopbackPeer } from '../../support/loopback-peer';
import { watchLeftovers } from '../../support/no-leftovers';

const account = { username: 'customer-name', password: 'Pa55-never-shown' };
const credentials: Credentials = { get: async () => account };
const cert = testCert('localhost');
const DOMAINS = ['a.test', 'b.test', 'c.test'];
const REPLY_TIMEOUT_S = 0.25;
const SESSION_MS = 5_000;
/** What may pass the deadline: the brief goodbye (QUIT's reply and the close). */
const GOODBYE_SLACK_MS = 1_000;

type Fault = 'none' | 'multiline' | 'split' | 'delay' | 'silence' | 'cut' | 'duplicate' | 'inject';

interface Plan {
  readonly greeting: number;
  readonly ehlo: number;
  readonly pipelining: boolean;
  readonly starttls: boolean;
  readonly starttlsReply: number;
  readonly auth: boolean;
  readonly authOk: boolean;
  readonly etrn: readonly number[];
  /** One fault per reply sent, in order (then none); per connection, the retry draws anew. */
  readonly faults: readonly (readonly Fault[])[];
}

interface TargetPlan {
  readonly domains: number;
  readonly tls: 'none' | 'opportunistic' | 'required';
  readonly auth: 'none' | 'any' | 'PLAIN' | 'CRAM-MD5' | 'LOGIN';
  readonly allowPlaintextAuth: boolean;
}

const fault = fc.constantFrom<Fault>(
  'none',
  'none',
  'none',
  'none',
  'none',
  'multiline',
  'split',
  'delay',
  'silence',
  'cut',
  'duplicate',
  'duplicate',
  'inject',
);
const plan: fc.Arbitrary<Plan> = fc.record({
  greeting: fc.constantFrom(220, 220, 220, 220, 421, 554),
  ehlo: fc.constantFrom(250, 250, 250, 250, 502, 421),
  pipelining: fc.boolean(),
  starttls: fc.boolean(),
  starttlsReply: fc.constantFrom(220, 220, 220, 454),
  auth: fc.boolean(),
  authOk: fc.boolean(),
  etrn: fc.array(fc.constantFrom(250, 251, 252, 253, 458, 459, 450, 500, 554), {
    minLength: 3,
    maxLength: 3,
  }),
  faults: fc.array(fc.array(fault, { maxLength: 10 }), { minLength: 2, maxLength: 2 }),
});
const targetPlan: fc.Arbitrary<TargetPlan> = fc.record({
  domains: fc.integer({ min: 1, max: 3 }),
  tls: fc.constantFrom('none', 'opportunistic', 'required'),
  auth: fc.constantFrom('none', 'none', 'any', 'PLAIN', 'CRAM-MD5', 'LOGIN'),
  allowPlaintextAuth: fc.boolean(),
});

/** What the model sent on one connection: each ETRN's own reply code. */
interface ConnectionRecord {
  readonly own: Map<string, number>;
}

/** The hostile provider: one per case, serving the plan. */
class ModelProvider extends LoopbackPeer {
  readonly connections: ConnectionRecord[] = [];

  constructor(private readonly plan: Plan) {
    super();
  }

  protected serve(raw: Socket): void {
    const p = this.plan;
    const index = this.connections.length;
    const record: ConnectionRecord = { own: new Map() };
    this.connections.push(record);
    const faults = [...(p.faults[Math.min(index, p.faults.length - 1)] ?? [])];
    let socket: Socket = raw;
    let encrypted = false;
    let mute = false;
    let duplicated = false;
    let auth: { mech: string; step: number; challenge: string } | null = null;
    let buffer = '';
    // Replies go out in order even when one is delayed: each write waits for the one before.
    let queue = Promise.resolve();
    const write = (data: string) => {
      if (!socket.destroyed) socket.write(data);
    };

    const send = (text: string, after?: () => void): void => {
      if (mute) return;
      let f = faults.shift() ?? 'none';
      // After a duplicate the model stays honest to the end (see the header).
      if (duplicated && (f === 'silence' || f === 'cut')) f = 'none';
      if (f === 'inject' && !text.startsWith('220 2.0.0')) f = 'none';
      if (f === 'silence') {
        mute = true;
        return;
      }
      if (f === 'cut') {
        mute = true;
        socket.destroy();
        return;
      }
      const lines = text.split('\n');
      let wire = lines
        .map((l, i) => `${l.slice(0, 3)}${i < lines.length - 1 ? '-' : ' '}${l.slice(4)}\r\n`)
        .join('');
      if (f === 'multiline' && lines.length === 1)
        wire = `${text.slice(0, 3)}-more to say\r\n${wire}`;
      if (f === 'duplicate') {
        duplicated = true;
        wire += wire;
      }
      if (f === 'inject') wire += '250 injected before TLS\r\n';
      queue = queue.then(
        () =>
          new Promise<void>((resolve) => {
            const out = () => {
              if (f === 'split' && wire.length > 2) {
                write(wire.slice(0, 2));
                this.later(3, () => {
                  write(wire.slice(2));
                  after?.();
                  resolve();
                });
                return;
              }
              write(wire);
              after?.();
              resolve();
            };
            if (f === 'delay') this.later(15, out);
            else out();
          }),
      );
    };

    const ext = () => [
      'provider.test greets you',
      ...(p.pipelining ? ['PIPELINING'] : []),
      'ETRN',
      ...(p.starttls && !encrypted ? ['STARTTLS'] : []),
      ...(p.auth ? ['AUTH PLAIN LOGIN CRAM-MD5'] : []),
    ];
    const onLine = (line: string): void => {
      if (auth) {
        const a = auth;
        if (line === '*') {
          auth = null;
          return send('501 cancelled');
        }
        if (a.mech === 'LOGIN' && a.step === 0) {
          a.step = 1;
          return send('334 UGFzc3dvcmQ6');
        }
        auth = null;
        const expected =
          a.mech === 'CRAM-MD5'
            ? `${account.username} ${createHmac('md5', account.password).update(a.challenge).digest('hex')}`
            : account.password;
        const ok = Buffer.from(line, 'base64').toString() === expected && p.authOk;
        return send(ok ? '235 2.7.0 ok' : '535 5.7.8 invalid');
      }
      const [verbRaw = '', ...args] = line.split(' ');
      switch (verbRaw.toUpperCase()) {
        case 'EHLO':
          return p.ehlo === 250
            ? send(
                ext()
                  .map((e) => `250 ${e}`)
                  .join('\n'),
              )
            : send(`${p.ehlo} no EHLO here`);
        case 'HELO':
          return send('250 provider.test');
        case 'STARTTLS':
          if (!p.starttls || encrypted) return send('502 5.5.1 no');
          if (p.starttlsReply !== 220) return send(`${p.starttlsReply} 4.7.0 TLS not available`);
          return send('220 2.0.0 go ahead', () => {
            if (socket.destroyed) return;
            socket.removeAllListeners('data');
            socket = new TLSSocket(socket, { isServer: true, ...cert });
            socket.on('error', () => undefined);
            socket.on('data', onData);
            encrypted = true;
          });
        case 'AUTH': {
          const mech = (args[0] ?? '').toUpperCase();
          if (!p.auth) return send('502 5.5.1 no AUTH');
          if (mech === 'PLAIN') {
            const [, user, pass] = Buffer.from(args[1] ?? '', 'base64')
              .toString()
              .split('\0');
            return send(
              user === account.username && pass === account.password && p.authOk
                ? '235 2.7.0 ok'
                : '535 5.7.8 invalid',
            );
          }
          if (mech === 'LOGIN') {
            auth = { mech, step: 0, challenge: '' };
            return send('334 VXNlcm5hbWU6');
          }
          const challenge = `<${index}.${Date.now()}@provider.test>`;
          auth = { mech: 'CRAM-MD5', step: 0, challenge };
          return send(`334 ${Buffer.from(challenge).toString('base64')}`);
        }
        case 'ETRN': {
          const node = args[0] ?? '';
          const code = p.etrn[DOMAINS.indexOf(node)] ?? 500;
          if (!record.own.has(line)) record.own.set(line, code);
          return send(`${code} reply for ${node}`);
        }
        case 'QUIT':
          return send('221 2.0.0 bye', () => socket.end());
        default:
          return send('500 5.5.2 what?');
      }
    };
    const onData = (chunk: Buffer): void => {
      buffer += chunk.toString('latin1');
      let i: number;
      while ((i = buffer.indexOf('\n')) !== -1) {
        const line = buffer.slice(0, i).replace(/\r$/, '');
        buffer = buffer.slice(i + 1);
        onLine(line);
      }
    };
    socket.on('data', onData);
    send(p.greeting === 220 ? '220 provider.test ESMTP model' : `${p.greeting} go away`);
  }
}

const OUTCOMES = ['signalled', 'no-mail', 'temporary-failure', 'permanent-failure'];
const secrets = [
  account.password,
  Buffer.from(account.password).toString('base64'),
  Buffer.from(`\0${account.username}\0${account.password}`).toString('base64'),
];

async function oneCase(p: Plan, t: TargetPlan): Promise<void> {
  const provider = await new ModelProvider(p).start();
  const leftovers = watchLeftovers();
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  const transcript: string[] = [];
  try {
    const commands = DOMAINS.slice(0, t.domains).map((d) => `ETRN ${d}`);
    const target = parseTarget(
      {
        name: 'prop',
        host: 'localhost',
        port: provider.port,
        tls: t.tls,
        allowPlaintextAuth: t.allowPlaintextAuth,
        ...(t.auth === 'none'
          ? {}
          : { auth: t.auth === 'any' ? { secretId: 's' } : { secretId: 's', mechanism: t.auth } }),
        command: commands,
        timeoutSeconds: REPLY_TIMEOUT_S,
      },
      'property',
    );
    const started = Date.now();
    const report = await releaseSignal(
      target,
      { deadline: started + SESSION_MS },
      {
        credentials,
        tlsCa: testCa,
        helloName: 'mx.customer.test',
        transcript: { line: (_t, d, x) => transcript.push(`${d} ${x}`) },
      },
    );
    expect(Date.now() - started).toBeLessThanOrEqual(SESSION_MS + GOODBYE_SLACK_MS);
    expect(OUTCOMES).toContain(report.outcome);
    const shown = `${transcript.join('\n')}\n${JSON.stringify(report)}`;
    for (const secret of secrets) expect(shown).not.toContain(secret);

    const untrusted =
      report.error instanceof ProtocolError &&
      report.replies.some((r) => r.text.startsWith('not trusted:'));
    if (untrusted) {
      expect(
        report.replies.filter((r) => r.command.startsWith('ETRN')).every((r) => r.code === null),
      ).toBe(true);
    } else {
      const last = provider.connections.at(-1);
      for (const r of report.replies) {
        if (!r.command.startsWith('ETRN') || r.code === null) continue;
        expect({ command: r.command, code: r.code }).toEqual({
          command: r.command,
          code: last?.own.get(r.command),
        });
      }
    }
  } finally {
    await provider.stop();
    process.off('unhandledRejection', onUnhandled);
  }
  await new Promise((r) => setImmediate(r));
  expect(unhandled).toEqual([]);
  expect(await leftovers.settle()).toEqual([]);
}

describe('the release signal against a hostile provider', () => {
  it('always one classified result in bound, nothing left, no credential shown, no reply on the wrong command', async () => {
    await checkProperty(
      'signal session vs hostile provider',
      fc.asyncProperty(plan, targetPlan, oneCase),
      { ci: 120, fuzzShare: 0.1 },
    );
  }, 120_000);
});
