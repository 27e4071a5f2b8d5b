/**
 * What a reader finds if the process dies at any step of storing a message (kill -9; a power cut
 * is the fsync order's business, mail-dir-durability.test.ts): every file-system call the sink
 * makes is watched (not replaced) through a wrapped `node:fs/promises`, and after each one the
 * target directory is copied as it stands. Each copy is then read the way `dequeue deliver` reads
 * a mail directory (cli/adapters/mail-dir-store.ts), and swept the way the next run sweeps it.
 *
 * At every step: either no message, or the whole message with its whole envelope; never an
 * envelope that cannot be read beside a message. What a crash leaves unfinished is hidden
 * (`.part`) or an envelope without its message; the next run finishes a message that was whole
 * (its envelope written, its size and CRC right), which every message acknowledged is, and
 * removes the rest once old.
 */
import { cpSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMailDirSink } from '../../../cli/adapters/mail-dir-sink';
import { MailDirStore } from '../../../cli/adapters/mail-dir-store';
import type { MailEnvelope, MailSink } from '../../../lambda/core/ports';
import { tempDir } from '../../core/odmr/odmr-fixtures';

/** Set by a test: the directory to copy after every call, and where the copies go. */
const watch: { dir: string | null; into: string; steps: { call: string; copy: string }[] } = {
  dir: null,
  into: '',
  steps: [],
};

function snapshot(call: string): void {
  if (!watch.dir) return;
  const copy = join(watch.into, String(watch.steps.length));
  // The sink's two commit branches run at once: a rename already handed to libuv's thread pool
  // may land between the listing and the copy. Copy again until one listing copies whole.
  for (let attempt = 0; ; attempt++) {
    rmSync(copy, { recursive: true, force: true });
    mkdirSync(join(copy, 'isp'), { recursive: true });
    try {
      for (const name of readdirSync(watch.dir))
        cpSync(join(watch.dir, name), join(copy, 'isp', name), { recursive: true });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || attempt === 20) throw e;
    }
  }
  watch.steps.push({ call, copy });
}

vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  const after =
    <A extends unknown[], R>(call: string, f: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const result = await f(...args);
      snapshot(call);
      return result;
    };
  const open: typeof fs.open = async (...args: Parameters<typeof fs.open>) => {
    const handle = await fs.open(...args);
    snapshot(`open ${String(args[0]).split('/').at(-1)}`);
    for (const method of ['write', 'writev', 'sync', 'datasync'] as const) {
      const original = (handle[method] as (...a: unknown[]) => Promise<unknown>).bind(handle);
      (handle as unknown as Record<string, unknown>)[method] = after(
        `${method} ${String(args[0]).split('/').at(-1)}`,
        original,
      );
    }
    return handle;
  };
  const rename = after('rename', fs.rename);
  const unlink = after('unlink', fs.unlink);
  return { ...fs, default: { ...fs, open, rename, unlink }, open, rename, unlink };
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  watch.dir = null;
  watch.steps = [];
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
/** Streamed to the disk as it comes, fsynced after the final dot. */
const large = Buffer.from(`Subject: crash\r\n\r\n${'x'.repeat(300_000)}\r\n`);
/** Written whole after the final dot, with O_DSYNC. */
const small = Buffer.from(`Subject: crash\r\n\r\n${'x'.repeat(2_000)}\r\n`);
let text = large;

/**
 * Store one message as the session does after MAIL (transaction) or at DATA alone (begin). The
 * moment the commit resolves (when the session may send 250) is a step of its own; then what
 * the commit does in the background is awaited.
 */
async function storeOne(sink: MailSink, viaTransaction: boolean): Promise<void> {
  const draft = viaTransaction
    ? await sink.transaction!({ mailFrom: 'a@origin.test', target: 'isp' }).begin(envelope('m1'))
    : await sink.begin(envelope('m1'));
  for (let i = 0; i < text.length; i += 65536) await draft.write([text.subarray(i, i + 65536)]);
  await draft.commit();
  snapshot(COMMITTED);
  await (draft as { published?: Promise<void> }).published;
}
const COMMITTED = 'commit resolved (250)';

/** What `deliver` would do with this copy: the messages it lists, each claimed and read whole. */
async function readAsDeliver(
  root: string,
): Promise<{ id: string; bytes: number; complete: boolean }[]> {
  const store = new MailDirStore(root);
  const seen = [];
  for (const ref of await store.list(['isp'])) {
    const claim = await store.claim(ref);
    expect(claim, `message ${ref.id} listed but not claimable`).not.toBeNull();
    const chunks: Buffer[] = [];
    for await (const chunk of claim!.open()) chunks.push(chunk);
    seen.push({
      id: ref.id,
      bytes: claim!.envelope.bytes,
      complete: Buffer.concat(chunks).equals(text),
    });
    await claim!.release();
  }
  await store.close();
  return seen;
}

describe.each([
  ['after MAIL (files opened early)', true, large],
  ['at DATA alone', false, large],
  ['after MAIL, a small message (one O_DSYNC write)', true, small],
  ['at DATA alone, a small message', false, small],
])('mail directory: a crash at any step of storing a message, %s', (_, viaTransaction, stored) => {
  it('leaves no message or the whole message with its envelope, and the next sweep leaves only the whole message', async () => {
    text = stored;
    const t = await tempDir('dequeue-crash-');
    cleanups.push(t.remove);
    const root = join(t.path, 'mail');
    const sink = createMailDirSink(root);
    // The directory exists before the watch starts: creating it is not what is tested here.
    await sink.begin(envelope('warm-up')).then((d) => d.abort());
    watch.dir = join(root, 'isp');
    watch.into = join(t.path, 'copies');
    await storeOne(sink, viaTransaction);
    watch.dir = null;

    const steps = watch.steps;
    expect(steps.map((s) => s.call)).toEqual(expect.arrayContaining(['rename', COMMITTED]));
    const committed = steps.findIndex((s) => s.call === COMMITTED);
    let visibleFrom = -1;
    let wholeFrom = -1;
    for (const [i, step] of steps.entries()) {
      const seen = await readAsDeliver(step.copy);
      if (seen.length) {
        expect(seen, `after step ${i} (${step.call})`).toEqual([
          { id: 'm1', bytes: text.length, complete: true },
        ]);
        if (visibleFrom < 0) visibleFrom = i;
      } else {
        expect(visibleFrom, `the message disappeared again after step ${i} (${step.call})`).toBe(
          -1,
        );
      }
      // The next run (everything counts as old here): it finishes a whole message, the rest goes.
      await createMailDirSink(step.copy, { staleAfterMs: -1, recoverAfterMs: -1 })
        .begin(envelope('next'))
        .then((d) => d.abort());
      const left = (await readdir(join(step.copy, 'isp'))).sort();
      if (left.length) {
        expect(left, `after step ${i} (${step.call}) and the next run`).toEqual([
          'm1.eml',
          'm1.json',
        ]);
        expect(
          (await readAsDeliver(step.copy)).map((m) => m.complete),
          `after step ${i} (${step.call}) and the next run`,
        ).toEqual([true]);
        if (wholeFrom < 0) wholeFrom = i;
      } else {
        expect(wholeFrom, `the next run lost the message after step ${i} (${step.call})`).toBe(-1);
        expect(i, `acknowledged at step ${committed}, lost at step ${i}`).toBeLessThan(committed);
      }
    }
    // The next run keeps the message from the moment both files are written (the envelope and
    // the message's last bytes, at once), before its renames and before the 250.
    expect(wholeFrom).toBeGreaterThan(0);
    expect(wholeFrom).toBeLessThan(visibleFrom);
    // The 250 waits for the files' fsyncs and the directory's fsync of their hidden names, which
    // MAIL (or DATA) started, not for a directory fsync after the renames: that one follows it
    // (here at once, as `published` asks; in a session, at the next MAIL or at its end).
    expect(steps.slice(visibleFrom).map((s) => s.call)).toEqual([
      'rename',
      COMMITTED,
      'open isp',
      'sync isp',
    ]);
    // The message itself: fsynced once streamed, or written whole through its O_DSYNC descriptor.
    expect(steps.slice(0, committed).map((s) => s.call)).toEqual(
      expect.arrayContaining([
        'sync isp',
        expect.stringMatching(
          stored === large ? /^sync \..*\.eml\.part$/ : /^writev \..*\.eml\.part$/,
        ),
      ]),
    );
    expect(JSON.parse(await readFile(join(root, 'isp', 'm1.json'), 'utf8'))).toMatchObject({
      id: 'm1',
      bytes: text.length,
      message: 'm1.eml',
    });
  });
});
