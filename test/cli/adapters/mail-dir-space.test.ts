/** The mail directory's disk guard as values (cli/adapters/mail-dir-space.ts). */
import { describe, expect, it } from 'vitest';
import { admitBySpace } from '../../../cli/adapters/mail-dir-space';

const MiB = 1024 * 1024;
const free = (bytes: number) => async () => bytes;

describe('the disk guard at MAIL', () => {
  it('admits while the free space stays at or above the bound, the declared SIZE counted', async () => {
    expect(await admitBySpace('/m', 100 * MiB, free(101 * MiB), {})).toBeNull();
    expect(await admitBySpace('/m', 100 * MiB, free(101 * MiB), { declaredSize: MiB })).toBeNull();
  });

  it('below the bound: 452 4.3.1, and nothing more this session', async () => {
    const refusal = await admitBySpace('/m', 100 * MiB, free(12.5 * MiB), {});
    expect(refusal).toMatchObject({
      code: 452,
      text: '4.3.1 Insufficient system storage',
      closing: true,
    });
    expect(refusal?.error.message).toBe(
      'the mail directory /m has 12.5 MiB free, less than the 100 MiB it keeps (--min-free-mib): new mail is refused with 452 4.3.1 and stays with the provider',
    );
    expect(refusal?.error.kind).toBe('temporary');
  });

  it('a declared SIZE that would take it below the bound: 452 for that message only (RFC 1870 6.1)', async () => {
    const refusal = await admitBySpace('/m', 100 * MiB, free(101 * MiB), {
      declaredSize: 2 * MiB,
    });
    expect(refusal).toMatchObject({ code: 452, closing: false });
    expect(refusal?.error.message).toMatch(/^a message of 2097152 bytes would leave/);
  });

  it('no bound (0), or a free space that cannot be read: admitted', async () => {
    expect(await admitBySpace('/m', 0, free(0), {})).toBeNull();
    const unreadable = async () => Promise.reject(new Error('EIO'));
    expect(await admitBySpace('/m', 100 * MiB, unreadable, {})).toBeNull();
  });
});
