/**
 * `dequeue deliver --tls`: the policy towards the customer's server, against a scripted server
 * (peers/scripted-mail-server.ts) with a certificate the system does not trust (signed by the
 * loopback peers' own CA, peers/tls/), one that offers no STARTTLS (what a stripped STARTTLS
 * looks like), one that refuses it, and one that speaks TLS from the first byte.
 *
 * What a user notices: the message delivered, or still waiting with a line that says why; the
 * JSON's `tls` saying what protected it; under `required`, nothing (not even MAIL) said in
 * cleartext. A real Postfix with a self-signed certificate: test/postfix/.
 */
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createMailDirSink } from '../../../cli/adapters/mail-dir-sink';
import { deliveryTls, isLoopback } from '../../../cli/delivery/delivery-tls';
import { parseDestination } from '../../../cli/delivery/destination';
import {
  ScriptedMailServer,
  type ScriptedMailServerOptions,
} from '../../../peers/scripted-mail-server';
import { testCert } from '../../../peers/scripted-provider';
import { tempDir } from '../../core/odmr/odmr-fixtures';
import { runCli } from '../../support/cli-run';
import { message, store } from './stored-mail';

const CA_FILE = join(import.meta.dirname, '../../../peers/tls/ca.pem');
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function mailDir() {
  const dir = await tempDir('dequeue-deliver-tls-');
  cleanups.push(dir.remove);
  await store(createMailDirSink(dir.path), 'odmr', [message(1)]);
  return dir.path;
}

async function server(options: ScriptedMailServerOptions) {
  const s = await new ScriptedMailServer(options).start();
  cleanups.push(() => s.stop());
  return s;
}

const waiting = async (root: string) =>
  (await readdir(join(root, 'odmr'))).filter((n) => n.endsWith('.eml'));

/** Deliver the one stored message to `url` with `flags`, as a user would, without a test CA. */
async function deliver(url: string, ...flags: string[]) {
  const root = await mailDir();
  const out = await runCli(['deliver', '--mail-dir', root, '--to', url, '--json', ...flags], {
    tlsCa: undefined,
  });
  return { root, out, report: out.json[0] };
}

const STARTTLS = { tls: testCert('localhost') };

describe('deliver --tls against a certificate nobody vouches for', () => {
  it('opportunistic (the loopback default) encrypts without verifying: delivered, "tls": "unverified"', async () => {
    const mx = await server(STARTTLS);
    for (const flags of [[], ['--tls', 'opportunistic']]) {
      const { out, report } = await deliver(`smtp://127.0.0.1:${mx.port}`, ...flags);
      expect(out.status).toBe(0);
      expect(report).toMatchObject({ outcome: 'delivered', tls: 'unverified' });
      expect(out.stderr).not.toMatch(/cleartext/);
    }
    expect(mx.accepted).toHaveLength(2);
    expect(mx.encryptedConnections).toBe(2);
  });

  it('required verifies: the message stays, deferred, with the reason and what to do', async () => {
    const mx = await server(STARTTLS);
    const { root, out, report } = await deliver(`smtp://127.0.0.1:${mx.port}`, '--tls', 'required');
    expect(out.status).toBe(1);
    expect(report).toMatchObject({ outcome: 'deferred', tls: null });
    expect(report.error).toMatch(/certificate/i);
    expect(report.error).toMatch(/--tls-ca FILE/);
    expect(report.error).toMatch(/--no-tls-verify/);
    expect(report.error).not.toMatch(/tlsVerify/);
    expect(mx.accepted).toHaveLength(0);
    expect(mx.lines.some((l) => /^MAIL/i.test(l))).toBe(false);
    expect(await waiting(root)).toHaveLength(1);
  });

  it('required with --tls-ca naming the CA that signed it: verified and delivered', async () => {
    const mx = await server(STARTTLS);
    const { out, report } = await deliver(
      `smtp://127.0.0.1:${mx.port}`,
      '--tls',
      'required',
      '--tls-ca',
      CA_FILE,
    );
    expect(out.status).toBe(0);
    expect(report).toMatchObject({ outcome: 'delivered', tls: 'verified' });
  });

  it('opportunistic with --tls-ca verifies too; the wrong name is refused even so', async () => {
    const mx = await server({ tls: testCert('wrong') });
    const { root, out, report } = await deliver(`smtp://127.0.0.1:${mx.port}`, '--tls-ca', CA_FILE);
    expect(out.status).toBe(1);
    expect(report.outcome).toBe('deferred');
    expect(report.error).toMatch(/TLS with 127\.0\.0\.1:\d+ failed/);
    expect(await waiting(root)).toHaveLength(1);
  });

  it('required --no-tls-verify encrypts without verifying: delivered, "tls": "unverified"', async () => {
    const mx = await server(STARTTLS);
    const { out, report } = await deliver(
      `smtp://127.0.0.1:${mx.port}`,
      '--tls',
      'required',
      '--no-tls-verify',
    );
    expect(out.status).toBe(0);
    expect(report).toMatchObject({ outcome: 'delivered', tls: 'unverified' });
  });

  it('implicit: TLS from the first byte, verified with the CA, unverified without it', async () => {
    const mx = await server({ ...STARTTLS, implicitTls: true });
    const verified = await deliver(`smtps://127.0.0.1:${mx.port}`, '--tls-ca', CA_FILE);
    expect(verified.report).toMatchObject({ outcome: 'delivered', tls: 'verified' });
    const refused = await deliver(`smtps://127.0.0.1:${mx.port}`);
    expect(refused.report.outcome).toBe('deferred');
    expect(refused.report.error).toMatch(/--no-tls-verify/);
    const unverified = await deliver(
      `smtp://127.0.0.1:${mx.port}`,
      '--tls',
      'implicit',
      '--no-tls-verify',
    );
    expect(unverified.report).toMatchObject({ outcome: 'delivered', tls: 'unverified' });
    expect(mx.accepted).toHaveLength(2);
  });

  it('none never starts TLS, though offered: "tls": "none", and no warning (the operator chose it)', async () => {
    const mx = await server(STARTTLS);
    const { out, report } = await deliver(`smtp://127.0.0.1:${mx.port}`, '--tls', 'none');
    expect(report).toMatchObject({ outcome: 'delivered', tls: 'none' });
    expect(mx.lines).not.toContain('STARTTLS');
    expect(out.stderr).not.toMatch(/cleartext/);
  });
});

describe('deliver --tls against a server without STARTTLS (or one whose STARTTLS was stripped)', () => {
  it('required: nothing is said in cleartext after EHLO; the message stays, deferred, saying why', async () => {
    const mx = await server({});
    const { root, out, report } = await deliver(`smtp://127.0.0.1:${mx.port}`, '--tls', 'required');
    expect(out.status).toBe(1);
    expect(report).toMatchObject({ outcome: 'deferred', tls: null });
    expect(report.error).toMatch(/does not offer STARTTLS and --tls is required: nothing was sent/);
    expect(out.stdout).not.toMatch(/tlsVerify|"tls" is/);
    expect(mx.lines.filter((l) => !/^(EHLO|QUIT)/.test(l))).toEqual([]);
    expect(await waiting(root)).toHaveLength(1);
  });

  it('a STARTTLS refused (454) under required: the same, nothing sent', async () => {
    const mx = await server({
      extensions: ['PIPELINING', 'STARTTLS'],
      replies: { STARTTLS: '454 4.7.0 TLS not available now' },
    });
    const { root, report } = await deliver(`smtp://127.0.0.1:${mx.port}`, '--tls', 'required');
    expect(report.outcome).toBe('deferred');
    expect(report.error).toMatch(/454/);
    expect(mx.lines.some((l) => /^MAIL/i.test(l))).toBe(false);
    expect(await waiting(root)).toHaveLength(1);
  });

  it('opportunistic goes on in cleartext, but says so: a line on stderr and "tls": "none"', async () => {
    const mx = await server({});
    const { out, report } = await deliver(`smtp://127.0.0.1:${mx.port}`, '--tls', 'opportunistic');
    expect(out.status).toBe(0);
    expect(report).toMatchObject({ outcome: 'delivered', tls: 'none' });
    expect(out.stderr).toMatch(
      /does not offer STARTTLS: the mail goes in cleartext \(--tls opportunistic; --tls required refuses such a server\)/,
    );
  });
});

describe('deliver --tls flags', () => {
  it.each([
    [
      ['--tls', 'maybe'],
      /^dequeue deliver: --tls maybe: must be none, opportunistic, required or implicit$/m,
    ],
    [['--tls'], /--tls needs a value/],
    [['--tls-verify', '--no-tls-verify'], /--tls-verify and --no-tls-verify: give one of them/],
    [
      ['--tls', 'none', '--tls-verify'],
      /--tls-verify: there is no certificate to verify with --tls none/,
    ],
    [['--tls', 'none', '--tls-ca', CA_FILE], /--tls-ca: there is no certificate to verify/],
    [['--tls-ca', CA_FILE, '--no-tls-verify'], /--tls-ca: a CA is for verifying/],
    [['--tls-ca', '/nonexistent/ca.pem'], /--tls-ca \/nonexistent\/ca\.pem: no such file/],
    [['--tls-ca', '/'], /--tls-ca \/: it is a directory/],
  ])('%j is a one-line usage error naming the flag (exit 2)', async (flags, said) => {
    const out = await runCli([
      'deliver',
      '--mail-dir',
      '/tmp',
      '--to',
      'smtp://127.0.0.1:1',
      ...flags,
    ]);
    expect(out.status).toBe(2);
    expect(out.stderr).toMatch(said);
    expect(out.stderr.trim().split('\n')).toHaveLength(2); // the error, and where --help is
  });

  it('a --tls-ca file that holds no certificate names the file', async () => {
    const dir = await tempDir('dequeue-deliver-tls-ca-');
    cleanups.push(dir.remove);
    const file = join(dir.path, 'key.pem');
    await writeFile(file, testCert('localhost').key);
    const out = await runCli([
      'deliver',
      '--mail-dir',
      dir.path,
      '--to',
      'smtp://127.0.0.1:1',
      '--tls-ca',
      file,
    ]);
    expect(out.status).toBe(2);
    expect(out.stderr).toContain(`--tls-ca ${file}: holds no PEM certificate`);
  });

  it('smtps:// is implicit TLS: another --tls is a usage error; lmtp:/ defaults to none', async () => {
    const out = await runCli([
      'deliver',
      '--mail-dir',
      '/tmp',
      '--to',
      'smtps://127.0.0.1:1',
      '--tls',
      'opportunistic',
    ]);
    expect(out.status).toBe(2);
    expect(out.stderr).toMatch(
      /--tls opportunistic: smtps:\/\/127\.0\.0\.1:1 is TLS from the first byte/,
    );
    const lmtp = await runCli([
      'deliver',
      '--mail-dir',
      '/tmp',
      '--to',
      'lmtp:/run/x',
      '--tls-verify',
    ]);
    expect(lmtp.stderr).toMatch(/--tls none, the default for lmtp/);
  });

  it('defaults: loopback opportunistic and unverified, any other host required and verified', () => {
    const policy = (url: string) => deliveryTls(parseDestination(url));
    expect(policy('smtp://127.0.0.1')).toEqual({ mode: 'opportunistic', verify: false });
    expect(policy('smtp://[::1]:2525')).toEqual({ mode: 'opportunistic', verify: false });
    expect(policy('smtp://localhost')).toEqual({ mode: 'opportunistic', verify: false });
    expect(policy('smtp://mx.customer.example')).toEqual({ mode: 'required', verify: true });
    expect(policy('smtp://192.0.2.1')).toEqual({ mode: 'required', verify: true });
    expect(policy('smtps://mx.customer.example')).toEqual({ mode: 'implicit', verify: true });
    expect(policy('lmtp:/run/dovecot/lmtp')).toEqual({ mode: 'none', verify: false });
    expect(isLoopback('127.5.6.7')).toBe(true);
    expect(isLoopback('::ffff:127.0.0.1')).toBe(true);
    expect(isLoopback('128.0.0.1')).toBe(false);
    expect(isLoopback('localhost.customer.example')).toBe(false);
  });
});
