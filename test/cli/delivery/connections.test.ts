/**
 * `dequeue deliver --connections N`: up to N connections to the customer's server at once, each
 * message on whichever is free, every message still delivered and marked exactly once and
 * reported in the store's order; the server sees the messages oldest first whatever connection
 * each came on; a server that takes fewer connections than asked still gets everything on the
 * ones it takes; a bad N is a usage error that names the flag.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { deliverTo, mailDir, messageIdOf, server } from './mail-dir-delivery';
import { message } from './stored-mail';

const delivered = async (root: string) =>
  (await readdir(join(root, 'odmr', 'delivered'))).filter((n) => n.endsWith('.eml')).sort();

describe('dequeue deliver --connections', () => {
  it('three connections at once: at most three open, oldest first as the server sees it, every message marked once', async () => {
    // Sizes that differ, so that a later message can be accepted before an earlier one.
    const messages = Array.from({ length: 12 }, (_, i) =>
      message(100 + i, { bodyBytes: i % 3 === 0 ? 300_000 : 200 }),
    );
    const root = await mailDir(messages);
    // The oldest message's answer is held until two younger ones were accepted: with one
    // connection the run would wait forever, with several the others go on meanwhile.
    let accepted!: () => void;
    const twoMore = new Promise<void>((resolve) => (accepted = resolve));
    const mx = await server({
      holdFinal: (n) => (n === 0 ? twoMore : undefined),
      final: () => {
        if (mx.accepted.length >= 1) accepted();
        return '250 2.0.0 Ok: queued';
      },
    });
    const out = await deliverTo(root, mx.port, '--connections', '3', '--json');
    expect(out.status).toBe(0);
    expect(mx.mostAtOnce).toBeGreaterThanOrEqual(2);
    expect(mx.mostAtOnce).toBeLessThanOrEqual(3);
    expect(mx.connections).toBeLessThanOrEqual(3);
    // The server saw each MAIL FROM oldest first, across all connections (and so for each
    // recipient domain); the oldest was accepted last but one or later.
    const mailOrder = mx.lines
      .filter((l) => l.startsWith('MAIL FROM:'))
      .map((l) => /<([^>]*)>/.exec(l)![1]);
    expect(mailOrder).toEqual(messages.map((m) => m.mailFrom));
    expect(mx.accepted.findIndex((a) => a.mailFrom === messages[0]!.mailFrom)).toBeGreaterThan(1);
    // Reported in the store's order, all delivered; the server took each exactly once, and each
    // was marked once.
    expect(
      out.json.map((r: { message: string; outcome: string }) => [r.message, r.outcome]),
    ).toEqual(messages.map((m) => [m.id, 'delivered']));
    expect(mx.accepted.map((a) => messageIdOf(a.text)!).sort()).toEqual(
      messages.map((m) => m.messageId).sort(),
    );
    expect(await delivered(root)).toEqual(messages.map((m) => `${m.id}.eml`));
    expect((await readdir(join(root, 'odmr'))).filter((n) => n.endsWith('.eml'))).toEqual([]);
  });

  it('the next message goes to the server only once it has answered the envelope of the one before', async () => {
    const messages = Array.from({ length: 3 }, (_, i) => message(150 + i));
    const root = await mailDir(messages);
    // The server is slow to check the oldest message's recipient. Were the next message started
    // meanwhile, its MAIL would come on a second connection: that releases the check at once.
    // Otherwise nothing comes, and the check ends after a bound (an absence has no event).
    let secondMail!: () => void;
    const checked = new Promise<void>((resolve) => {
      secondMail = resolve;
      const bound = setTimeout(resolve, 300);
      onTestFinished(() => clearTimeout(bound));
    });
    const mx = await server({
      holdCommand: (line) => {
        if (line.startsWith('MAIL FROM:') && !line.includes(messages[0]!.mailFrom)) secondMail();
        return line === `RCPT TO:<${messages[0]!.rcptTo[0]}>` ? checked : undefined;
      },
    });
    const out = await deliverTo(root, mx.port, '--connections', '3', '--json');
    expect(out.status).toBe(0);
    const firstData = mx.lines.indexOf('DATA');
    const secondMailLine = mx.lines.findIndex((l) => l.includes(messages[1]!.mailFrom));
    expect(firstData).toBeGreaterThan(-1);
    expect(secondMailLine).toBeGreaterThan(firstData);
  });

  it('a server that takes one connection from us: the others are given up, everything goes on the one it took', async () => {
    const messages = Array.from({ length: 6 }, (_, i) => message(200 + i));
    const root = await mailDir(messages);
    const mx = await server({ maxConnections: 1 });
    const out = await deliverTo(root, mx.port, '--connections', '4', '--json');
    expect(out.status).toBe(0);
    expect(out.json.map((r: { outcome: string }) => r.outcome)).toEqual(
      messages.map(() => 'delivered'),
    );
    expect(mx.accepted.map((a) => a.connection)).toEqual(messages.map(() => 1));
    expect(mx.accepted.map((a) => messageIdOf(a.text))).toEqual(messages.map((m) => m.messageId));
  });

  it('a server that is down: every message deferred, none moved, no connection tried twice over', async () => {
    const messages = Array.from({ length: 5 }, (_, i) => message(300 + i));
    const root = await mailDir(messages);
    const mx = await server();
    const port = mx.port;
    // Stopped now; its stop after the test finds it stopped already.
    await mx.stop();
    const out = await deliverTo(root, port, '--connections', '3', '--json');
    expect(out.status).toBe(1);
    expect(out.json.map((r: { outcome: string }) => r.outcome)).toEqual(
      messages.map(() => 'deferred'),
    );
    expect((await readdir(join(root, 'odmr'))).filter((n) => n.endsWith('.eml'))).toHaveLength(5);
  });

  it.each([['0'], ['21'], ['two'], ['1.5']])(
    '--connections %s is a usage error naming the flag (exit 2, nothing sent)',
    async (n) => {
      const root = await mailDir([message(400)]);
      const mx = await server();
      const out = await deliverTo(root, mx.port, '--connections', n);
      expect(out.status).toBe(2);
      expect(out.stderr).toContain(`--connections ${n}`);
      expect(mx.connections).toBe(0);
    },
  );
});
