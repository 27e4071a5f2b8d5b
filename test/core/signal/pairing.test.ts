/**
 * Replies belong to commands only by their place in the stream: a provider that sends one reply
 * too many or too few must never make dequeue report one domain's answer for another.
 *
 * The first provider here answers the way a widely deployed MTA does when ETRN commands are
 * pipelined over cleartext: it buffers its replies while more input is waiting, and an ETRN that
 * starts a queue run forks with that buffer unflushed, so the child sends the buffered replies a
 * second time (458, 458, 250, 221 for ETRN forbidden.test, ETRN customer.test, QUIT).
 */
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { Credentials } from '../../../lambda/core/ports';
import {
  type ProviderConnection,
  type ScriptedProvider,
  testCert,
} from '../../../peers/scripted-provider';
import { LoopbackPeer } from '../../support/loopback-peer';
import { signalSessions } from '../../support/signal-session';

const credentials: Credentials = { get: async () => ({ username: 'customer', password: 'pw' }) };

/** The duplicating MTA, on loopback. `connections[i]` holds the lines of connection i. */
class ForkingMta extends LoopbackPeer {
  readonly connections: string[][] = [];

  protected serve(socket: Socket): void {
    const lines: string[] = [];
    this.connections.push(lines);
    let input = '';
    socket.write('220 mta.provider.test ESMTP\r\n');
    socket.on('data', (chunk) => {
      input += chunk.toString('latin1');
      let unflushed = '';
      let i: number;
      // Every line already received is read before the output is flushed (pipelined input).
      while ((i = input.indexOf('\n')) !== -1) {
        const line = input.slice(0, i).replace(/\r$/, '');
        input = input.slice(i + 1);
        lines.push(line);
        const [verb = '', arg = ''] = line.split(' ');
        switch (verb.toUpperCase()) {
          case 'EHLO':
            unflushed += '250-mta.provider.test\r\n250-PIPELINING\r\n250 ETRN\r\n';
            break;
          case 'ETRN':
            if (arg === 'customer.test') {
              // fork(): the child inherits the unflushed buffer and flushes it too.
              if (unflushed) socket.write(unflushed);
              unflushed += '250 OK, queuing for node customer.test started\r\n';
            } else {
              unflushed += `458 Unable to queue messages for node ${arg}\r\n`;
            }
            break;
          case 'QUIT':
            socket.end(`${unflushed}221 mta.provider.test closing connection\r\n`);
            return;
          default:
            unflushed += '500 unrecognized command\r\n';
        }
      }
      if (unflushed) socket.write(unflushed);
    });
  }
}

const {
  provider: scripted,
  target,
  signal,
  stopAfterTest,
} = signalSessions({ credentials, targetFields: { timeoutSeconds: 5 } });

describe('each reply is reported for its own command', () => {
  it('a provider that sends a reply twice when ETRNs are pipelined in cleartext: customer.test is reported accepted, not 458', async () => {
    const mta = await new ForkingMta().start();
    stopAfterTest(() => mta.stop());
    const report = await signal(
      target(mta.port, { command: ['ETRN forbidden.test', 'ETRN customer.test'] }),
    );
    expect(report.replies).toEqual([
      {
        command: 'ETRN forbidden.test',
        code: 458,
        text: 'Unable to queue messages for node forbidden.test',
      },
      {
        command: 'ETRN customer.test',
        code: 250,
        text: 'OK, queuing for node customer.test started',
      },
    ]);
    expect(report.outcome).toBe('temporary-failure');
    // One round trip per ETRN in cleartext: the provider never had pipelined input to mishandle.
    expect(mta.connections).toEqual([
      ['EHLO mx.customer.test', 'ETRN forbidden.test', 'ETRN customer.test', 'QUIT'],
    ]);
  });

  it('over TLS too, no ETRN leaves before the one before it is answered (fork-happy servers send unflushed replies twice)', async () => {
    // ETRNs that reached the server while an earlier ETRN of the session was still unanswered.
    const early: string[] = [];
    const p = await scripted({
      tls: testCert('localhost'),
      onLine: async (line, c) => {
        if (!line.startsWith('ETRN ')) return false;
        // A queue run takes a moment; whatever the client sends meanwhile is already here.
        await new Promise((r) => setTimeout(r, 30));
        const after = c.lines.slice(c.lines.lastIndexOf(line) + 1);
        early.push(...after.filter((l) => l.startsWith('ETRN ')));
        c.write(`250 Queuing started for ${line.slice(5)}\r\n`);
        return true;
      },
    });
    const domains = ['a.test', 'b.test', 'c.test', 'd.test'];
    const report = await signal(
      target(p.port, {
        host: 'localhost',
        tls: 'required',
        command: domains.map((d) => `ETRN ${d}`),
      }),
    );
    expect(early).toEqual([]);
    expect(report.replies).toEqual(
      domains.map((d) => ({ command: `ETRN ${d}`, code: 250, text: `Queuing started for ${d}` })),
    );
    expect(report.outcome).toBe('signalled');
    expect(p.connections).toHaveLength(1);
  });

  it("a provider out of step even one command at a time: a protocol error, and no domain gets another's reply", async () => {
    const p = await scripted({
      extensions: ['ETRN'],
      etrn: { 'a.test': '250 Queuing started for a.test', 'b.test': '458 Unable to queue b.test' },
      onLine: (line, c) => {
        // A late copy of a.test's reply, written just before b.test's own.
        if (line === 'ETRN b.test') c.write('250 Queuing started for a.test\r\n');
        return false;
      },
    });
    const report = await signal(target(p.port, { command: ['ETRN a.test', 'ETRN b.test'] }));
    expect(report.outcome).toBe('temporary-failure');
    expect(report.error?.name).toBe('ProtocolError');
    // The late copy and b.test's reply may reach us in one segment or two.
    expect(report.error?.message).toMatch(
      /replies out of step with the commands \((QUIT was answered 458, not 221|the reply 458 .* came before the QUIT)\)/,
    );
    expect(report.replies).toEqual([
      { command: 'ETRN a.test', code: null, text: expect.stringMatching(/^not trusted: /) },
      { command: 'ETRN b.test', code: null, text: expect.stringMatching(/^not trusted: /) },
    ]);
    expect(p.connections).toHaveLength(1);
  });

  it("one reply too many in the same segment as the last command's: a protocol error, not a result", async () => {
    const p = await scripted({
      extensions: ['ETRN'],
      onLine: (line, c) => {
        if (line !== 'ETRN b.test') return false;
        c.write('250 Queuing started for a.test\r\n458 Unable to queue b.test\r\n');
        return true;
      },
    });
    const report = await signal(target(p.port, { command: ['ETRN a.test', 'ETRN b.test'] }));
    expect(report.outcome).toBe('temporary-failure');
    expect(report.error?.name).toBe('ProtocolError');
    expect(report.replies.map((r) => r.code)).toEqual([null, null]);
  });

  it('a reply after the 221 to a pipelined QUIT makes the replies untrusted: sent again one at a time', async () => {
    const p = await scripted({
      extensions: ['PIPELINING', 'ETRN'],
      onLine: (line, c) => {
        if (line !== 'QUIT' || connectionIndex(p, c) !== 0) return false;
        c.write('221 Bye\r\n250 one more\r\n');
        return true;
      },
    });
    const report = await signal(target(p.port, { command: 'ETRN a.test' }));
    expect(report).toMatchObject({
      outcome: 'signalled',
      replies: [{ command: 'ETRN a.test', code: 250 }],
      error: null,
    });
    expect(p.connections).toHaveLength(2);
  });
});

function connectionIndex(p: ScriptedProvider, c: ProviderConnection): number {
  return p.connections.indexOf(c);
}
