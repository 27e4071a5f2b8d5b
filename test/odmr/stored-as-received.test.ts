/**
 * What the mail directory holds and what leaves it, through the CLI as a user runs it: a message
 * with a bare LF, a bare CR and a `\n.\r\n` (the end of the data to a server that splits lines at
 * LF) pulled with ATRN from the in-process provider is stored byte for byte as received (after
 * dot-unstuffing, after our trace header); `dequeue deliver` then hands it to a server that ends
 * DATA at LF "." CRLF as one transaction, in CRLF line ends only, every dot line stuffed.
 * (INetSim's ATRN delivers one canned message of CRLF lines: test/odmr/inetsim.test.ts.)
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { ACCOUNT, AtrnProvider, type HeldMessage } from '../../peers/atrn-provider';
import { ScriptedMailServer } from '../../peers/scripted-mail-server';
import { runCli } from '../support/cli-run';
import {
  canonicalText,
  heldMessage,
  providerBytes,
  readMailDir,
  tempDir,
} from '../core/odmr/odmr-fixtures';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const odd: HeldMessage = {
  from: 'outsider@origin.test',
  to: ['user@customer.test'],
  text: Buffer.from(
    'Subject: odd line ends\r\n\r\nbare LF\nbare CR\rCR CR LF\r\r\n.dot line\r\n' +
      'harmless text\n.\r\nMAIL FROM:<ceo@customer.test>\r\nRCPT TO:<victim@customer.test>\r\nDATA\r\nsmuggled\r\n' +
      'end\r\n',
    'latin1',
  ),
};

it('ATRN into --mail-dir stores the text as received; deliver sends it canonical and stuffed, one transaction', async () => {
  const held = heldMessage(1);
  const provider = await new AtrnProvider({ queue: [odd, held] }).start();
  cleanups.push(() => provider.stop());
  const tmp = await tempDir('dequeue-as-received-');
  cleanups.push(tmp.remove);
  const config = join(tmp.path, 'dequeue.json');
  const secrets = join(tmp.path, 'secrets.json');
  const mailDir = join(tmp.path, 'mail');
  await writeFile(
    config,
    JSON.stringify({
      settings: { helloName: 'mx.customer.test' },
      targets: [
        {
          name: 'odmr',
          host: '127.0.0.1',
          port: provider.port,
          tls: 'none',
          auth: { secretId: 'odmr' },
          command: 'ATRN',
          mail: { domains: ['customer.test'] },
          timeoutSeconds: 20,
        },
      ],
    }),
  );
  await writeFile(secrets, JSON.stringify({ odmr: ACCOUNT }), { mode: 0o600 });

  const run = await runCli([
    '--config',
    config,
    '--secrets',
    secrets,
    '--mail-dir',
    mailDir,
    '--json',
  ]);
  await provider.idle();
  expect(run.json, run.stderr).toMatchObject([
    { target: 'odmr', outcome: 'signalled', messages: 2, error: null },
  ]);
  const { stored, others } = await readMailDir(mailDir, 'odmr');
  expect(others).toEqual([]);
  expect(stored.map((f) => f.envelope.mailFrom)).toEqual([odd.from, 'sender1@origin.test']);
  const [file] = stored;
  // Our trace header (CRLF lines), then the provider's bytes exactly.
  expect(file!.message.subarray(0, file!.envelope.traceBytes).toString('latin1')).toMatch(
    /^Received: from provider\.test [^\n]*\r\n(?:\t[^\r\n]*\r\n)*$/,
  );
  expect(providerBytes(file!).equals(odd.text)).toBe(true);
  expect(providerBytes(stored[1]!).equals(held.text)).toBe(true);
  expect(file!.envelope.bytes).toBe(file!.message.length);

  const mx = await new ScriptedMailServer({ naiveEndOfData: true }).start();
  cleanups.push(() => mx.stop());
  const out = await runCli([
    'deliver',
    '--mail-dir',
    mailDir,
    '--to',
    `smtp://127.0.0.1:${mx.port}`,
    '--json',
  ]);
  expect(
    out.json.map((r) => r.outcome),
    out.stderr,
  ).toEqual(['delivered', 'delivered']);
  // One transaction per message, even to a server that ends the data at LF "." CRLF.
  expect(mx.lines.filter((l) => l.startsWith('MAIL FROM'))).toEqual([
    // SIZE (RFC 1870): the stored size, an estimate (each bare line end goes out one byte longer).
    expect.stringMatching(new RegExp(`^MAIL FROM:<${odd.from}>.* SIZE=${file!.message.length}$`)),
    expect.stringMatching(/^MAIL FROM:<sender1@origin\.test>/),
  ]);
  expect(mx.accepted.map((a) => a.rcptTo)).toEqual([odd.to, held.to]);
  for (const [i, a] of mx.accepted.entries()) {
    const wire = a.wire.toString('latin1');
    // CRLF line ends only, and the text is the stored file's with its line ends made CRLF.
    expect(/\r(?!\n)|(?<!\r)\n/.test(wire)).toBe(false);
    expect(a.text.equals(canonicalText(stored[i]!.message))).toBe(true);
  }
  expect(mx.accepted[0]!.wire.toString('latin1')).toContain(
    'bare LF\r\nbare CR\r\nCR CR LF\r\n\r\n..dot line\r\nharmless text\r\n..\r\nMAIL FROM:<ceo@customer.test>\r\n',
  );
});
