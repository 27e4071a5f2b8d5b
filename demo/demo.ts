/**
 * `npm run demo`: a full ETRN release cycle on loopback, nothing to install or configure.
 *
 * Three parties, all on 127.0.0.1:
 *  - a provider (backup MX) holding one message for customer.test, which speaks ETRN;
 *  - the customer's own mail server (an smtp-server listener), where released mail arrives;
 *  - dequeue, run through its real CLI with --verbose, signalling the provider.
 * ETRN is asynchronous (RFC 1985): the provider answers 250, then delivers over a new connection
 * to the customer's server. The demo waits for that delivery and shows it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { main } from '../cli/main';
import { ScriptedProvider } from '../peers/scripted-provider';
import { readdir, readFile } from 'node:fs/promises';
import { ACCOUNT, AtrnProvider } from '../peers/atrn-provider';

const say = (text: string) => process.stderr.write(`\n== ${text}\n`);

const HELD = [
  'From: alice@sender.example',
  'To: bob@customer.test',
  'Subject: held while your server was away',
  'Message-ID: <demo-1@provider.test>',
  '',
  'This message waited at the provider until dequeue said ETRN.',
  '',
].join('\r\n');

/** The provider's side of a release: deliver the held message to the customer's MX (RFC 5321). */
function deliver(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const script = [
      'EHLO provider.test',
      'MAIL FROM:<alice@sender.example>',
      'RCPT TO:<bob@customer.test>',
      'DATA',
      `${HELD}.`,
      'QUIT',
    ];
    let buffer = '';
    socket.on('data', (chunk) => {
      buffer += chunk.toString();
      // One command per complete final reply line ("NNN " form).
      while (/^\d{3} .*\r?\n/m.test(buffer)) {
        buffer = buffer.replace(/^[\s\S]*?^\d{3} .*\r?\n/m, '');
        const next = script.shift();
        if (next) socket.write(`${next}\r\n`);
        else socket.end();
      }
    });
    socket.on('close', () => resolve());
    socket.on('error', reject);
  });
}

async function demo(): Promise<number> {
  const work = await mkdtemp(join(tmpdir(), 'dequeue-demo-'));
  let arrived: (text: string) => void;
  const delivered = new Promise<string>((r) => (arrived = r));
  const customerMx = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, _session, done) {
      let text = '';
      stream.on('data', (c: Buffer) => (text += c.toString()));
      stream.on('end', () => {
        arrived(text);
        done();
      });
    },
  });
  await new Promise<void>((r) => customerMx.listen(0, '127.0.0.1', r));
  const mxPort = (customerMx.server.address() as { port: number }).port;

  const provider = await new ScriptedProvider({
    extensions: ['PIPELINING', 'ETRN', 'AUTH CRAM-MD5'],
    account: { username: 'customer', password: 'demo-password' },
    onLine: (line, conn) => {
      const m = /^ETRN\s+[@#]?(\S+)/i.exec(line);
      if (!m) return false;
      if (m[1] !== 'customer.test') {
        conn.reply(`251 No messages waiting for node ${m[1]}`);
        return true;
      }
      conn.reply('250 Queuing started');
      setTimeout(() => void deliver(mxPort), 100);
      return true;
    },
  }).start();

  try {
    const config = join(work, 'config.json');
    const secrets = join(work, 'secrets.json');
    await writeFile(
      config,
      JSON.stringify(
        {
          settings: { helloName: 'mx.customer.test' },
          targets: [
            {
              name: 'backup-mx',
              host: '127.0.0.1',
              port: provider.port,
              tls: 'none',
              auth: { secretId: 'provider-account' },
              command: ['ETRN customer.test', 'ETRN other.test'],
            },
          ],
        },
        null,
        2,
      ),
    );
    await writeFile(
      secrets,
      JSON.stringify({ 'provider-account': { username: 'customer', password: 'demo-password' } }),
      { mode: 0o600 },
    );

    say(
      `A provider on 127.0.0.1:${provider.port} holds a message for customer.test; your MX listens on 127.0.0.1:${mxPort}`,
    );
    say(`dequeue --config ${config} --secrets ${secrets} --verbose`);
    const status = await main(['--config', config, '--secrets', secrets, '--verbose']);

    say('The provider releases the held mail to your MX (a new connection, as ETRN works):');
    // The bound is cleared as soon as the mail is in: a pending timer would hold the process 10 s.
    let bound: NodeJS.Timeout | undefined;
    const message = await Promise.race([
      delivered,
      new Promise<string>(
        (_, no) => (bound = setTimeout(() => no(new Error('no delivery within 10 s')), 10_000)),
      ),
    ]).finally(() => clearTimeout(bound));
    process.stderr.write(
      message
        .split('\r\n')
        .map((l) => `   | ${l}`)
        .join('\n'),
    );
    const atrnStatus = await atrnDemo(work);
    say(`Done: exit status ${Math.max(status, atrnStatus)}.`);
    return Math.max(status, atrnStatus);
  } finally {
    await provider.stop();
    await new Promise<void>((r) => customerMx.close(() => r()));
    await rm(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Part two, ODMR (RFC 2645, docs/odmr.md): ATRN turns the same connection around, the provider
// delivers to dequeue itself, and each message is stored in --mail-dir before it is acknowledged.
// ---------------------------------------------------------------------------------------------
async function atrnDemo(work: string): Promise<number> {
  const held = (n: number, subject: string) => ({
    from: 'carol@sender.example',
    to: ['bob@customer.test'],
    text: Buffer.from(
      `From: carol@sender.example\r\nTo: bob@customer.test\r\nSubject: ${subject}\r\nMessage-ID: <odmr-${n}@provider.test>\r\n\r\nHeld at an ODMR provider; pulled with ATRN.\r\n.a line that starts with a dot survives\r\n`,
    ),
  });
  const provider = await new AtrnProvider({
    queue: [held(1, 'first of two'), held(2, 'second of two')],
  }).start();
  try {
    const config = join(work, 'odmr.json');
    const secrets = join(work, 'odmr-secrets.json');
    const mailDir = join(work, 'mail');
    await writeFile(
      config,
      JSON.stringify(
        {
          settings: { helloName: 'mx.customer.test', mail: { maxMessageBytes: 10485760 } },
          targets: [
            {
              name: 'odmr-provider',
              host: '127.0.0.1',
              port: provider.port,
              tls: 'none',
              auth: { secretId: 'odmr-account' },
              command: 'ATRN',
              mail: { domains: ['customer.test'] },
            },
          ],
        },
        null,
        2,
      ),
    );
    await writeFile(secrets, JSON.stringify({ 'odmr-account': ACCOUNT }), { mode: 0o600 });

    say(
      `Part two, ODMR: a provider on 127.0.0.1:${provider.port} holds 2 messages and speaks ATRN (RFC 2645)`,
    );
    say(`dequeue --config ${config} --secrets ${secrets} --mail-dir ${mailDir} --verbose`);
    const status = await main([
      '--config',
      config,
      '--secrets',
      secrets,
      '--mail-dir',
      mailDir,
      '--verbose',
    ]);

    const dir = join(mailDir, 'odmr-provider');
    const files = (await readdir(dir)).sort();
    say(`Stored in ${dir}, one .eml per message with its .json envelope beside it:`);
    process.stderr.write(files.map((f) => `   ${f}`).join('\n'));
    const first = files.find((f) => f.endsWith('.eml'));
    if (first) {
      say(`${first}:`);
      process.stderr.write(
        (await readFile(join(dir, first), 'latin1'))
          .split('\r\n')
          .map((l) => `   | ${l}`)
          .join('\n'),
      );
    }
    say(
      `The provider's queue is now ${provider.waiting.length === 0 ? 'empty' : `still ${provider.waiting.length} message(s)`}.`,
    );
    return status;
  } finally {
    await provider.stop();
  }
}

demo().then(
  (status) => {
    process.exitCode = status;
  },
  (e: unknown) => {
    process.stderr.write(`demo failed: ${(e as Error).message}\n`);
    process.exitCode = 1;
  },
);
