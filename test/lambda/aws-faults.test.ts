/**
 * When AWS itself fails: SSM throttled or denied, Secrets Manager throttled, the counter table
 * missing. Each gives the stated result, and a fault of one target never stops the others.
 * Faults are injected into otherwise real clients talking to moto_server, by a middleware that
 * throws the error AWS would return.
 */
import { DeleteTableCommand } from '@aws-sdk/client-dynamodb';
import {
  SecretsManagerClient,
  SecretsManagerServiceException,
} from '@aws-sdk/client-secrets-manager';
import { SSMClient, SSMServiceException } from '@aws-sdk/client-ssm';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { SecretsManagerCredentials } from '../../lambda/adapters/secrets-manager-credentials';
import { SsmConfigSource } from '../../lambda/adapters/ssm-config';
import { describeWithMotoServer, startMotoServer, type MotoServer } from '../servers/moto-server';
import { ScriptedProvider } from '../../peers/scripted-provider';
import { AwsWorld, CapturedOutput, contextWith, scheduledEvent, TABLE } from './aws-world';

/** Given the command's name (e.g. `GetParametersByPathCommand`), the error to fail it with, if any. */
type Fault = (command: string) => Error | undefined;

/** Make `client` fail with what `fault()` returns (when it returns something), before any retry. */
function injectFault(client: SSMClient | SecretsManagerClient, fault: Fault): void {
  (client.middlewareStack as { add: (mw: unknown, options: unknown) => void }).add(
    (next: (args: unknown) => Promise<unknown>, context: { commandName: string }) =>
      async (args: unknown) => {
        const error = fault(context.commandName);
        if (error) throw error;
        return next(args);
      },
    { step: 'initialize', name: 'injectFault' },
  );
}

const throttling = (service: typeof SSMServiceException | typeof SecretsManagerServiceException) =>
  new service({
    name: 'ThrottlingException',
    $fault: 'client',
    $metadata: { httpStatusCode: 400 },
    message: 'Rate exceeded',
  });
const accessDenied = () =>
  new SSMServiceException({
    name: 'AccessDeniedException',
    $fault: 'client',
    $metadata: { httpStatusCode: 400 },
    message:
      'User: arn:aws:sts::123456789012:assumed-role/dequeue/fn is not authorized to perform: ssm:GetParametersByPath',
  });

describeWithMotoServer('AWS faults: each reported, none stopping the other targets', () => {
  let moto: MotoServer;
  let world: AwsWorld;
  let provider: ScriptedProvider;
  let output: CapturedOutput;

  beforeAll(async () => {
    moto = await startMotoServer();
    world = new AwsWorld(moto);
    provider = await new ScriptedProvider({
      extensions: ['ETRN', 'AUTH CRAM-MD5'],
      account: { username: 'cust', password: 'pw-123456' },
    }).start();
  });
  afterAll(async () => {
    await provider?.stop();
    await moto?.stop();
  });
  beforeEach(async () => {
    await world.reset();
    provider.connections.length = 0;
    output = new CapturedOutput();
    await world.putTarget('a', {
      name: 'a',
      host: '127.0.0.1',
      port: provider.port,
      tls: 'none',
      command: 'ETRN a.example',
    });
    await world.putTarget('b', {
      name: 'b',
      host: '127.0.0.1',
      port: provider.port,
      tls: 'none',
      command: 'ETRN b.example',
      auth: { secretId: 'dequeue/isp' },
    });
    await world.putSecret('dequeue/isp', { username: 'cust', password: 'pw-123456' });
  });
  afterEach(() => output.restore());

  const ssmWith = (fault: Fault) => {
    const client = new SSMClient(moto.clientConfig);
    injectFault(client, fault);
    return new SsmConfigSource(client, { prefix: '/dequeue', secretPrefix: 'dequeue/' });
  };

  it('SSM throttled on a warm instance: every target known reports it, nothing is sent or counted', async () => {
    let throttle = false;
    const handler = world.handler({
      config: ssmWith((command) =>
        throttle && command === 'GetParametersByPathCommand'
          ? throttling(SSMServiceException)
          : undefined,
      ),
    });
    expect((await handler(scheduledEvent('2026-03-01T10:00:00Z'), contextWith())).cycle).toBe(1);
    const sentBefore = provider.connections.length;

    throttle = true;
    const result = await handler(scheduledEvent('2026-03-01T10:05:00Z'), contextWith());

    expect(result.cycle).toBe(1);
    expect(result.results.map((r) => [r.target, r.outcome, r.error])).toEqual([
      [
        'a',
        'temporary-failure',
        'SSM GetParametersByPath /dequeue/targets failed: ThrottlingException: Rate exceeded',
      ],
      [
        'b',
        'temporary-failure',
        'SSM GetParametersByPath /dequeue/targets failed: ThrottlingException: Rate exceeded',
      ],
    ]);
    expect(provider.connections).toHaveLength(sentBefore);
    expect(await world.counter()).toBe(1);
    expect(output.emf.find((e) => 'TargetFailures' in e && e.TargetFailures === 2)).toBeDefined();
  });

  it('SSM access denied on a cold instance: one config-error result naming the path', async () => {
    const handler = world.handler({
      config: ssmWith((command) =>
        command === 'GetParametersByPathCommand' ? accessDenied() : undefined,
      ),
    });
    const result = await handler(scheduledEvent('2026-03-01T10:00:00Z'), contextWith());
    expect(result).toEqual({
      cycle: 0,
      results: [
        {
          target: '/dequeue/targets',
          outcome: 'config-error',
          cycle: 0,
          durationMs: 0,
          replies: [],
          messages: 0,
          error:
            'SSM GetParametersByPath /dequeue/targets failed: AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/dequeue/fn is not authorized to perform: ssm:GetParametersByPath',
        },
      ],
    });
    // Asked for by name: the names asked for report it.
    const named = await handler({ targets: ['a'] }, contextWith());
    expect(named.results.map((r) => [r.target, r.outcome])).toEqual([['a', 'config-error']]);
    expect(provider.connections).toHaveLength(0);
  });

  it('Secrets Manager throttled: the target that needs a secret fails temporarily, the other is signalled', async () => {
    const client = new SecretsManagerClient(moto.clientConfig);
    injectFault(client, () => throttling(SecretsManagerServiceException));
    const handler = world.handler({
      credentials: new SecretsManagerCredentials(client, { allowedPrefix: 'dequeue/' }),
    });

    const result = await handler(scheduledEvent('2026-03-01T10:00:00Z'), contextWith());

    expect(result.results.map((r) => [r.target, r.outcome, r.error])).toEqual([
      ['a', 'signalled', null],
      [
        'b',
        'temporary-failure',
        'secret dequeue/isp: cannot be read: ThrottlingException: Rate exceeded',
      ],
    ]);
    expect(provider.lines.filter((l) => l.startsWith('ETRN'))).toEqual(['ETRN a.example']);
  });

  it('the counter table missing: every target reports it, nothing is sent', async () => {
    await world.dynamodb.send(new DeleteTableCommand({ TableName: TABLE }));
    const result = await world.handler()(scheduledEvent('2026-03-01T10:00:00Z'), contextWith());
    expect(result.results.map((r) => r.target)).toEqual(['a', 'b']);
    for (const r of result.results) {
      expect(r.outcome).toBe('config-error');
      expect(r.error).toMatch(
        /^cycle counter: DynamoDB GetItem on dequeue-counter failed: ResourceNotFoundException/,
      );
    }
    expect(provider.connections).toHaveLength(0);
  });
});
