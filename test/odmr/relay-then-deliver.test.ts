/**
 * A target whose mail goes to a relay (the customer's own server) while the CLI also keeps it in
 * its mail directory: the relay's copy is the delivery, the directory's copy a record of it, and
 * `dequeue deliver` later finds nothing to send. The customer's server holds each message once.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCOUNT, AtrnProvider } from '../../peers/atrn-provider';
import { runCli as cli } from '../support/cli-run';
import { heldMessage } from '../core/odmr/odmr-fixtures';
import { type CustomerMx, startCustomerMx } from '../postfix/customer-mx';

let dir: string;
let mx: CustomerMx;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dequeue-relay-deliver-'));
  mx = await startCustomerMx();
});
afterAll(async () => {
  await mx.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('relay + mail directory + deliver', () => {
  it('one copy at the customer: deliver does not send what the relay took; the directory keeps it under relayed/', async () => {
    const queue = [heldMessage(0), heldMessage(1), { ...heldMessage(2), from: '' }];
    const provider = await new AtrnProvider({ queue }).start();
    try {
      await writeFile(
        join(dir, 'config.json'),
        JSON.stringify({
          settings: {
            helloName: 'mx.customer.test',
            mail: { relay: { host: '127.0.0.1', port: mx.port, tls: 'none' } },
          },
          targets: [
            {
              name: 'odmr',
              host: '127.0.0.1',
              port: provider.port,
              tls: 'none',
              auth: { secretId: 'odmr' },
              command: 'ATRN customer.test',
            },
          ],
        }),
      );
      await writeFile(join(dir, 'secrets.json'), JSON.stringify({ odmr: ACCOUNT }), {
        mode: 0o600,
      });
      const mail = join(dir, 'mail');
      const run = await cli(
        [
          '--config',
          join(dir, 'config.json'),
          '--secrets',
          join(dir, 'secrets.json'),
          '--mail-dir',
          mail,
          '--json',
        ],
        { watchStop: undefined },
      );
      await provider.idle();
      expect(run.json).toMatchObject([{ target: 'odmr', outcome: 'signalled', messages: 3 }]);
      expect(mx.received).toHaveLength(3);

      const deliver = await cli(
        ['deliver', '--mail-dir', mail, '--to', `smtp://127.0.0.1:${mx.port}`, '--json'],
        { watchStop: undefined },
      );
      expect(deliver.status).toBe(0);
      expect(deliver.json).toEqual([]);
      expect(mx.received.map((r) => r.header('Message-ID')).sort()).toEqual([
        '<0@provider.test>',
        '<1@provider.test>',
        '<2@provider.test>',
      ]);
      // Nothing in the undelivered set; the record of each relayed message beside it.
      const top = await readdir(join(mail, 'odmr'), { withFileTypes: true });
      expect(top.filter((e) => e.isFile()).map((e) => e.name)).toEqual([]);
      const relayed = (await readdir(join(mail, 'odmr', 'relayed'))).filter((n) =>
        n.endsWith('.eml'),
      );
      expect(relayed).toHaveLength(3);
    } finally {
      await provider.stop();
    }
  });
});
