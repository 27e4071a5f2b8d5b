/**
 * `dequeue config push | pull | diff` against real SSM APIs (moto_server): what is written, with
 * which type, what is left alone, what --prune deletes, what a diff shows, what pull gives back,
 * and that an invalid file writes nothing. The function reads what push wrote, and a parameter
 * without `name` inside, and refuses one whose `name` differs from the parameter's.
 */
import {
  GetParameterCommand,
  GetParametersByPathCommand,
  PutParameterCommand,
  type Parameter,
} from '@aws-sdk/client-ssm';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { runCli } from '../support/cli-run';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { AwsWorld, CapturedOutput, contextWith } from '../lambda/aws-world';
import { describeWithMotoServer, startMotoServer, type MotoServer } from '../servers/moto-server';

describeWithMotoServer('dequeue config push | pull | diff against moto_server', () => {
  let moto: MotoServer;
  let world: AwsWorld;
  let dir: string;
  let provider: ScriptedProvider;

  beforeAll(async () => {
    moto = await startMotoServer();
    world = new AwsWorld(moto);
    dir = await mkdtemp(join(tmpdir(), 'dequeue-config-'));
    provider = await new ScriptedProvider({ extensions: ['ETRN'] }).start();
  });
  afterAll(async () => {
    await provider?.stop();
    await moto?.stop();
  });
  beforeEach(() => world.reset());

  const cli = (argv: string[]) => runCli(argv, { aws: moto.clientConfig });

  async function file(document: unknown): Promise<string> {
    const path = join(await mkdtemp(join(dir, 'case-')), 'config.json');
    await writeFile(
      path,
      typeof document === 'string' ? document : JSON.stringify(document, null, 2),
    );
    return path;
  }

  async function deployed(path = '/dequeue'): Promise<Parameter[]> {
    const out: Parameter[] = [];
    let token: string | undefined;
    do {
      const page = await world.ssm.send(
        new GetParametersByPathCommand({
          Path: path,
          Recursive: true,
          WithDecryption: true,
          NextToken: token,
        }),
      );
      out.push(...(page.Parameters ?? []));
      token = page.NextToken;
    } while (token);
    return out.sort((a, b) => (a.Name! < b.Name! ? -1 : 1));
  }

  const target = (name: string, extra: Record<string, unknown> = {}) => ({
    name,
    host: 'relay.isp.example',
    command: `ETRN ${name}.example`,
    ...extra,
  });

  it('push writes settings and one parameter per target (name inside, String); a second push writes nothing; --secure makes SecureStrings that stay so', async () => {
    const config = await file({
      settings: { everyNthCycle: 2 },
      targets: [target('a'), target('b', { port: 2525 })],
    });
    const first = await cli(['config', 'push', '--config', config, '--json']);
    expect(first.status).toBe(0);
    expect(
      first.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l))
        .sort((x, y) => (x.parameter < y.parameter ? -1 : 1)),
    ).toEqual([
      {
        parameter: '/dequeue/settings',
        target: null,
        action: 'create',
        type: 'String',
        dryRun: false,
      },
      {
        parameter: '/dequeue/targets/a',
        target: 'a',
        action: 'create',
        type: 'String',
        dryRun: false,
      },
      {
        parameter: '/dequeue/targets/b',
        target: 'b',
        action: 'create',
        type: 'String',
        dryRun: false,
      },
    ]);
    const params = await deployed();
    expect(params.map((p) => [p.Name, p.Type, p.Value, p.Version])).toEqual([
      ['/dequeue/settings', 'String', '{"everyNthCycle":2}', 1],
      ['/dequeue/targets/a', 'String', JSON.stringify(target('a')), 1],
      ['/dequeue/targets/b', 'String', JSON.stringify(target('b', { port: 2525 })), 1],
    ]);

    const again = await cli(['config', 'push', '--config', config]);
    expect(again.status).toBe(0);
    expect(again.stdout).toBe(
      'unchanged /dequeue/settings (String)\nunchanged /dequeue/targets/a (String)\nunchanged /dequeue/targets/b (String)\n',
    );
    expect((await deployed()).map((p) => p.Version)).toEqual([1, 1, 1]);

    const secure = await cli(['config', 'push', '--config', config, '--secure']);
    expect(secure.status).toBe(0);
    expect((await deployed()).map((p) => [p.Name, p.Type])).toEqual([
      ['/dequeue/settings', 'SecureString'],
      ['/dequeue/targets/a', 'SecureString'],
      ['/dequeue/targets/b', 'SecureString'],
    ]);
    // Without --secure an existing SecureString is never turned back into a String.
    const edited = await file({
      settings: { everyNthCycle: 2 },
      targets: [target('a', { port: 26 }), target('b', { port: 2525 })],
    });
    expect((await cli(['config', 'push', '--config', edited])).stdout).toContain(
      'updated /dequeue/targets/a (SecureString)',
    );
    const a = await world.ssm.send(
      new GetParameterCommand({ Name: '/dequeue/targets/a', WithDecryption: true }),
    );
    expect([a.Parameter!.Type, JSON.parse(a.Parameter!.Value!).port]).toEqual(['SecureString', 26]);
  });

  it('an invalid file or a target too big for a parameter exits 2, names the field, and writes nothing', async () => {
    const invalid = await file({ targets: [target('fine'), target('broken', { port: 70000 })] });
    const r = await cli(['config', 'push', '--config', invalid]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${invalid}: targets[1].port: must be at most 65535`);
    expect(r.stdout).toBe('');

    const big = await file({
      targets: [
        target('fine'),
        target('huge', {
          command: Array.from(
            { length: 40 },
            (_, i) => `ETRN customer-${i}.${'x'.repeat(100)}.example`,
          ),
        }),
      ],
    });
    const h = await cli(['config', 'push', '--config', big]);
    expect(h.status).toBe(2);
    expect(h.stderr).toMatch(
      /targets\[1\]: target "huge" is \d+ bytes as an SSM parameter value; a standard parameter holds at most 4096 \(4 KiB\)/,
    );

    expect((await cli(['config', 'push', '--config', await file('{"targets": [')])).status).toBe(2);
    // Credentials never go to SSM: the document has no place for them.
    const secret = await cli([
      'config',
      'push',
      '--config',
      await file({
        targets: [target('a', { auth: { secretId: 'dequeue/isp', password: 'hunter2' } })],
      }),
    ]);
    expect(secret.status).toBe(2);
    expect(secret.stderr).toContain('targets[0].auth.password');
    expect(secret.stderr).not.toContain('hunter2');
    expect(await deployed()).toEqual([]);
  });

  it('diff shows added, changed field by field, and removed; --dry-run writes nothing; --prune deletes what the file no longer names', async () => {
    await cli([
      'config',
      'push',
      '--config',
      await file({ targets: [target('keep'), target('edit'), target('gone')] }),
    ]);
    const next = await file({
      settings: {},
      targets: [
        target('keep'),
        target('edit', { port: 587, command: ['ETRN a.example', 'ETRN b.example'] }),
        target('new'),
      ],
    });

    const d = await cli(['config', 'diff', '--config', next]);
    expect(d.status).toBe(1);
    expect(d.stdout).toBe(
      [
        '~ /dequeue/targets/edit',
        '    command: "ETRN edit.example" -> ["ETRN a.example","ETRN b.example"]',
        '    port: (absent) -> 587',
        '+ /dequeue/targets/new',
        '- /dequeue/targets/gone (not in the file; push --prune deletes it)',
        '',
      ].join('\n'),
    );
    expect(d.stderr).toContain('3 parameter(s) differ, 2 unchanged');

    const dry = await cli(['config', 'push', '--config', next, '--prune', '--dry-run']);
    expect(dry.status).toBe(0);
    expect(dry.stdout).toContain('would update /dequeue/targets/edit (String)\n');
    expect(dry.stdout).toContain('would create /dequeue/targets/new (String)\n');
    expect(dry.stdout).toContain('would delete /dequeue/targets/gone: not in the file\n');
    expect((await deployed()).map((p) => [p.Name, p.Version])).toEqual([
      ['/dequeue/settings', 1],
      ['/dequeue/targets/edit', 1],
      ['/dequeue/targets/gone', 1],
      ['/dequeue/targets/keep', 1],
    ]);

    // Without --prune a removed target's parameter stays, and push says so.
    const kept = await cli(['config', 'push', '--config', next]);
    expect(kept.stderr).toContain(
      'kept /dequeue/targets/gone (not in the file); --prune deletes it',
    );
    expect((await deployed()).map((p) => p.Name)).toContain('/dequeue/targets/gone');

    const pruned = await cli(['config', 'push', '--config', next, '--prune']);
    expect(pruned.status).toBe(0);
    expect(pruned.stdout).toContain('deleted /dequeue/targets/gone: not in the file\n');
    expect((await deployed()).map((p) => p.Name)).toEqual([
      '/dequeue/settings',
      '/dequeue/targets/edit',
      '/dequeue/targets/keep',
      '/dequeue/targets/new',
    ]);

    const same = await cli(['config', 'diff', '--config', next]);
    expect(same.status).toBe(0);
    expect(same.stdout).toBe('');
    expect(same.stderr).toContain('no differences');
  });

  it('pull gives back the deployed document (names from the parameters), to stdout or --out; a name that differs is reported', async () => {
    const config = await file({
      settings: { helloName: 'mx.customer.example' },
      targets: [target('a'), target('b', { enabled: false })],
    });
    await cli(['config', 'push', '--config', config, '--prefix', '/prod/dequeue']);
    // Written by hand, the new way: the parameter's name is the target's name.
    await world.putParameter(
      '/prod/dequeue/targets/eu/c',
      JSON.stringify({ host: 'relay.eu.example', command: 'ETRN c.example' }),
    );

    const r = await cli(['config', 'pull', '--prefix', '/prod/dequeue']);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      settings: { helloName: 'mx.customer.example' },
      targets: [
        target('a'),
        target('b', { enabled: false }),
        { name: 'c', host: 'relay.eu.example', command: 'ETRN c.example' },
      ],
    });

    // The pulled file pushes back unchanged; the sub-folder target is updated where it is.
    const out = join(dir, 'pulled.json');
    expect((await cli(['config', 'pull', '--prefix', '/prod/dequeue', '--out', out])).status).toBe(
      0,
    );
    const back = JSON.parse(await readFile(out, 'utf8'));
    expect(
      (await cli(['config', 'diff', '--config', out, '--prefix', '/prod/dequeue'])).status,
    ).toBe(0);
    back.targets[2].port = 2626;
    await writeFile(out, JSON.stringify(back));
    expect(
      (await cli(['config', 'push', '--config', out, '--prefix', '/prod/dequeue'])).stdout,
    ).toContain('updated /prod/dequeue/targets/eu/c (String)');
    expect((await deployed('/prod/dequeue')).map((p) => p.Name)).toEqual([
      '/prod/dequeue/settings',
      '/prod/dequeue/targets/a',
      '/prod/dequeue/targets/b',
      '/prod/dequeue/targets/eu/c',
    ]);

    await world.putParameter('/prod/dequeue/targets/renamed', JSON.stringify(target('other')));
    await world.putParameter('/prod/dequeue/targets/torn', '{"host": ');
    const bad = await cli(['config', 'pull', '--prefix', '/prod/dequeue']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain(
      '/prod/dequeue/targets/renamed: its "name" is "other"; the function refuses it until they agree',
    );
    expect(bad.stderr).toContain('/prod/dequeue/targets/torn is not valid JSON: left out');
    expect(JSON.parse(bad.stdout).targets.map((t: { name: string }) => t.name)).toEqual([
      'a',
      'b',
      'c',
      'other',
    ]);
  });

  it('the function runs what push wrote and a parameter without name; it refuses a name that differs from the parameter', async () => {
    await cli([
      'config',
      'push',
      '--config',
      await file({
        targets: [
          {
            name: 'pushed',
            host: '127.0.0.1',
            port: provider.port,
            tls: 'none',
            command: 'ETRN pushed.example',
          },
        ],
      }),
    ]);
    await world.ssm.send(
      new PutParameterCommand({
        Name: '/dequeue/targets/bare',
        Type: 'SecureString',
        Value: JSON.stringify({
          host: '127.0.0.1',
          port: provider.port,
          tls: 'none',
          command: 'ETRN bare.example',
        }),
      }),
    );
    await world.putParameter(
      '/dequeue/targets/renamed',
      JSON.stringify({
        name: 'other',
        host: '127.0.0.1',
        port: provider.port,
        tls: 'none',
        command: 'ETRN x.example',
      }),
    );

    const output = new CapturedOutput();
    let result;
    try {
      result = await world.handler()({}, contextWith());
    } finally {
      output.restore();
    }
    expect(Object.fromEntries(result.results.map((r) => [r.target, [r.outcome, r.error]]))).toEqual(
      {
        pushed: ['signalled', null],
        bare: ['signalled', null],
        renamed: [
          'config-error',
          `/dequeue/targets/renamed: name: "other" differs from the parameter's last path segment "renamed"; they must be the same`,
        ],
      },
    );
  });

  it('PutParameter throttling is retried (bounded attempts, adaptive rate): every parameter still written', async () => {
    // A proxy in front of moto_server that answers the first PutParameter calls as SSM does when
    // its write rate is exceeded.
    let throttle = 2;
    const seen = { throttled: 0, puts: 0 };
    const proxy: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const put = req.headers['x-amz-target'] === 'AmazonSSM.PutParameter';
        if (put && throttle > 0) {
          throttle--;
          seen.throttled++;
          res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1' });
          res.end(JSON.stringify({ __type: 'ThrottlingException', message: 'Rate exceeded' }));
          return;
        }
        if (put) seen.puts++;
        const headers = Object.fromEntries(
          Object.entries(req.headers).filter(
            ([k]) => !['host', 'content-length', 'connection'].includes(k),
          ),
        ) as Record<string, string>;
        fetch(`${moto.endpoint}${req.url}`, {
          method: req.method,
          headers,
          body: chunks.length ? Buffer.concat(chunks) : undefined,
        }).then(
          async (r) => {
            res.writeHead(r.status, {
              'content-type': r.headers.get('content-type') ?? 'application/json',
            });
            res.end(Buffer.from(await r.arrayBuffer()));
          },
          (e: unknown) => {
            res.writeHead(502);
            res.end(String(e));
          },
        );
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      const { status, stderr } = await runCli(
        [
          'config',
          'push',
          '--config',
          await file({ targets: [target('a'), target('b'), target('c')] }),
        ],
        { aws: { ...moto.clientConfig, endpoint } },
      );
      expect(stderr).not.toContain('not written');
      expect(status).toBe(0);
      expect(seen).toEqual({ throttled: 2, puts: 4 });
      expect((await deployed()).map((p) => p.Name)).toEqual([
        '/dequeue/settings',
        '/dequeue/targets/a',
        '/dequeue/targets/b',
        '/dequeue/targets/c',
      ]);
    } finally {
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });

  it('usage errors exit 2', async () => {
    expect((await cli(['config'])).status).toBe(2);
    expect((await cli(['config', 'push'])).stderr).toContain(
      'dequeue config push: --config FILE is required',
    );
    expect((await cli(['config', 'pull', '--prune'])).stderr).toContain(
      'dequeue config pull: --prune is not an option of pull',
    );
    expect((await cli(['config', 'diff', '--config', 'x', '--prefix', 'dequeue'])).status).toBe(2);
    expect((await cli(['config', '--help'])).status).toBe(0);
  });
});
