/**
 * The model of a hostile mail server for deliver.property.test.ts: the plans fast-check draws
 * (the stored messages, SMTP or LMTP, PIPELINING, a reply class per command and a fault per reply
 * sent) and the loopback server that plays a plan, keeping a ledger of what it took and sent.
 */
import fc from 'fast-check';
import type { Socket } from 'node:net';
import { LoopbackPeer } from '../../support/loopback-peer';

type Fault =
  | 'none'
  | 'multiline'
  | 'split'
  | 'delay'
  | 'silence'
  | 'cut'
  | 'duplicate'
  | 'drop'
  | 'garbage';

interface MessagePlan {
  readonly recipients: number;
  readonly mail: number;
  readonly rcpt: readonly number[];
  readonly data: number;
  /** SMTP: the first is the one reply to the dot; LMTP: one per accepted recipient, in order. */
  readonly dot: readonly number[];
}

export interface Plan {
  readonly lmtp: boolean;
  readonly pipelining: boolean;
  readonly messages: readonly MessagePlan[];
  /** One fault per reply sent, in order (then none); per connection. */
  readonly faults: readonly (readonly Fault[])[];
}

export const REPLY_TIMEOUT_MS = 300;
export const RUN_BOUND_MS = 20_000;
const code = (...codes: number[]) => fc.constantFrom(...codes);
const messagePlan: fc.Arbitrary<MessagePlan> = fc.record({
  recipients: fc.integer({ min: 1, max: 3 }),
  mail: code(250, 250, 250, 250, 451, 550),
  rcpt: fc.array(code(250, 250, 250, 251, 451, 550), { minLength: 3, maxLength: 3 }),
  data: code(354, 354, 354, 354, 451, 554),
  dot: fc.array(code(250, 250, 250, 451, 554), { minLength: 3, maxLength: 3 }),
});
const fault = fc.constantFrom<Fault>(
  'none',
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
  'drop',
  'garbage',
);
export const plan: fc.Arbitrary<Plan> = fc.record({
  lmtp: fc.boolean(),
  pipelining: fc.boolean(),
  messages: fc.array(messagePlan, { minLength: 1, maxLength: 4 }),
  faults: fc.array(fc.array(fault, { maxLength: 24 }), { minLength: 3, maxLength: 3 }),
});

export const sender = (k: number) => `m${k}@origin.test`;
export const recipient = (k: number, j: number) => `r${j}.m${k}@customer.test`;

/** What the server decided and sent, per message (by its sender) and recipient. */
interface Ledger {
  /** `k addr`: the server took the message for this recipient (whether or not its reply arrived). */
  readonly taken: Set<string>;
  /** Codes actually written for `k addr` (RCPT, the dot) or `k` (MAIL, DATA): what a report may show. */
  readonly sent: Map<string, Set<number>>;
  /** Bare CR or LF seen in DATA, or a line starting with one dot (unstuffed). */
  readonly wireFaults: string[];
  connections: number;
}

export class ModelMailServer extends LoopbackPeer {
  readonly ledger: Ledger = { taken: new Set(), sent: new Map(), wireFaults: [], connections: 0 };

  constructor(private readonly plan: Plan) {
    super();
  }

  private record(key: string, c: number): void {
    let set = this.ledger.sent.get(key);
    if (!set) this.ledger.sent.set(key, (set = new Set()));
    set.add(c);
  }

  protected serve(socket: Socket): void {
    const p = this.plan;
    const index = this.ledger.connections++;
    const faults = [...(p.faults[Math.min(index, p.faults.length - 1)] ?? [])];
    let mute = false;
    let honest = false;
    let queue = Promise.resolve();
    const write = (data: string) => {
      if (!socket.destroyed) socket.write(data);
    };
    /**
     * Send replies in one write, each with the ledger entries it answers for (recorded once it is
     * written). After a duplicate or a dropped reply the server is honest to the end (no more
     * faults), so that the fault shows on the wire: a duplicate followed by a cut looks exactly
     * like an honest answer followed by a cut, and no client can tell them apart.
     */
    const sendAll = (
      replies: readonly { readonly text: string; readonly keys?: readonly string[] }[],
    ): void => {
      if (mute) return;
      let f = faults.shift() ?? 'none';
      if (honest) f = 'none';
      if (f === 'silence' || f === 'cut') {
        mute = true;
        if (f === 'cut') socket.destroy();
        return;
      }
      if (f === 'drop') {
        honest = true;
        return;
      }
      for (const r of replies)
        for (const key of r.keys ?? []) this.record(key, Number(r.text.slice(0, 3)));
      let wire = replies.map((r) => `${r.text}\r\n`).join('');
      const first = replies[0]!.text;
      if (f === 'multiline')
        wire = `${first.slice(0, 3)}-first line of ${first.slice(4)}\r\n${wire}`;
      if (f === 'duplicate') {
        honest = true;
        wire += wire;
      }
      if (f === 'garbage') wire = `this is no reply\r\n${wire}`;
      queue = queue.then(
        () =>
          new Promise<void>((resolve) => {
            const out = () => {
              if (f === 'split' && wire.length > 2) {
                write(wire.slice(0, 2));
                this.later(3, () => {
                  write(wire.slice(2));
                  resolve();
                });
                return;
              }
              write(wire);
              resolve();
            };
            if (f === 'delay') this.later(20, out);
            else out();
          }),
      );
    };
    const send = (text: string, keys: readonly string[] = []): void => sendAll([{ text, keys }]);

    let buffer = Buffer.alloc(0);
    let k: number | null = null;
    let accepted: string[] = [];
    let inData = false;
    send(`220 mx.customer.test ${p.lmtp ? 'LMTP' : 'ESMTP'} model`);

    const endData = (wire: Buffer) => {
      const text = wire.toString('latin1');
      if (/\r(?!\n)|(?<!\r)\n/.test(text))
        this.ledger.wireFaults.push(`bare CR or LF in the data of ${sender(k!)}`);
      if (/(^|\r\n)\.(?!\.)/.test(text))
        this.ledger.wireFaults.push(
          `a line with a single leading dot in the data of ${sender(k!)}`,
        );
      const m = p.messages[k!]!;
      const replies = p.lmtp ? accepted : accepted.slice(0, 1);
      const lines = replies.map((addr, i) => {
        const c = m.dot[i]!;
        const j = Number(/^r(\d+)/.exec(addr)![1]);
        // SMTP: one reply for every accepted recipient.
        const who = p.lmtp ? [addr] : accepted;
        if (c < 300) for (const a of who) this.ledger.taken.add(`${k} ${a}`);
        return {
          text: p.lmtp ? `${c} dot for rcpt r${j} of ${sender(k!)}` : `${c} dot for ${sender(k!)}`,
          keys: who.map((a) => `${k} ${a}`),
        };
      });
      // LMTP's replies after the dot leave together (the limit of what a client can check: see
      // docs/odmr.md "Replies that do not pair up").
      sendAll(lines);
      k = null;
      accepted = [];
    };

    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (inData) {
          const atStart = buffer.subarray(0, 3).toString('latin1') === '.\r\n';
          const at = buffer.indexOf('\r\n.\r\n');
          if (!atStart && at === -1) return;
          const [to, next] = atStart ? [0, 3] : [at + 2, at + 5];
          const wire = buffer.subarray(0, to);
          buffer = buffer.subarray(next);
          inData = false;
          endData(wire);
          continue;
        }
        const lf = buffer.indexOf('\n');
        if (lf === -1) return;
        const line = buffer.subarray(0, lf).toString('latin1').replace(/\r$/, '');
        buffer = buffer.subarray(lf + 1);
        const verb = line.split(' ')[0]!.toUpperCase();
        if (verb === (p.lmtp ? 'LHLO' : 'EHLO')) {
          const ext = [
            'mx.customer.test',
            ...(p.pipelining ? ['PIPELINING'] : []),
            '8BITMIME',
            'ENHANCEDSTATUSCODES',
          ];
          send(ext.map((l, i) => `250${i === ext.length - 1 ? ' ' : '-'}${l}`).join('\r\n'));
        } else if (verb === 'MAIL') {
          const n = Number(/^MAIL FROM:<m(\d+)@/i.exec(line)?.[1] ?? NaN);
          const m = p.messages[n];
          if (!m || k !== null) {
            send(`503 5.5.1 bad MAIL (${line})`);
            continue;
          }
          if (m.mail === 250) {
            k = n;
            accepted = [];
          }
          send(`${m.mail} mail for ${sender(n)}`, [`${n}`]);
        } else if (verb === 'RCPT') {
          const r = /^RCPT TO:<r(\d+)\.m(\d+)@/i.exec(line);
          if (k === null || !r || Number(r[2]) !== k) {
            send(`503 5.5.1 bad RCPT (${line})`);
            continue;
          }
          const j = Number(r[1]);
          const c = p.messages[k]!.rcpt[j]!;
          if (c < 300) accepted.push(recipient(k, j));
          send(`${c} rcpt r${j} of ${sender(k)}`, [`${k} ${recipient(k, j)}`]);
        } else if (verb === 'DATA') {
          if (k === null || accepted.length === 0) {
            send('554 5.5.1 no valid recipients');
            continue;
          }
          const n = k;
          const c = p.messages[n]!.data;
          if (c === 354) inData = true;
          else {
            k = null;
            accepted = [];
          }
          send(c === 354 ? '354 go ahead' : `${c} data for ${sender(n)}`, [`${n}`]);
        } else if (verb === 'RSET') {
          k = null;
          accepted = [];
          send('250 2.0.0 reset');
        } else if (verb === 'QUIT') {
          send('221 2.0.0 bye');
          queue = queue.then(() => void socket.end());
        } else {
          send('502 5.5.2 what?');
        }
      }
    });
  }
}

/** Where each message is: still waiting, delivered/ or failed/ (ids, sorted). */
