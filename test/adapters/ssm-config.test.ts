import {
  GetParameterCommand,
  GetParametersByPathCommand,
  GetParametersCommand,
  ParameterNotFound,
  SSMClient,
  SSMServiceException,
  type Parameter,
} from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  ConfigUnavailableError,
  secretIdWithin,
  SsmConfigSource,
} from '../../lambda/adapters/ssm-config';

const ssm = mockClient(SSMClient);
const client = new SSMClient({
  region: 'us-east-1',
  credentials: { accessKeyId: 'k', secretAccessKey: 's' },
});

const param = (name: string, value: unknown, type = 'String'): Parameter => ({
  Name: name,
  Type: type as Parameter['Type'],
  Value: typeof value === 'string' ? value : JSON.stringify(value),
});
const target = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  host: 'relay.example',
  command: 'ETRN example.com',
  ...extra,
});

function serveTargets(parameters: Parameter[], pageSize = 10): void {
  const pages = Array.from(
    { length: Math.max(1, Math.ceil(parameters.length / pageSize)) },
    (_, i) => parameters.slice(i * pageSize, (i + 1) * pageSize),
  );
  ssm.on(GetParametersByPathCommand).callsFake((input: { NextToken?: string }) => {
    const index = input.NextToken ? Number(input.NextToken) : 0;
    return {
      Parameters: pages[index],
      NextToken: index + 1 < pages.length ? String(index + 1) : undefined,
    };
  });
}

const throttled = () =>
  new SSMServiceException({
    name: 'ThrottlingException',
    $fault: 'client',
    $metadata: { httpStatusCode: 400 },
    message: 'Rate exceeded',
  });
const denied = () =>
  new SSMServiceException({
    name: 'AccessDeniedException',
    $fault: 'client',
    $metadata: { httpStatusCode: 400 },
    message: 'not authorized to perform ssm:GetParametersByPath',
  });

beforeEach(() => {
  ssm.reset();
  ssm
    .on(GetParameterCommand)
    .rejects(new ParameterNotFound({ $metadata: {}, message: 'not found' }));
});

describe('SsmConfigSource', () => {
  it('pages through thousands of targets with Recursive and WithDecryption, 10 per call', async () => {
    serveTargets(
      Array.from({ length: 2345 }, (_, i) =>
        param(`/dequeue/targets/t${i}`, target(`t${i}`), i % 2 ? 'SecureString' : 'String'),
      ),
    );
    const config = await new SsmConfigSource(client).load();

    expect(config.targets).toHaveLength(2345);
    expect(config.invalid).toEqual([]);
    const calls = ssm.commandCalls(GetParametersByPathCommand);
    expect(calls).toHaveLength(235);
    expect(calls[0]!.args[0].input).toEqual({
      Path: '/dequeue/targets',
      Recursive: true,
      WithDecryption: true,
      MaxResults: 10,
      NextToken: undefined,
    });
    expect(calls[1]!.args[0].input.NextToken).toBe('1');
  });

  it('reads <prefix>/settings with decryption; a missing one means the defaults', async () => {
    serveTargets([param('/ops/dq/targets/a', target('a'))]);
    const config = await new SsmConfigSource(client, { prefix: '/ops/dq/' }).load();
    expect(ssm.commandCalls(GetParameterCommand)[0]!.args[0].input).toEqual({
      Name: '/ops/dq/settings',
      WithDecryption: true,
    });
    expect(config.settings).toEqual({ everyNthCycle: 0, concurrency: 10 });
    expect(config.targets.map((t) => t.name)).toEqual(['a']);
  });

  it('uses the settings parameter when present', async () => {
    ssm.on(GetParameterCommand).resolves({
      Parameter: param('/dequeue/settings', {
        everyNthCycle: 3,
        helloName: 'mx.customer.example',
        concurrency: 4,
      }),
    });
    serveTargets([]);
    const config = await new SsmConfigSource(client).load();
    expect(config.settings).toEqual({
      everyNthCycle: 3,
      helloName: 'mx.customer.example',
      concurrency: 4,
    });
  });

  it('keeps each invalid target to itself, naming the parameter and the field', async () => {
    serveTargets([
      param('/dequeue/targets/good', target('good')),
      param('/dequeue/targets/bad-json', '{"name": "bad-json", "host": "secret-ish'),
      param('/dequeue/targets/bad-port', target('bad-port', { port: 70000 })),
      param('/dequeue/targets/renamed', target('other')),
      param('/dequeue/targets/typo', target('typo', { everyNthCyle: 2 })),
    ]);
    const config = await new SsmConfigSource(client).load();

    expect(config.targets.map((t) => t.name)).toEqual(['good']);
    const errors = Object.fromEntries(config.invalid.map((t) => [t.name, t.error.message]));
    expect(errors['bad-json']).toMatch(/^\/dequeue\/targets\/bad-json: is not valid JSON/);
    expect(errors['bad-json']).not.toContain('secret-ish');
    expect(errors['bad-port']).toBe('/dequeue/targets/bad-port: port: must be at most 65535');
    expect(errors.renamed).toBe(
      `/dequeue/targets/renamed: name: "other" differs from the parameter's last path segment "renamed"; they must be the same`,
    );
    expect(errors.typo).toBe(
      '/dequeue/targets/typo: everyNthCyle: is not a known field: did you mean "everyNthCycle"?',
    );
  });

  it('reports every parameter of a duplicated name (sub-folders), each under its own key', async () => {
    serveTargets([
      param('/dequeue/targets/b/dup', target('dup')),
      param('/dequeue/targets/a/dup', target('dup')),
      param('/dequeue/targets/solo', target('solo')),
    ]);
    const config = await new SsmConfigSource(client).load();
    expect(config.targets.map((t) => t.name)).toEqual(['solo']);
    expect(config.invalid.map((t) => t.name)).toEqual(['dup', '/dequeue/targets/b/dup']);
    expect(config.invalid[0]!.error.message).toContain(
      '"dup" is the name of several parameters (/dequeue/targets/a/dup, /dequeue/targets/b/dup)',
    );
  });

  it('refuses a secret outside the secret prefix before anything is sent', async () => {
    serveTargets([
      param('/dequeue/targets/inside', target('inside', { auth: { secretId: 'dequeue/isp' } })),
      param('/dequeue/targets/outside', target('outside', { auth: { secretId: 'prod/db-root' } })),
    ]);
    const config = await new SsmConfigSource(client, { secretPrefix: 'dequeue/' }).load();
    expect(config.targets.map((t) => t.name)).toEqual(['inside']);
    expect(config.invalid[0]!.error.message).toBe(
      '/dequeue/targets/outside: auth.secretId: "prod/db-root" is outside the secrets this function may read (names starting with "dequeue/", DEQUEUE_SECRET_PREFIX)',
    );
  });

  it('refuses a target on a port the function cannot reach, naming the port and the fix', async () => {
    serveTargets([
      param('/dequeue/targets/smtp', target('smtp')),
      param('/dequeue/targets/odd', target('odd', { port: 2525 })),
      param(
        '/dequeue/targets/odmr',
        target('odmr', { command: 'ATRN example.com', auth: { secretId: 'dequeue/isp' } }),
      ),
    ]);
    const config = await new SsmConfigSource(client, { reachablePorts: [25, 443] }).load();
    expect(config.targets.map((t) => t.name)).toEqual(['smtp']);
    expect(config.invalid.map((t) => t.error.message)).toEqual([
      '/dequeue/targets/odd: port: 2525 is not among the ports this function may connect to (25, 443: the stack\'s egressPorts, DEQUEUE_EGRESS_PORTS); add it to "egressPorts" in cdk.json and deploy',
      '/dequeue/targets/odmr: port: 366 is not among the ports this function may connect to (25, 443: the stack\'s egressPorts, DEQUEUE_EGRESS_PORTS); add it to "egressPorts" in cdk.json and deploy',
    ]);
    // Without the list (outside a VPC), any port.
    expect((await new SsmConfigSource(client).load()).targets).toHaveLength(3);
  });

  it('fails the whole load on invalid settings, naming every listed target', async () => {
    ssm
      .on(GetParameterCommand)
      .resolves({ Parameter: param('/dequeue/settings', { concurrency: 0 }) });
    serveTargets([param('/dequeue/targets/a', target('a')), param('/dequeue/targets/b', '{')]);
    const error = await new SsmConfigSource(client).load().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigUnavailableError);
    expect((error as ConfigUnavailableError).kind).toBe('config');
    expect((error as ConfigUnavailableError).targets).toEqual(['b', 'a']);
    expect((error as Error).message).toBe(
      '/dequeue/settings: concurrency: must be at least 1; no target is signalled until the settings are fixed',
    );
  });

  it('turns throttling into a temporary error and access denied into a config error, naming the targets last seen', async () => {
    const source = new SsmConfigSource(client);
    serveTargets([param('/dequeue/targets/a', target('a'))]);
    await source.load();

    ssm.on(GetParametersByPathCommand).rejects(throttled());
    const slow = (await source.load().catch((e: unknown) => e)) as ConfigUnavailableError;
    expect(slow.kind).toBe('temporary');
    expect(slow.targets).toEqual(['a']);
    expect(slow.message).toBe(
      'SSM GetParametersByPath /dequeue/targets failed: ThrottlingException: Rate exceeded',
    );

    ssm.on(GetParametersByPathCommand).rejects(denied());
    const refused = (await source.load().catch((e: unknown) => e)) as ConfigUnavailableError;
    expect(refused.kind).toBe('config');
    expect(refused.message).toContain('AccessDeniedException: not authorized');
  });

  it('a cold instance that cannot list knows no target names', async () => {
    ssm.on(GetParametersByPathCommand).rejects(throttled());
    const error = (await new SsmConfigSource(client)
      .load()
      .catch((e: unknown) => e)) as ConfigUnavailableError;
    expect(error.targets).toEqual([]);
    expect(error.source).toBe('/dequeue/targets');
  });

  it('rejects a prefix that is not an SSM path', () => {
    expect(() => new SsmConfigSource(client, { prefix: 'dequeue' })).toThrow(
      'DEQUEUE_SSM_PREFIX: "dequeue" must be an SSM parameter path such as /dequeue',
    );
  });
});

describe('secretIdWithin', () => {
  it('checks names and the name part of ARNs', () => {
    expect(secretIdWithin('dequeue/isp', 'dequeue/')).toBe(true);
    expect(secretIdWithin('dequeueX', 'dequeue/')).toBe(false);
    expect(
      secretIdWithin(
        'arn:aws:secretsmanager:eu-west-1:123456789012:secret:dequeue/isp-AbCdEf',
        'dequeue/',
      ),
    ).toBe(true);
    expect(
      secretIdWithin(
        'arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf',
        'dequeue/',
      ),
    ).toBe(false);
  });
});

describe('SsmConfigSource.lookup: what a work order names, read by the worker itself', () => {
  /** GetParameters over a fixed set of parameters, 10 names a call at most (the API's limit). */
  function serveNames(parameters: Parameter[]): string[][] {
    const calls: string[][] = [];
    ssm.on(GetParametersCommand).callsFake((input: { Names: string[] }) => {
      if (input.Names.length > 10) throw new Error('more than 10 names in one GetParameters');
      calls.push(input.Names);
      return {
        Parameters: parameters.filter((p) => input.Names.includes(p.Name!)),
        InvalidParameters: input.Names.filter((n) => !parameters.some((p) => p.Name === n)),
      };
    });
    return calls;
  }

  it('reads the settings and 25 targets in 3 GetParameters calls, with decryption', async () => {
    const calls = serveNames([
      param('/dequeue/settings', { concurrency: 7 }),
      ...Array.from({ length: 25 }, (_, i) =>
        param(`/dequeue/targets/t${i}`, target(`t${i}`), 'SecureString'),
      ),
    ]);
    const config = await new SsmConfigSource(client).lookup(
      Array.from({ length: 25 }, (_, i) => ({ name: `t${i}` })),
    );
    expect(config.settings.concurrency).toBe(7);
    expect(config.targets.map((t) => t.name)).toHaveLength(25);
    expect(calls.map((c) => c.length)).toEqual([10, 10, 6]);
    expect(calls[0]![0]).toBe('/dequeue/settings');
    expect(
      ssm.commandCalls(GetParametersCommand).every((c) => c.args[0].input.WithDecryption),
    ).toBe(true);
    expect(config.locations!.t3).toBe('/dequeue/targets/t3');
  });

  it('refuses, unread, a place outside <prefix>/targets/ or not ending in the name; a missing one is unknown', async () => {
    const calls = serveNames([
      param('/dequeue/targets/group/isp', target('isp')),
      param('/attacker/targets/isp', target('isp', { host: 'attacker.example' })),
    ]);
    const config = await new SsmConfigSource(client).lookup([
      { name: 'isp', location: '/attacker/targets/isp' },
      { name: 'isp', location: '/dequeue/targets/group/other' },
      { name: 'isp', location: '/dequeue/targets/group/isp' },
      { name: 'ghost' },
    ]);
    expect(calls.flat()).not.toContain('/attacker/targets/isp');
    expect(config.targets.map((t) => [t.name, t.host])).toEqual([['isp', 'relay.example']]);
    expect(config.locations).toEqual({ isp: '/dequeue/targets/group/isp' });
    expect(config.unknown!.map((u) => u.error.message)).toEqual([
      expect.stringMatching(/^\/attacker\/targets\/isp: is not where this deployment keeps/),
      expect.stringMatching(/^\/dequeue\/targets\/group\/other: is not where/),
      expect.stringMatching(/^\/dequeue\/targets\/ghost: does not exist/),
    ]);
  });

  it("applies the listing's checks: a secret outside the prefix is an invalid target", async () => {
    serveNames([param('/dequeue/targets/isp', target('isp', { auth: { secretId: 'other/isp' } }))]);
    const config = await new SsmConfigSource(client, { secretPrefix: 'dequeue/' }).lookup([
      { name: 'isp' },
    ]);
    expect(config.targets).toEqual([]);
    expect(config.invalid[0]!.error.message).toMatch(/auth\.secretId: "other\/isp" is outside/);
  });

  it('an SSM failure is ConfigUnavailableError with its kind', async () => {
    ssm.on(GetParametersCommand).rejects(throttled());
    const error = await new SsmConfigSource(client)
      .lookup([{ name: 'isp' }])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigUnavailableError);
    expect((error as ConfigUnavailableError).kind).toBe('temporary');
    expect((error as Error).message).toMatch(/SSM GetParameters .* failed: ThrottlingException/);
  });
});
