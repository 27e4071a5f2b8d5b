/**
 * ATRN against a real ODMR provider: Exim 4.99.1 (peers/servers/exim-odmr.ts), through the CLI as a
 * user runs it. One daemon for the file, offering STARTTLS with the test CA's certificate; each
 * test has its own account and domain, so the mail one test holds is released by no other.
 *
 * What a user sees: every held message in --mail-dir after one cycle, its body as Exim sent it,
 * Exim's queue empty and its log naming our 250 for each message.
 *
 * Without Exim 4.99.1: fails in CI, skipped elsewhere (peers/servers/exim-odmr.ts).
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { TargetResult } from '../../lambda/core/result';
import { readMailDir, type StoredFile } from '../core/odmr/odmr-fixtures';
import {
  describeWithEximOdmr,
  startEximOdmr,
  type EximOdmr,
  type HeldMail,
  type OdmrAccount,
} from '../servers/exim-odmr';
import { runDequeue } from '../support/dequeue-process';

const PASSWORD = 'odmr-secret';
const account = (name: string, extra: Partial<OdmrAccount> = {}): OdmrAccount => ({
  username: name,
  password: PASSWORD,
  domains: [`${name}.test`],
  ...extra,
});
const ACCOUNTS = [
  account('plain-one'),
  account('plain-many'),
  account('tls-many'),
  account('utf8'),
  account('large'),
  account('empty'),
  account('empty-turn', { checkSpool: false }),
  account('refused'),
];

describeWithEximOdmr('ATRN against a real Exim 4.99.1 provider, through the CLI', () => {
  let exim: EximOdmr;
  let work: string;

  beforeAll(async () => {
    [exim, work] = await Promise.all([
      startEximOdmr({ accounts: ACCOUNTS, tls: true }),
      mkdtemp(join(tmpdir(), 'dequeue-exim-odmr-')),
    ]);
  });

  afterAll(async () => {
    await exim?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** One cycle of the CLI with one ATRN target for `name`'s account; its result and mail. */
  async function cycle(name: string, fields: Record<string, unknown> = {}) {
    const dir = join(work, name);
    const config = join(work, `${name}.json`);
    const secrets = join(work, `${name}.secrets.json`);
    await writeFile(
      config,
      JSON.stringify({
        settings: { helloName: 'mx.customer.test' },
        targets: [
          {
            name,
            host: exim.host,
            port: exim.port,
            tls: 'none',
            auth: { secretId: name, mechanism: 'CRAM-MD5' },
            command: `ATRN ${name}.test`,
            timeoutSeconds: 20,
            ...fields,
          },
        ],
      }),
    );
    await writeFile(secrets, JSON.stringify({ [name]: { username: name, password: PASSWORD } }));
    await chmod(secrets, 0o600);
    const run = await runDequeue(
      ['--config', config, '--secrets', secrets, '--mail-dir', dir, '--json', '--verbose'],
      90_000,
    );
    const result = JSON.parse(run.stdout.trim()) as TargetResult;
    return { run, result, mail: await readMailDir(dir, name) };
  }

  function held(name: string, n: number, body = `body of message ${n}\n`): HeldMail {
    return {
      from: `sender${n}@origin.test`,
      to: [`user${n}@${name}.test`],
      data: `Subject: ${name} message ${n}\nX-Test-Number: ${n}\n\n${body}`,
    };
  }

  /** The message as Exim sent it: our trace header left out, then its own header and our body. */
  function bodyOf(file: StoredFile): string {
    const text = file.message.subarray(file.envelope.traceBytes).toString('utf8');
    return text.slice(text.indexOf('\r\n\r\n') + 4);
  }

  const numbers = (mail: { stored: StoredFile[] }) =>
    mail.stored.map((f) => /X-Test-Number: (\d+)/.exec(f.message.toString('latin1'))?.[1]).sort();

  it('plaintext, one held message: stored, and Exim logs our 250 and empties its queue', async () => {
    await exim.hold([held('plain-one', 1, 'line one\n.\n..two dots\nlast line\n')]);
    const from = (await exim.log()).length;
    const { run, result, mail } = await cycle('plain-one');
    expect(result, run.stderr).toMatchObject({ outcome: 'signalled', messages: 1, error: null });
    expect(mail.stored).toHaveLength(1);
    // Dot-stuffed by Exim on the wire, unstuffed by us: the body as it was written.
    expect(bodyOf(mail.stored[0]!)).toBe('line one\r\n.\r\n..two dots\r\nlast line\r\n');
    expect(mail.stored[0]!.envelope).toMatchObject({
      mailFrom: 'sender1@origin.test',
      rcptTo: ['user1@plain-one.test'],
      tls: false,
    });
    await exim.waitForLog(/=> user1@plain-one\.test .*C="250 2\.0\.0 Ok: stored as /, from);
    await exim.waitForQueue(0, 'plain-one.test');
  }, 120_000);

  it('plaintext, three held messages: all three in one cycle', async () => {
    await exim.hold([1, 2, 3].map((n) => held('plain-many', n)));
    const { run, result, mail } = await cycle('plain-many');
    expect(result, run.stderr).toMatchObject({ outcome: 'signalled', messages: 3, error: null });
    expect(numbers(mail)).toEqual(['1', '2', '3']);
    await exim.waitForQueue(0, 'plain-many.test');
  }, 120_000);

  it('inside STARTTLS, three held messages: all three in one cycle, none stored twice', async () => {
    await exim.hold([1, 2, 3].map((n) => held('tls-many', n)));
    const { run, result, mail } = await cycle('tls-many', { tls: 'required', tlsVerify: false });
    expect(result, run.stderr).toMatchObject({ outcome: 'signalled', messages: 3 });
    expect(numbers(mail)).toEqual(['1', '2', '3']);
    expect(mail.stored.every((f) => f.envelope.tls)).toBe(true);
    await exim.waitForQueue(0, 'tls-many.test');
  }, 120_000);

  it('a message that needs SMTPUTF8 (RFC 6531) is stored with the flag, and the one after it too', async () => {
    await exim.hold([
      {
        from: 'sender@origin.test',
        to: ['josé@utf8.test'],
        data: 'Subject: =?utf-8?q?caf=C3=A9?=\nX-Test-Number: 1\n\ncafé\n',
      },
      held('utf8', 2),
    ]);
    const { run, result, mail } = await cycle('utf8', { tls: 'required', tlsVerify: false });
    expect(result, run.stderr).toMatchObject({ outcome: 'signalled', messages: 2, error: null });
    expect(numbers(mail)).toEqual(['1', '2']);
    const international = mail.stored.find((f) => f.envelope.rcptTo[0] === 'josé@utf8.test');
    expect(international?.envelope).toMatchObject({ smtputf8: true });
    expect(bodyOf(international!)).toBe('café\r\n');
    const plain = mail.stored.find((f) => f.envelope.rcptTo[0] === 'user2@utf8.test');
    expect(plain?.envelope).not.toHaveProperty('smtputf8');
    await exim.waitForQueue(0, 'utf8.test');
  }, 120_000);

  it('a large message (8 MiB) arrives whole', async () => {
    const body = `${randomBytes(6 * 1024 * 1024)
      .toString('base64')
      .replace(/(.{76})/g, '$1\n')}\n`;
    await exim.hold([held('large', 1, body)]);
    const { run, result, mail } = await cycle('large');
    expect(result, run.stderr).toMatchObject({ outcome: 'signalled', messages: 1, error: null });
    expect(bodyOf(mail.stored[0]!)).toBe(body.replace(/\n/g, '\r\n'));
    await exim.waitForQueue(0, 'large.test');
  }, 120_000);

  it('nothing held: Exim answers 453, reported as no-mail', async () => {
    const { run, result, mail } = await cycle('empty');
    expect(result, run.stderr).toMatchObject({ outcome: 'no-mail', messages: 0, error: null });
    expect(result.replies.at(-1)).toMatchObject({ command: 'ATRN empty.test', code: 453 });
    expect(mail.stored).toEqual([]);
  }, 120_000);

  it('nothing held, and the provider turns the line anyway and closes: no-mail, not a failure', async () => {
    const { run, result, mail } = await cycle('empty-turn');
    expect(result, run.stderr).toMatchObject({ outcome: 'no-mail', messages: 0, error: null });
    expect(result.replies.at(-1)).toMatchObject({ command: 'ATRN empty-turn.test', code: 250 });
    expect(run.status).toBe(0);
    expect(mail.stored).toEqual([]);
  }, 120_000);

  it("a domain that is not the account's: Exim's 450 is the refusal RFC 2645 says it is", async () => {
    const { run, result } = await cycle('refused', { command: 'ATRN someone-else.test' });
    expect(result.replies.at(-1)).toMatchObject({ command: 'ATRN someone-else.test', code: 450 });
    expect(result, run.stderr).toMatchObject({ outcome: 'permanent-failure' });
    expect(result.error).toMatch(/refused/i);
  }, 120_000);
});
