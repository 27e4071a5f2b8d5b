/**
 * The operating commands against an AWS emulator (moto_server), through the real binary
 * (bin/dequeue.js) with AWS_ENDPOINT_URL as an operator would set it (issue 18): config push
 * refuses a secretId the function could not read, pull --out never crashes or leaves the
 * deployed document in a temporary file, push --json says something for every parameter, and
 * an unsupported Node.js is one line of ours, not the SDK's eight.
 */
import { chmod, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { REPO, runDequeue } from '../support/dequeue-process';
import { describeWithMotoServer, startMotoServer, type MotoServer } from '../servers/moto-server';

describeWithMotoServer('config push | pull through the binary, against moto_server', () => {
  let moto: MotoServer;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    // One start first: it builds the CLI's bundle when the sources changed (bin/dequeue.js).
    await runDequeue(['--version'], 60_000);
    moto = await startMotoServer();
    dir = await mkdtemp(join(tmpdir(), 'dequeue-operator-aws-'));
    env = {
      AWS_ENDPOINT_URL: moto.endpoint,
      AWS_REGION: moto.clientConfig.region,
      AWS_ACCESS_KEY_ID: moto.clientConfig.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: moto.clientConfig.credentials.secretAccessKey,
      AWS_EC2_METADATA_DISABLED: 'true',
    };
  });
  afterAll(async () => moto?.stop());
  beforeEach(() => moto.reset());

  const dequeue = (args: string[]) => runDequeue(args, 60_000, { env });
  let n = 0;
  async function config(document: unknown): Promise<string> {
    const path = join(dir, `${++n}-config.json`);
    await writeFile(path, JSON.stringify(document));
    return path;
  }
  const target = (name: string, extra: Record<string, unknown> = {}) => ({
    name,
    host: 'relay.isp.example',
    command: `ETRN ${name}.example`,
    ...extra,
  });

  it('push refuses every auth.secretId outside the secret prefix, naming the field; exit 2, nothing written (item 3)', async () => {
    const file = await config({
      targets: [
        target('a', { auth: { secretId: 'isp' } }),
        target('b', { auth: { secretId: 'dequeue/isp' } }),
        target('c', { auth: { secretId: 'prod/isp' } }),
      ],
    });
    const r = await dequeue(['config', 'push', '--config', file]);
    expect(r).toMatchObject({ status: 2, stdout: '' });
    const outside = (i: number, id: string, prefix: string) =>
      `dequeue config push: ${file}: targets[${i}].auth.secretId: "${id}" is outside the secrets the deployed function may read (names starting with "${prefix}"): name a secret under it, or give --secret-prefix the stack's secretPrefix`;
    expect(r.stderr.split('\n').filter((l) => !l.includes('warning: Node.js'))).toEqual([
      outside(0, 'isp', 'dequeue/'),
      outside(2, 'prod/isp', 'dequeue/'),
      'dequeue config push: 2 errors; nothing was written',
      '',
    ]);
    const pulled = await dequeue(['config', 'pull']);
    expect(pulled).toMatchObject({ status: 2, stdout: '' });
    expect(pulled.stderr).toContain('nothing is deployed under /dequeue');

    // The stack's own prefix, given: the same rule the function applies.
    const prod = await dequeue(['config', 'push', '--config', file, '--secret-prefix', 'prod/']);
    expect(prod.status).toBe(2);
    expect(prod.stderr).toContain(outside(0, 'isp', 'prod/'));
    expect(prod.stderr).toContain(outside(1, 'dequeue/isp', 'prod/'));
  });

  it('push warns about an auth.secretId that names no secret in Secrets Manager; exit 0 (beyond the list)', async () => {
    const file = await config({
      targets: [
        target('a', { auth: { secretId: 'dequeue/isp' } }),
        target('b', { auth: { secretId: 'dequeue/there' } }),
      ],
    });
    const sm = new SecretsManagerClient(moto.clientConfig);
    try {
      await sm.send(
        new CreateSecretCommand({
          Name: 'dequeue/there',
          SecretString: JSON.stringify({ username: 'u', password: 'p' }),
        }),
      );
    } finally {
      sm.destroy();
    }
    const r = await dequeue(['config', 'push', '--config', file]);
    expect(r.status).toBe(0);
    expect(
      r.stderr.split('\n').filter((l) => l.includes('warning:') && !l.includes('Node.js')),
    ).toEqual([
      `dequeue config push: warning: ${file}: targets[0].auth.secretId: no secret "dequeue/isp" in Secrets Manager: create it (aws secretsmanager create-secret --name dequeue/isp --secret-string '{"username": "...", "password": "..."}'), or the function reports the target config-error every cycle`,
    ]);
    expect(r.stdout).toContain('created /dequeue/targets/a (String)');
  });

  it('push --json prints one object per parameter, the unchanged ones too (item 7)', async () => {
    const file = await config({ settings: { everyNthCycle: 2 }, targets: [target('a')] });
    expect((await dequeue(['config', 'push', '--config', file])).status).toBe(0);
    const again = await dequeue(['config', 'push', '--config', file, '--json']);
    expect(again.status).toBe(0);
    expect(
      again.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toEqual([
      {
        parameter: '/dequeue/settings',
        target: null,
        action: 'unchanged',
        type: 'String',
        dryRun: false,
      },
      {
        parameter: '/dequeue/targets/a',
        target: 'a',
        action: 'unchanged',
        type: 'String',
        dryRun: false,
      },
    ]);
  });

  it('pull --out to a missing directory, a directory or a read-only file: exit 2, one line with the fix, no temporary file left (item 5)', async () => {
    const file = await config({ targets: [target('a')] });
    expect((await dequeue(['config', 'push', '--config', file])).status).toBe(0);
    const place = await mkdtemp(join(dir, 'out-'));
    const readOnly = join(place, 'deployed.json');
    await writeFile(readOnly, '{}\n');
    await chmod(readOnly, 0o444);
    await mkdir(join(place, 'a-directory'));
    const cases: [string, string][] = [
      [
        join(place, 'missing', 'deployed.json'),
        `the directory ${join(place, 'missing')} does not exist: create it (mkdir -p ${join(place, 'missing')}) or give --out a file in a directory that exists; nothing was written`,
      ],
      [join(place, 'a-directory'), 'is a directory: give --out a file name; nothing was written'],
      [
        readOnly,
        `is read-only: make it writable (chmod u+w ${readOnly}) or give --out another file; nothing was written`,
      ],
    ];
    for (const [out, why] of cases) {
      const r = await dequeue(['config', 'pull', '--out', out]);
      expect(r).toMatchObject({ status: 2, stdout: '' });
      expect(r.stderr.split('\n').filter((l) => !l.includes('warning: Node.js'))).toEqual([
        `dequeue config pull: ${out}: --out: ${why}`,
        '',
      ]);
    }
    expect((await readdir(place)).sort()).toEqual(['a-directory', 'deployed.json']);
    expect(await readFile(readOnly, 'utf8')).toBe('{}\n');

    // `--out -` is stdout, not a file named "-".
    const dash = await dequeue(['config', 'pull', '--out', '-']);
    expect(dash.status).toBe(0);
    expect(JSON.parse(dash.stdout).targets).toEqual([target('a')]);
    await expect(readFile(join(REPO, '-'))).rejects.toMatchObject({ code: 'ENOENT' });

    const written = join(place, 'written.json');
    const ok = await dequeue(['config', 'pull', '--out', written]);
    expect(ok.status).toBe(0);
    expect(JSON.parse(await readFile(written, 'utf8')).targets).toEqual([target('a')]);
  });

  it('deliver --bucket with a --target that has nothing stored says so on stderr (S3 keeps nothing of delivered mail) (item 4)', async () => {
    const s3 = new S3Client({ ...moto.clientConfig, forcePathStyle: true });
    try {
      await s3.send(new CreateBucketCommand({ Bucket: 'stored-mail' }));
      await s3.send(
        new PutObjectCommand({
          Bucket: 'stored-mail',
          Key: 'mail/failed/isp/2026/12/01/x.eml',
          Body: 'x',
        }),
      );
    } finally {
      s3.destroy();
    }
    const r = await dequeue([
      'deliver',
      '--bucket',
      'stored-mail',
      '--to',
      'smtp://127.0.0.1:1',
      '--target',
      'isq',
    ]);
    expect(r).toMatchObject({ status: 0, stdout: '' });
    expect(r.stderr.split('\n').filter((l) => !l.includes('warning: Node.js'))[0]).toBe(
      'dequeue deliver: --target isq: nothing of that target is stored in s3://stored-mail/mail/ now (did you mean isp? stored targets: isp)',
    );
  });

  it('pull from a --prefix with nothing under it is exit 2, naming it; diff says every parameter is new (beyond the list)', async () => {
    const file = await config({ targets: [target('a')] });
    expect((await dequeue(['config', 'push', '--config', file])).status).toBe(0);
    const out = join(dir, 'pulled-from-a-typo.json');
    const r = await dequeue(['config', 'pull', '--prefix', '/dequeu', '--out', out]);
    expect(r).toMatchObject({ status: 2, stdout: '' });
    expect(r.stderr.split('\n').filter((l) => !l.includes('warning: Node.js'))).toEqual([
      "dequeue config pull: nothing is deployed under /dequeu (no /dequeu/settings, no /dequeu/targets/...): give --prefix the stack's ssmPrefix (default /dequeue); nothing was written",
      '',
    ]);
    await expect(readFile(out)).rejects.toMatchObject({ code: 'ENOENT' });

    const d = await dequeue(['config', 'diff', '--config', file, '--prefix', '/dequeu']);
    expect(d.status).toBe(1);
    expect(d.stdout).toBe('+ /dequeu/settings\n+ /dequeu/targets/a\n');
    expect(d.stderr).toContain(
      "dequeue config diff: nothing is deployed under /dequeu (no /dequeu/settings, no /dequeu/targets/...): every parameter would be new (is --prefix the stack's ssmPrefix?)\n",
    );
  });

  it("a table or bucket that is not the stack's is named with the output to use (beyond the list)", async () => {
    const said = (r: { stderr: string }) =>
      r.stderr.split('\n').filter((l) => l && !l.includes('warning: Node.js'));
    const table = await dequeue(['status', '--table', 'no-such-table']);
    expect(table).toMatchObject({ status: 2, stdout: '' });
    expect(said(table)).toEqual([
      "dequeue status: target status (index status): DynamoDB Query on no-such-table failed: ResourceNotFoundException: Requested resource not found: give --table the stack's CounterTableName output (and AWS_REGION its region)",
    ]);

    const db = new DynamoDBClient(moto.clientConfig);
    try {
      await db.send(
        new CreateTableCommand({
          TableName: 'not-the-counter',
          AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
          KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
          BillingMode: 'PAY_PER_REQUEST',
        }),
      );
    } finally {
      db.destroy();
    }
    const other = await dequeue(['status', '--table', 'not-the-counter']);
    expect(other.status).toBe(2);
    expect(said(other)[0]).toMatch(
      /^dequeue status: target status \(index status\): DynamoDB Query on not-the-counter failed: .*: this table has no status index: is it the stack's CounterTableName output\? A stack from before the index needs a cdk deploy$/,
    );

    const bucket = await dequeue([
      'deliver',
      '--bucket',
      'no-such-bucket',
      '--to',
      'smtp://127.0.0.1:1',
    ]);
    expect(bucket).toMatchObject({ status: 2, stdout: '' });
    expect(said(bucket)).toEqual([
      "dequeue deliver: --bucket: cannot list s3://no-such-bucket/mail/: NoSuchBucket: The specified bucket does not exist: give --bucket the stack's MailBucketName output (and AWS_REGION its region)",
    ]);
  });

  it("Node.js older than 22 gets one line of ours instead of the SDK's eight; 22 and later none (item 8)", async () => {
    expect(
      (await dequeue(['config', 'push', '--config', await config({ targets: [] })])).status,
    ).toBe(0);
    // As an operator runs it: without the switch vitest sets for its own workers (vitest.config.ts).
    const r = await runDequeue(['config', 'pull'], 60_000, {
      env: { ...env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: undefined },
    });
    expect(r.status).toBe(0);
    expect(r.stderr).not.toContain('NodeVersionSupportWarning');
    const ours = r.stderr.split('\n').filter((l) => l.includes('Node.js'));
    if (Number(process.versions.node.split('.')[0]) < 22)
      expect(ours).toEqual([
        `dequeue: warning: Node.js ${process.versions.node} is past its end of life: dequeue supports Node.js 22 and 24`,
      ]);
    else expect(ours).toEqual([]);
  });
});
