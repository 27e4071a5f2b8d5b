/**
 * A power cut after our 250: the mail directory acknowledges a message once it is durable and
 * whole under its hidden names, and renames it after (cli/adapters/mail-dir-recovery.ts). The
 * renames a cut can undo are undone here by hand, on a message the sink really stored; the next
 * run that uses the directory must then finish the message, byte for byte, and only a message
 * whose size and CRC match its envelope.
 */
import { readdir, readFile, rename, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createMailDirSink } from '../../../cli/adapters/mail-dir-sink';
import { MailDirStore } from '../../../cli/adapters/mail-dir-store';
import type { MailEnvelope } from '../../../lambda/core/ports';
import { tempDir } from '../../core/odmr/odmr-fixtures';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

const envelope = (id: string): MailEnvelope => ({
  id,
  mailFrom: 'a@origin.test',
  rcptTo: ['b@customer.test'],
  receivedAt: '2024-05-06T07:08:09.000Z',
  provider: 'provider.test:366',
  target: 'isp',
  heloName: 'provider.test',
  tls: false,
  traceBytes: 0,
});
const text = Buffer.from(`Subject: after the cut\r\n\r\n${'y'.repeat(70_000)}\r\n`);

/** A message stored by the sink as a session stores it; returns the target's directory. */
async function stored(id: string): Promise<string> {
  const t = await tempDir('dequeue-recovery-');
  cleanups.push(t.remove);
  const draft = await createMailDirSink(t.path).begin(envelope(id));
  await draft.write([text]);
  await draft.commit();
  await (draft as { published?: Promise<void> }).published;
  return join(t.path, 'isp');
}

/** Files as a cut left them: under these names, written `minutesAgo`. */
async function cutLeaves(dir: string, moves: [string, string][], minutesAgo = 11): Promise<void> {
  const then = new Date(Date.now() - minutesAgo * 60_000);
  for (const [from, to] of moves) {
    await rename(join(dir, from), join(dir, to));
    await utimes(join(dir, to), then, then);
  }
}

/** The next run: a sink that stores into the same directory (here, one message it drops). */
async function nextRun(dir: string, options = {}): Promise<void> {
  await createMailDirSink(join(dir, '..'), options)
    .begin(envelope('next'))
    .then((d) => d.abort());
}

/** What `deliver` would find: ids with whether each reads back as the stored text. */
async function delivered(dir: string): Promise<{ id: string; whole: boolean }[]> {
  const store = new MailDirStore(join(dir, '..'));
  const found = [];
  for (const ref of await store.list(['isp'])) {
    const claim = (await store.claim(ref))!;
    const chunks: Buffer[] = [];
    for await (const chunk of claim.open()) chunks.push(chunk);
    found.push({ id: ref.id, whole: Buffer.concat(chunks).equals(text) });
    await claim.release();
  }
  await store.close();
  return found;
}

describe('mail directory: what a power cut after the 250 leaves, the next run finishes', () => {
  it('both renames undone: the message and its envelope come back under their names', async () => {
    const dir = await stored('m1');
    const envelopeBefore = await readFile(join(dir, 'm1.json'), 'utf8');
    expect(JSON.parse(envelopeBefore)).toMatchObject({
      bytes: text.length,
      crc32: /^[0-9a-f]{8}$/,
    });
    await cutLeaves(dir, [
      ['m1.json', '.cut-1.json.part'],
      ['m1.eml', '.cut-1.eml.part'],
    ]);
    expect(await delivered(dir)).toEqual([]);
    await nextRun(dir);
    expect((await readdir(dir)).sort()).toEqual(['m1.eml', 'm1.json']);
    expect(await readFile(join(dir, 'm1.json'), 'utf8')).toBe(envelopeBefore);
    expect(await delivered(dir)).toEqual([{ id: 'm1', whole: true }]);
  });

  it("only the message's rename undone: the hidden message that matches the envelope is renamed", async () => {
    const dir = await stored('m2');
    await cutLeaves(dir, [['m2.eml', '.cut-2.eml.part']]);
    const then = new Date(Date.now() - 11 * 60_000);
    await utimes(join(dir, 'm2.json'), then, then);
    await writeFile(join(dir, '.other-3.eml.part'), text.subarray(1));
    await nextRun(dir);
    expect(await delivered(dir)).toEqual([{ id: 'm2', whole: true }]);
    // The other hidden file, not this envelope's message, is left to the stale sweep.
    expect((await readdir(dir)).sort()).toEqual(['.other-3.eml.part', 'm2.eml', 'm2.json']);
  });

  it('a hidden message that is not what its envelope says (a write the cut lost) is never shown, and goes once old', async () => {
    const dir = await stored('m3');
    const torn = Buffer.from(text);
    torn[torn.length - 10] = 0;
    await writeFile(join(dir, 'm3.eml'), torn);
    await cutLeaves(dir, [
      ['m3.json', '.cut-4.json.part'],
      ['m3.eml', '.cut-4.eml.part'],
    ]);
    await nextRun(dir);
    expect(await delivered(dir)).toEqual([]);
    expect((await readdir(dir)).sort()).toEqual(['.cut-4.eml.part', '.cut-4.json.part']);
    await nextRun(dir, { staleAfterMs: -1 });
    expect(await readdir(dir)).toEqual([]);
  });

  it('a whole hidden message younger than a commit can take is left to the run committing it', async () => {
    const dir = await stored('m5');
    await cutLeaves(
      dir,
      [
        ['m5.json', '.cut-5.json.part'],
        ['m5.eml', '.cut-5.eml.part'],
      ],
      1,
    );
    await nextRun(dir);
    expect((await readdir(dir)).sort()).toEqual(['.cut-5.eml.part', '.cut-5.json.part']);
  });
});
