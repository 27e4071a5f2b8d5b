import {
  GetSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
  SecretsManagerServiceException,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { inspect } from 'node:util';
import { beforeEach, describe, expect, it } from 'vitest';
import { SecretsManagerCredentials } from '../../lambda/adapters/secrets-manager-credentials';
import { DequeueError } from '../../lambda/core/errors';

const sm = mockClient(SecretsManagerClient);
const client = new SecretsManagerClient({
  region: 'us-east-1',
  credentials: { accessKeyId: 'k', secretAccessKey: 's' },
});
const secret = (value: unknown) => ({
  SecretString: typeof value === 'string' ? value : JSON.stringify(value),
});

beforeEach(() => sm.reset());

async function failure(promise: Promise<unknown>): Promise<DequeueError> {
  const e = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(DequeueError);
  return e as DequeueError;
}

describe('SecretsManagerCredentials', () => {
  it('reads {"username","password"} by secret id', async () => {
    sm.on(GetSecretValueCommand, { SecretId: 'dequeue/isp' }).resolves(
      secret({ username: 'cust', password: 'hunter2' }),
    );
    const creds = await new SecretsManagerCredentials(client).get('dequeue/isp');
    expect([creds.username, creds.password]).toEqual(['cust', 'hunter2']);
    expect(sm.commandCalls(GetSecretValueCommand)[0]!.args[0].input).toEqual({
      SecretId: 'dequeue/isp',
    });
  });

  it('never shows the password when the credentials are logged', async () => {
    sm.on(GetSecretValueCommand).resolves(secret({ username: 'cust', password: 'hunter2' }));
    const creds = await new SecretsManagerCredentials(client).get('dequeue/isp');
    expect(JSON.stringify({ creds })).not.toContain('hunter2');
    expect(inspect(creds)).not.toContain('hunter2');
    expect(JSON.stringify(creds)).toContain('[redacted]');
  });

  it('caches for the TTL, then reads again', async () => {
    let clock = 1_000_000;
    sm.on(GetSecretValueCommand)
      .resolvesOnce(secret({ username: 'u', password: 'old' }))
      .resolves(secret({ username: 'u', password: 'rotated' }));
    const store = new SecretsManagerCredentials(client, { now: () => clock });

    expect((await store.get('dequeue/isp')).password).toBe('old');
    clock += 5 * 60 * 1000 - 1;
    expect((await store.get('dequeue/isp')).password).toBe('old');
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(1);
    clock += 1;
    expect((await store.get('dequeue/isp')).password).toBe('rotated');
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(2);
  });

  it('shares one request between concurrent gets of the same id', async () => {
    sm.on(GetSecretValueCommand).callsFake(async () => {
      await new Promise((r) => setTimeout(r, 20));
      return secret({ username: 'u', password: 'p' });
    });
    const store = new SecretsManagerCredentials(client);
    const all = await Promise.all([
      store.get('dequeue/a'),
      store.get('dequeue/a'),
      store.get('dequeue/a'),
      store.get('dequeue/b'),
    ]);
    expect(all.map((c) => c.username)).toEqual(['u', 'u', 'u', 'u']);
    expect(sm.commandCalls(GetSecretValueCommand).map((c) => c.args[0].input.SecretId)).toEqual([
      'dequeue/a',
      'dequeue/b',
    ]);
  });

  it('does not cache a failure: a secret created after a failing cycle is found next time', async () => {
    sm.on(GetSecretValueCommand)
      .rejectsOnce(
        new ResourceNotFoundException({
          $metadata: {},
          message: "Secrets Manager can't find the specified secret.",
        }),
      )
      .resolves(secret({ username: 'u', password: 'p' }));
    const store = new SecretsManagerCredentials(client);
    const e = await failure(store.get('dequeue/late'));
    expect(e.kind).toBe('config');
    expect(e.message).toBe('secret dequeue/late: does not exist (or has no current version)');
    expect((await store.get('dequeue/late')).username).toBe('u');
  });

  it.each([
    [
      'not JSON',
      'user:hunter2',
      'secret dequeue/x: is not a JSON object {"username": "...", "password": "..."}',
    ],
    [
      'an array',
      '["hunter2"]',
      'secret dequeue/x: is not a JSON object {"username": "...", "password": "..."}',
    ],
    [
      'no username',
      { password: 'hunter2' },
      'secret dequeue/x: username: must be a non-empty string',
    ],
    [
      'an empty password',
      { username: 'u', password: '' },
      'secret dequeue/x: password: must be a non-empty string',
    ],
    [
      'a numeric password',
      { username: 'u', password: 12345 },
      'secret dequeue/x: password: must be a non-empty string',
    ],
  ])(
    'names the secret and the field when it is %s, never quoting it',
    async (_, value, message) => {
      sm.on(GetSecretValueCommand).resolves(secret(value));
      const e = await failure(new SecretsManagerCredentials(client).get('dequeue/x'));
      expect(e.kind).toBe('config');
      expect(e.message).toBe(message);
      expect(e.message).not.toContain('hunter2');
    },
  );

  it('a binary secret is a config error', async () => {
    sm.on(GetSecretValueCommand).resolves({ SecretBinary: new Uint8Array([1, 2]) });
    const e = await failure(new SecretsManagerCredentials(client).get('dequeue/bin'));
    expect(e.message).toBe(
      'secret dequeue/bin: has no SecretString: store {"username": "...", "password": "..."} as text',
    );
  });

  it('access denied is a config error, throttling a temporary one', async () => {
    const store = new SecretsManagerCredentials(client);
    sm.on(GetSecretValueCommand).rejects(
      new SecretsManagerServiceException({
        name: 'AccessDeniedException',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
        message: 'not authorized',
      }),
    );
    expect((await failure(store.get('dequeue/a'))).kind).toBe('config');
    sm.reset();
    sm.on(GetSecretValueCommand).rejects(
      new SecretsManagerServiceException({
        name: 'ThrottlingException',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
        message: 'Rate exceeded',
      }),
    );
    const slow = await failure(store.get('dequeue/a'));
    expect(slow.kind).toBe('temporary');
    expect(slow.message).toBe(
      'secret dequeue/a: cannot be read: ThrottlingException: Rate exceeded',
    );
  });

  it('refuses an id outside the allowed prefix without calling AWS', async () => {
    const e = await failure(
      new SecretsManagerCredentials(client, { allowedPrefix: 'dequeue/' }).get('prod/root'),
    );
    expect(e.message).toBe(
      'secret prod/root: is outside the secrets this function may read (names starting with "dequeue/", DEQUEUE_SECRET_PREFIX)',
    );
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(0);
  });
});
