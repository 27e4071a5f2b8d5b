/**
 * Issue 17 items 2 and 3, in the mail directory: a stored envelope is checked when `deliver`
 * reads it. A bad one (CR/LF, "<>", NUL, no recipients, wrong types, not JSON) goes to failed/
 * with the reason and nothing of it reaches the server; a recipient outside the target's domains
 * is never sent (failed/, 550 5.7.1), whether the domains come from the envelope or --config.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../core/odmr/odmr-fixtures';
import { HOSTILE_ENVELOPES } from './hostile-envelopes';
import { deliverTo, mailDir, server, where } from './mail-dir-delivery';
import { message } from './stored-mail';

const envelopePath = (root: string, id: string) => join(root, 'odmr', `${id}.json`);

async function rewrite(root: string, id: string, make: (e: Record<string, unknown>) => unknown) {
  const good = JSON.parse(await readFile(envelopePath(root, id), 'utf8'));
  const bad = make(good);
  await writeFile(envelopePath(root, id), typeof bad === 'string' ? bad : JSON.stringify(bad));
}

const deliver = (root: string, port: number, ...more: string[]) =>
  deliverTo(root, port, '--json', ...more);

/** A configuration file holding the one target given, in a directory of its own. */
async function configWith(target: Record<string, unknown>) {
  const dir = await tempDir('dequeue-deliver-config-');
  const file = join(dir.path, 'dequeue.json');
  await writeFile(file, JSON.stringify({ targets: [target] }));
  return { file, remove: dir.remove };
}

describe('deliver checks each stored envelope on read (mail directory)', () => {
  it.each(HOSTILE_ENVELOPES)('$name: to failed/ with the reason, nothing sent', async (c) => {
    const bad = message(1);
    const good = message(2);
    const root = await mailDir([bad, good]);
    await rewrite(root, bad.id, c.make);
    const mx = await server();
    const out = await deliver(root, mx.port);
    expect(out.status).toBe(1);
    expect(out.json).toMatchObject([
      { message: bad.id, outcome: 'failed' },
      { message: good.id, outcome: 'delivered' },
    ]);
    expect(out.json[0]!.error).toMatch(c.reason);
    // Only the good message reached the server: one MAIL, its own recipient.
    const mails = mx.lines.filter((l) => /^MAIL/i.test(l));
    expect(mails).toHaveLength(1);
    expect(mails[0]!.startsWith(`MAIL FROM:<${good.mailFrom}>`)).toBe(true);
    expect(mx.lines.filter((l) => /^RCPT/i.test(l))).toEqual([`RCPT TO:<${good.rcptTo[0]}>`]);
    expect(await where(root)).toEqual({ waiting: [], delivered: [good.id], failed: [bad.id] });
    const replies = JSON.parse(
      await readFile(join(root, 'odmr', 'failed', `${bad.id}.replies.json`), 'utf8'),
    );
    expect(replies.reason).toMatch(c.reason);
  });
});

describe("deliver sends only to the target's domains (mail directory)", () => {
  it('a recipient outside the domains the envelope recorded: 550 5.7.1, never sent; the rest delivered, then failed/', async () => {
    const m = message(1, { to: ['ok@customer.test', 'victim@elsewhere.test'] });
    const root = await mailDir([m]);
    // As a provider's slip (or an older session) would have stored it.
    await rewrite(root, m.id, (e) => ({ ...e, domains: ['customer.test'] }));
    const mx = await server();
    const out = await deliver(root, mx.port);
    expect(out.status).toBe(1);
    expect(out.json[0]).toMatchObject({ outcome: 'failed' });
    expect(out.json[0]!.recipients).toMatchObject([
      { address: 'ok@customer.test', code: 250 },
      { address: 'victim@elsewhere.test', code: 550, text: expect.stringMatching(/^5\.7\.1 /) },
    ]);
    expect(mx.lines.filter((l) => /^RCPT/i.test(l))).toEqual(['RCPT TO:<ok@customer.test>']);
    expect(await where(root)).toMatchObject({ failed: [m.id] });
  });

  it("with --config, its domains decide: a store that records a stranger's domain cannot widen them", async () => {
    const m = message(1, { to: ['victim@elsewhere.test'] });
    const root = await mailDir([m]);
    await rewrite(root, m.id, (e) => ({ ...e, domains: ['elsewhere.test'] }));
    const { file, remove } = await configWith({
      name: 'odmr',
      host: 'odmr.isp.test',
      auth: { secretId: 's' },
      command: 'ATRN customer.test',
    });
    const mx = await server();
    const out = await deliver(root, mx.port, '--config', file);
    await remove();
    expect(out.json[0]).toMatchObject({ outcome: 'failed' });
    expect(mx.lines.filter((l) => /^(MAIL|RCPT)/i.test(l))).toEqual([]);
  });

  it('an envelope of an older version (no domains): without --config nothing is sent and it stays; with it, it is checked', async () => {
    const ours = message(1, { to: ['ok@customer.test'] });
    const theirs = message(2, { to: ['victim@elsewhere.test'] });
    const root = await mailDir([ours, theirs]);
    for (const m of [ours, theirs])
      await rewrite(root, m.id, (e) => {
        const { domains: _, ...older } = e;
        return older;
      });
    const mx = await server();
    const first = await deliver(root, mx.port);
    expect(first.json.map((r) => r.outcome)).toEqual(['deferred', 'deferred']);
    expect(first.json[0]!.error).toMatch(/give --config/);
    expect(mx.lines.filter((l) => /^MAIL/i.test(l))).toEqual([]);
    const { file, remove } = await configWith({
      name: 'odmr',
      host: 'odmr.isp.test',
      auth: { secretId: 's' },
      command: 'ATRN',
      mail: { domains: ['customer.test'] },
    });
    const second = await deliver(root, mx.port, '--config', file);
    await remove();
    expect(second.json.map((r) => r.outcome)).toEqual(['delivered', 'failed']);
    expect(mx.lines.filter((l) => /^RCPT/i.test(l))).toEqual(['RCPT TO:<ok@customer.test>']);
  });
});
