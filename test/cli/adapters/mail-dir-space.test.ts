/** The mail directory's disk guard as values (cli/adapters/mail-dir-space.ts). */
import { describe, expect, it } from 'vitest';
import {
  admitBySpace,
  FREE_SPACE_MAX_AGE_MS,
  FreeSpaceGauge,
} from '../../../cli/adapters/mail-dir-space';

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

describe('the free-space gauge: statfs at MAIL, not at every MAIL', () => {
  /** A file system with `free` bytes, read through a counter, and a clock the test moves. */
  const fs = (free: number) => {
    const disk = { free, reads: 0, now: 0 };
    const gauge = new FreeSpaceGauge(
      async () => {
        disk.reads++;
        return disk.free;
      },
      () => disk.now,
    );
    return { disk, gauge };
  };

  it('far from the bound: one reading stands for the next MAILs, less what was stored since', async () => {
    const { disk, gauge } = fs(10_000 * MiB);
    expect(await gauge.freeBytes('/m', 100 * MiB)).toBe(10_000 * MiB);
    gauge.spend(300 * MiB);
    disk.now += FREE_SPACE_MAX_AGE_MS - 1;
    expect(await gauge.freeBytes('/m', 100 * MiB)).toBe(9_700 * MiB);
    expect(disk.reads).toBe(1);
  });

  it('read again once the reading is old: another writer is seen', async () => {
    const { disk, gauge } = fs(10_000 * MiB);
    await gauge.freeBytes('/m', 100 * MiB);
    disk.free = 50 * MiB;
    disk.now += FREE_SPACE_MAX_AGE_MS;
    expect(await gauge.freeBytes('/m', 100 * MiB)).toBe(50 * MiB);
    expect(disk.reads).toBe(2);
  });

  it('near the bound, or for a message that needs much of what is left: read at every MAIL', async () => {
    const { disk, gauge } = fs(120 * MiB);
    for (let i = 0; i < 3; i++) await gauge.freeBytes('/m', 100 * MiB);
    expect(disk.reads).toBe(3);
    const far = fs(1_000 * MiB);
    await far.gauge.freeBytes('/m', 100 * MiB);
    far.gauge.spend(700 * MiB);
    // 300 MiB estimated, 100 MiB bound and a 150 MiB message: too close to trust the estimate.
    await far.gauge.freeBytes('/m', 250 * MiB);
    expect(far.disk.reads).toBe(2);
  });

  it('through admitBySpace: mail stored since the reading brings the disk near the bound, which is read again and refuses', async () => {
    const { disk, gauge } = fs(150 * MiB);
    const admit = () => admitBySpace('/m', 100 * MiB, (dir) => gauge.freeBytes(dir, 100 * MiB), {});
    expect(await admit()).toBeNull();
    disk.free -= 60 * MiB;
    gauge.spend(60 * MiB);
    expect(await admit()).toMatchObject({ code: 452 });
    expect(disk.reads).toBe(2);
  });
});
