/**
 * The operator's second week (issue 18), through the real binary (bin/dequeue.js): each mistake
 * a person makes gets the exit status the docs promise and one line that names what is wrong and
 * what to do; nothing says "healthy" or succeeds quietly when it cannot know.
 */
import { mkdir, mkdtemp, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMailDirSink } from '../../cli/adapters/mail-dir-sink';
import { ScriptedMailServer } from '../../peers/scripted-mail-server';
import { message, store } from './delivery/stored-mail';
import { dir, file, lines, plain, silent, useOperatorBench } from './operator-bench';
import { runDequeue, type RunOptions } from '../support/dequeue-process';

const asRoot = process.getuid?.() === 0;
useOperatorBench('dequeue-operator-');

const dequeue = (args: string[], options?: RunOptions) => runDequeue(args, 60_000, options);

describe('status on a state file that is not there (item 1)', () => {
  it('exits 2 and says so, so that `dequeue status --state F || notify` fires after a typo', async () => {
    const missing = join(dir, 'no-such-state.json');
    const r = await dequeue(['status', '--state', missing]);
    expect(r).toMatchObject({ status: 2, stdout: '' });
    expect(r.stderr).toBe(
      `dequeue status: ${missing}: no such state file: give the file your runs keep with --state (their first run creates it)\n`,
    );
  });
});

describe('--max-run-seconds below what a target needs (item 2)', () => {
  it('is refused before anything is sent, naming the target and the floor; a bound that fits runs', async () => {
    const config = await file('config.json', {
      targets: [
        { name: 'isp', host: '127.0.0.1', port: plain.port, tls: 'none', command: 'ETRN a.test' },
      ],
    });
    const before = plain.connections.length;
    const r = await dequeue(['--config', config, '--max-run-seconds', '10']);
    expect(r).toMatchObject({ status: 2, stdout: '' });
    expect(r.stderr).toBe(
      'dequeue: --max-run-seconds: 10: too short for "isp" (targets[0]), which waits up to 30 s for a reply: a target starts only when one reply fits in the run, so it would never start; give at least 30, or lower its timeoutSeconds\n',
    );
    expect(plain.connections.length).toBe(before);

    const fits = await file('config.json', {
      targets: [
        {
          name: 'isp',
          host: '127.0.0.1',
          port: plain.port,
          tls: 'none',
          command: 'ETRN a.test',
          timeoutSeconds: 5,
        },
      ],
    });
    const ok = await dequeue(['--config', fits, '--max-run-seconds', '10', '--json']);
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ target: 'isp', outcome: 'signalled' });
  });

  it('a target the run had no time left for is told the order rotates, nothing more', async () => {
    // One at a time: the first waits its whole 1 s for a greeting, then 1 s no longer fits in 1.5.
    const target = (name: string) => ({
      name,
      host: '127.0.0.1',
      port: silent.port,
      tls: 'none',
      command: `ETRN ${name}.test`,
      timeoutSeconds: 1,
    });
    const config = await file('config.json', {
      settings: { concurrency: 1 },
      targets: [target('a'), target('b')],
    });
    const r = await dequeue(['--config', config, '--max-run-seconds', '1.5', '--json']);
    expect(r.status).toBe(1);
    const late = lines(r.stdout)
      .map((l) => JSON.parse(l) as { reason?: string })
      .filter((l) => l.reason);
    expect(late.map((l) => l.reason)).toEqual([
      "not reached before the run's deadline: the order of the targets rotates every cycle, so it is worked earlier in a later one",
    ]);
  });
});

describe('deliver (item 4)', () => {
  let mailDir: string;
  let server: ScriptedMailServer;
  beforeAll(async () => {
    mailDir = await mkdtemp(join(dir, 'mail-'));
    await store(createMailDirSink(mailDir), 'isp', [message(1), message(2)]);
    server = await new ScriptedMailServer().start();
  });
  afterAll(async () => server?.stop());

  it('a --target with no mail stored is a usage error, exit 2, with the targets there are', async () => {
    const r = await dequeue([
      'deliver',
      '--mail-dir',
      mailDir,
      '--to',
      `smtp://127.0.0.1:${server.port}`,
      '--target',
      'isq',
    ]);
    expect(r).toMatchObject({ status: 2, stdout: '' });
    expect(lines(r.stderr)).toEqual([
      `dequeue deliver: --target isq: no mail of that target was ever stored in ${mailDir} (did you mean isp? stored targets: isp)`,
      "Try 'dequeue deliver --help' for the usage.",
    ]);
    expect(server.connections).toBe(0);
  });

  it('--timeout bounds a server that never greets; the error is said once per message', async () => {
    const started = Date.now();
    const r = await dequeue([
      'deliver',
      '--mail-dir',
      mailDir,
      '--to',
      `smtp://127.0.0.1:${silent.port}`,
      '--timeout',
      '1',
    ]);
    expect(r.status).toBe(1);
    expect(Date.now() - started).toBeLessThan(30_000);
    const error = `no complete reply from smtp://127.0.0.1:${silent.port} to the greeting within 1 s: if this port speaks TLS from the first byte (465), use smtps:// (or --tls implicit)`;
    const [first, second] = lines(r.stdout);
    expect(first).toMatch(/^deferred {2}isp\/\S+: <user1@customer.test> - \(/);
    expect(second).toMatch(/^deferred {2}isp\/\S+: <user2@customer.test> - \(/);
    for (const line of [first, second]) expect(line!.endsWith(`(${error})`)).toBe(true);
    expect((r.stdout + r.stderr).split(error).length - 1).toBe(2);
  });

  it('--helo-name is the name given in EHLO; a name that is no host name is a usage error', async () => {
    const r = await dequeue([
      'deliver',
      '--mail-dir',
      mailDir,
      '--to',
      `smtp://127.0.0.1:${server.port}`,
      '--helo-name',
      'mx.customer.example',
    ]);
    expect(r.status).toBe(0);
    expect(server.lines[0]).toBe('EHLO mx.customer.example');
    expect(server.accepted).toHaveLength(2);

    const bad = await dequeue([
      'deliver',
      '--mail-dir',
      mailDir,
      '--to',
      `smtp://127.0.0.1:${server.port}`,
      '--helo-name',
      'mx customer',
    ]);
    expect(bad.status).toBe(2);
    expect(lines(bad.stderr)[0]).toBe(
      'dequeue deliver: --helo-name mx customer: must be a host name (mx.example.com) or an address literal ([192.0.2.1])',
    );
  });
});

describe('a field in the wrong object (beyond the list)', () => {
  it('is named with the object it belongs in; exit 2, nothing sent', async () => {
    const config = await file('config.json', {
      concurrency: 2,
      targets: [
        {
          name: 'isp',
          host: '127.0.0.1',
          port: plain.port,
          command: 'ETRN a.test',
          auth: { secretId: 'isp', allowPlaintextAuth: true },
        },
      ],
    });
    const before = plain.connections.length;
    const r = await dequeue(['--config', config]);
    expect(r).toMatchObject({ status: 2, stdout: '' });
    expect(lines(r.stderr)).toEqual([
      `dequeue: ${config}: concurrency: is not a known field here: it belongs in settings`,
      `dequeue: ${config}: targets[0].auth.allowPlaintextAuth: is not a known field here: it belongs in targets[0]`,
      `dequeue: 2 errors in ${config}; nothing was sent`,
    ]);
    expect(plain.connections.length).toBe(before);
  });
});

describe('a host that does not exist (item 9)', () => {
  const config = () =>
    file('config.json', {
      targets: [
        { name: 'nx', host: 'relay.no-such-host.invalid', tls: 'none', command: 'ETRN a.test' },
      ],
    });

  it('NXDOMAIN is config-error, naming the host, in a run and in a dry run', async () => {
    const r = await dequeue(['--config', await config(), '--json']);
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({
      outcome: 'config-error',
      error:
        'cannot connect to relay.no-such-host.invalid:25: no such host: the DNS says relay.no-such-host.invalid does not exist (ENOTFOUND): check the host name',
    });
    const dry = await dequeue(['--config', await config(), '--json', '--dry-run']);
    expect(JSON.parse(dry.stdout)).toMatchObject({ outcome: 'config-error' });
  });

  it.skipIf(!asRoot)(
    'a resolver that does not answer stays temporary (run in a mount namespace with its own resolv.conf)',
    async () => {
      const resolv = await file(
        'resolv.conf',
        'nameserver 127.0.0.9\noptions timeout:1 attempts:1\n',
        0o644,
      );
      const r = await dequeue(['--config', await config(), '--json'], {
        via: [
          'unshare',
          '--mount',
          'sh',
          '-c',
          `mount --bind ${resolv} /etc/resolv.conf && exec "$@"`,
          'sh',
        ],
      });
      expect(r.status).toBe(1);
      expect(JSON.parse(r.stdout)).toMatchObject({
        outcome: 'temporary-failure',
        error:
          'cannot connect to relay.no-such-host.invalid:25: the DNS did not answer for relay.no-such-host.invalid (EAI_AGAIN)',
      });
    },
  );
});

describe('mail directories and the secrets file (item 7)', () => {
  const atrn = async () => {
    const config = await file('config.json', {
      targets: [
        {
          name: 'odmr',
          host: '127.0.0.1',
          port: plain.port,
          tls: 'none',
          command: 'ATRN',
          mail: { domains: ['customer.test'] },
          auth: { secretId: 'isp' },
        },
      ],
    });
    const secrets = await file('secrets.json', { isp: { username: 'u', password: 'p' } });
    return ['--config', config, '--secrets', secrets];
  };

  it('a file in the way of --mail-dir is named, with the fix; exit 2, nothing sent', async () => {
    const inTheWay = await file('mail', 'not a directory');
    const before = plain.connections.length;
    for (const mailDir of [inTheWay, join(inTheWay, 'sub')]) {
      const r = await dequeue([...(await atrn()), '--mail-dir', mailDir]);
      expect(r).toMatchObject({ status: 2, stdout: '' });
      expect(r.stderr).toBe(
        `dequeue: --mail-dir: ${mailDir}: cannot store mail there: ${inTheWay} is a file, not a directory: give --mail-dir a directory (or move the file away)\n`,
      );
    }
    expect(plain.connections.length).toBe(before);
  });

  it.skipIf(!asRoot)(
    'a read-only file system is named as such, in a run and in a dry run (a read-only tmpfs in a mount namespace)',
    async () => {
      const mount = await mkdtemp(join(dir, 'ro-'));
      const via = [
        'unshare',
        '--mount',
        'sh',
        '-c',
        `mount -t tmpfs -o ro,size=1m none ${mount} && exec "$@"`,
        'sh',
      ];
      const mailDir = join(mount, 'mail');
      for (const extra of [[], ['--dry-run']]) {
        const r = await dequeue([...(await atrn()), '--mail-dir', mailDir, ...extra], { via });
        expect(r).toMatchObject({ status: 2, stdout: '' });
        expect(r.stderr).toBe(
          `dequeue: --mail-dir: ${mailDir}: cannot store mail there: ${extra.length ? mount : mailDir} is on a read-only file system (EROFS): give --mail-dir a directory on a writable one\n`,
        );
      }
      expect(await readdir(mount)).toEqual([]);
    },
  );

  it("a path under /proc is refused at once (node's recursive mkdir never returns there)", async () => {
    const r = await dequeue([...(await atrn()), '--mail-dir', '/proc/dequeue-test/mail']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      'dequeue: --mail-dir: /proc/dequeue-test/mail: cannot store mail there: /proc/dequeue-test cannot be created (ENOENT: this file system takes no new directories): give --mail-dir a directory on an ordinary file system\n',
    );
  });

  it('a secret written {"user", "pass"} names the unknown field and what was meant', async () => {
    const [, config] = await atrn();
    const secrets = await file('secrets.json', { isp: { user: 'u', pass: 'p' } });
    await mkdir(join(dir, 'unused'), { recursive: true });
    const r = await dequeue([
      '--config',
      config!,
      '--secrets',
      secrets,
      '--mail-dir',
      join(dir, 'unused'),
    ]);
    expect(r).toMatchObject({ status: 2, stdout: '' });
    expect(r.stderr).toBe(
      `dequeue: ${secrets}: isp.user: is not a known field: did you mean "username"? (a secret is {"username": "...", "password": "..."})\n`,
    );
  });
});

describe('files and AWS settings a stranger gets wrong (beyond the list)', () => {
  it('a configuration that is missing or a directory says so in words', async () => {
    const missing = join(dir, 'no-such-config.json');
    const [gone, folder] = await Promise.all([
      dequeue(['--config', missing]),
      dequeue(['--config', dir]),
    ]);
    expect(gone).toMatchObject({ status: 2, stdout: '' });
    expect(gone.stderr).toBe(
      `dequeue: ${missing}: cannot read the configuration file: no such file\n`,
    );
    expect(folder.stderr).toBe(
      `dequeue: ${dir}: cannot read the configuration file: it is a directory, not a file\n`,
    );
  });

  it('the configuration given as --state is refused before the run would overwrite it', async () => {
    const config = await file('config.json', {
      targets: [{ name: 'isp', host: '127.0.0.1', port: plain.port, command: 'ETRN a.test' }],
    });
    const before = plain.connections.length;
    for (const argv of [
      ['--config', config, '--state', config],
      ['status', '--state', config],
    ]) {
      const r = await dequeue(argv);
      expect(r).toMatchObject({ status: 2, stdout: '' });
      expect(r.stderr).toBe(
        `dequeue${argv[0] === 'status' ? ' status' : ''}: ${config}: is not a dequeue state file (it has no "cycle"): give --state the file the runs keep, or a new name\n`,
      );
    }
    expect(plain.connections.length).toBe(before);
  });

  it('no AWS region is said as such, with where the SDK looks', async () => {
    const r = await dequeue(['config', 'pull'], {
      env: {
        AWS_REGION: undefined,
        AWS_DEFAULT_REGION: undefined,
        AWS_PROFILE: undefined,
        AWS_CONFIG_FILE: join(dir, 'no-aws-config'),
        AWS_SHARED_CREDENTIALS_FILE: join(dir, 'no-aws-credentials'),
      },
    });
    expect(r).toMatchObject({ status: 2, stdout: '' });
    expect(r.stderr.split('\n').filter((l) => !l.includes('warning: Node.js'))).toEqual([
      'dequeue config pull: SSM GetParameter /dequeue/settings failed: no AWS region: set AWS_REGION, or AWS_PROFILE naming a profile with a region',
      '',
    ]);
  });
});
