/**
 * The versioned mail bucket of the S3 `deliver` tests, on a serialised moto_server (S3's claims
 * are conditional writes, which moto checks and writes apart: peers/servers/moto-server.ts): call
 * inside a describeWithMotoServer. Each test starts with an empty bucket; the scripted mail servers
 * it starts with server() are stopped after it.
 */
import {
  CreateBucketCommand,
  ListObjectsV2Command,
  PutBucketVersioningCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import {
  ScriptedMailServer,
  type ScriptedMailServerOptions,
} from '../../../peers/scripted-mail-server';
import { startMotoServer, type MotoServer } from '../../servers/moto-server';

export const BUCKET = 'dequeue-mail';

export function mailBucket() {
  let moto: MotoServer;
  let s3: S3Client;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    moto = await startMotoServer({ serialised: true });
    s3 = new S3Client({ ...moto.clientConfig, forcePathStyle: true });
  });
  afterAll(async () => {
    s3?.destroy();
    await moto?.stop();
  });
  beforeEach(async () => {
    await moto.reset();
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    await s3.send(
      new PutBucketVersioningCommand({
        Bucket: BUCKET,
        VersioningConfiguration: { Status: 'Enabled' },
      }),
    );
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  return {
    get s3(): S3Client {
      return s3;
    },
    /** The (serialised) moto_server: a test may put a proxy of its own in front of it. */
    get moto(): MotoServer {
      return moto;
    },
    /** Every key in the bucket, sorted. */
    keys: async (): Promise<string[]> =>
      ((await s3.send(new ListObjectsV2Command({ Bucket: BUCKET }))).Contents ?? [])
        .map((o) => o.Key!)
        .sort(),
    /** A scripted mail server, stopped after the current test. */
    async server(options: ScriptedMailServerOptions = {}): Promise<ScriptedMailServer> {
      const s = await new ScriptedMailServer(options).start();
      cleanups.push(() => s.stop());
      return s;
    },
  };
}
