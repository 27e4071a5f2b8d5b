/**
 * Shared pieces of the ODMR tests: held messages with awkward content, an ATRN target for the
 * in-process provider, and a reader of what the mail directory shows.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTarget, type Target } from '../../../lambda/core/config';
import { DequeueError } from '../../../lambda/core/errors';
import type {
  Credentials,
  MailEnvelope,
  MailSink,
  MessageDraft,
  StoredMessage,
} from '../../../lambda/core/ports';
import { ACCOUNT, type HeldMessage } from '../../../peers/atrn-provider';

export const credentials: Credentials = {
  get: async (id) => {
    if (id === 'odmr') return ACCOUNT;
    throw new DequeueError('config', `secret "${id}" not found`);
  },
};

export function atrnTarget(port: number, fields: Record<string, unknown> = {}): Target {
  return parseTarget(
    {
      name: 'odmr-test',
      host: '127.0.0.1',
      port,
      tls: 'none',
      auth: { secretId: 'odmr' },
      command: 'ATRN',
      mail: { domains: ['customer.test'] },
      timeoutSeconds: 10,
      ...fields,
    },
    'test',
  );
}

/**
 * Message `n` of a queue: headers naming it, and a body with what transparency must survive:
 * lines that are a single dot or start with dots, a CR alone, a bare LF, a bare LF before a dot line
 * (`\n.\r\n`: the end of the data to a server that splits lines at LF), 8-bit bytes.
 */
export function heldMessage(n: number, bodyBytes = 2048): HeldMessage {
  const head = `Message-ID: <${n}@provider.test>\r\nSubject: held message ${n}\r\n\r\n`;
  const tricky =
    '.\r\n..\r\n.leading dot\r\nCR alone\r here\r\nbare LF\n.after bare LF\r\nsmuggling?\n.\r\nMAIL FROM:<ceo@customer.test>\r\n\xe9t\xe9 8-bit\r\n';
  const filler = randomBytes(Math.max(0, bodyBytes))
    .toString('base64')
    .replace(/(.{76})/g, '$1\r\n');
  return {
    from: `sender${n}@origin.test`,
    to: [`user${n}@customer.test`, `other${n}@customer.test`],
    text: Buffer.from(`${head}${tricky}${filler}\r\n.\r\n`, 'latin1'),
  };
}

export async function tempDir(
  prefix: string,
): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

export interface StoredFile {
  readonly id: string;
  readonly message: Buffer;
  readonly envelope: MailEnvelope & { bytes: number; message: string };
}

/** What a reader of the mail directory sees: every `.eml` with its `.json`, and any other names. */
export async function readMailDir(
  root: string,
  target = 'odmr-test',
): Promise<{ stored: StoredFile[]; others: string[] }> {
  const dir = join(root, target);
  const names = await readdir(dir).catch(() => [] as string[]);
  const stored: StoredFile[] = [];
  const others: string[] = [];
  for (const name of names.sort()) {
    if (name.endsWith('.eml')) {
      const id = name.slice(0, -4);
      stored.push({
        id,
        message: await readFile(join(dir, name)),
        envelope: JSON.parse(await readFile(join(dir, `${id}.json`), 'utf8')),
      });
    } else if (!name.endsWith('.json')) {
      others.push(name);
    }
  }
  return { stored, others };
}

/**
 * A text as it must leave us for another server (the relay, `deliver`), unstuffed: every line end
 * CRLF, a bare LF and a bare CR each made CRLF. A regular expression, not the product's stuffer,
 * so the tests that use it check the stuffer rather than repeat it.
 */
export function canonicalText(text: Buffer): Buffer {
  return Buffer.from(text.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n'), 'latin1');
}

/** The provider's bytes: the stored message without the trace header we prepended. */
export function providerBytes(file: StoredFile): Buffer {
  return file.message.subarray(file.envelope.traceBytes);
}

/** A sink that fails as told, wrapping a real one. */
export function failingSink(
  inner: MailSink,
  fail: { atMessage: number; when: 'begin' | 'write' | 'commit'; kind?: 'temporary' | 'permanent' },
): MailSink {
  let count = 0;
  return {
    async begin(envelope: MailEnvelope): Promise<MessageDraft> {
      const n = ++count;
      const boom = () =>
        new DequeueError(fail.kind ?? 'temporary', `injected sink failure on message ${n}`);
      if (n === fail.atMessage && fail.when === 'begin') throw boom();
      const draft = await inner.begin(envelope);
      if (n !== fail.atMessage) return draft;
      let written = 0;
      return {
        async write(chunks: readonly Buffer[]) {
          for (const chunk of chunks) written += chunk.length;
          if (fail.when === 'write' && written > 1000) throw boom();
          return draft.write(chunks);
        },
        async commit(): Promise<StoredMessage> {
          if (fail.when === 'commit') throw boom();
          return draft.commit();
        },
        abort: () => draft.abort(),
      };
    },
  };
}

const pairedSockets: Socket[] = [];

/**
 * Two ends of one loopback connection: ours (the customer) and the provider's. `noDelay` turns
 * Nagle off on the provider's end, so each of its writes leaves at once.
 */
export async function socketPair(
  options: { noDelay?: boolean } = {},
): Promise<{ ours: Socket; theirs: Socket }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  const theirs = connect((server.address() as { port: number }).port, '127.0.0.1');
  const ours = await accepted;
  server.close();
  if (options.noDelay) theirs.setNoDelay(true);
  pairedSockets.push(ours, theirs);
  return { ours, theirs };
}

/** Destroy every socket socketPair() made (call from afterEach). */
export function destroySocketPairs(): void {
  for (const s of pairedSockets.splice(0)) s.destroy();
}
