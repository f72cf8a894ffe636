/**
 * The small IOMMU pieces on their own: prot bits (include/linux/iommu.h IOMMU_READ..IOMMU_PRIV), the
 * unmap gather (struct iommu_iotlb_gather, iommu_iotlb_gather_add_range) and the IOTLB model.
 */
import { describe, expect, test } from 'vitest';
import { COUNTER, Metrics, SZ_2M, SZ_4K } from '../../src/core/index.ts';
import {
  formatProt,
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  Iotlb,
  type IotlbEntry,
  IotlbGather,
  parseProt,
  protAllows,
} from '../../src/iommu/index.ts';

describe('prot bits (include/linux/iommu.h)', () => {
  test('the kernel bit values', () => {
    expect([IOMMU_READ, IOMMU_WRITE, IOMMU_CACHE, IOMMU_NOEXEC, IOMMU_MMIO, IOMMU_PRIV]).toEqual([
      1, 2, 4, 8, 16, 32,
    ]);
  });

  test('formatProt names each bit in a fixed order, NONE for none', () => {
    expect(formatProt(0)).toBe('NONE');
    expect(formatProt(1)).toBe('READ');
    expect(formatProt(2)).toBe('WRITE');
    expect(formatProt(4)).toBe('CACHE');
    expect(formatProt(8)).toBe('NOEXEC');
    expect(formatProt(16)).toBe('MMIO');
    expect(formatProt(32)).toBe('PRIV');
    expect(formatProt(63)).toBe('READ|WRITE|CACHE|NOEXEC|MMIO|PRIV');
    expect(formatProt(1 | 8)).toBe('READ|NOEXEC');
  });

  test('parseProt: case-insensitive, | or , separated, NONE and empty parts add nothing', () => {
    expect(parseProt('read, Write | noexec')).toBe(1 | 2 | 8);
    expect(parseProt('mmio|PRIV|cache')).toBe(16 | 32 | 4);
    expect(parseProt('')).toBe(0);
    expect(parseProt('NONE')).toBe(0);
    expect(parseProt('none|read')).toBe(1);
    expect(parseProt('READ||WRITE')).toBe(3);
    for (let p = 0; p < 64; p++) expect(parseProt(formatProt(p))).toBe(p);
    expect(() => parseProt('READ| exec ')).toThrow('EINVAL: unknown IOMMU prot flag "exec"');
  });

  test('protAllows: read needs IOMMU_READ, write needs IOMMU_WRITE, nothing else counts', () => {
    expect(protAllows(IOMMU_READ, 'read')).toBe(true);
    expect(protAllows(IOMMU_READ, 'write')).toBe(false);
    expect(protAllows(IOMMU_WRITE, 'write')).toBe(true);
    expect(protAllows(IOMMU_WRITE, 'read')).toBe(false);
    expect(protAllows(IOMMU_CACHE | IOMMU_NOEXEC | IOMMU_MMIO | IOMMU_PRIV, 'read')).toBe(false);
    expect(protAllows(IOMMU_CACHE | IOMMU_NOEXEC | IOMMU_MMIO | IOMMU_PRIV, 'write')).toBe(false);
  });
});

describe('IotlbGather (iommu_iotlb_gather_add_range)', () => {
  test('widens to the union of the ranges, keeps the largest page size, and resets to empty', () => {
    const g = new IotlbGather();
    expect(g.isEmpty()).toBe(true);
    g.addRange(0x5000n, SZ_4K);
    expect([g.isEmpty(), g.start, g.last, g.pgsize]).toEqual([false, 0x5000n, 0x5fffn, SZ_4K]);
    g.addRange(0x40_0000n, SZ_2M);
    expect([g.start, g.last, g.pgsize]).toEqual([0x5000n, 0x5f_ffffn, SZ_2M]);
    g.addRange(0x1000n, 0x2000n, SZ_4K); // lower start, smaller page: start moves, pgsize stays
    expect([g.start, g.last, g.pgsize]).toEqual([0x1000n, 0x5f_ffffn, SZ_2M]);
    g.addRange(0x3000n, SZ_4K); // inside: nothing moves
    expect([g.start, g.last, g.pgsize]).toEqual([0x1000n, 0x5f_ffffn, SZ_2M]);
    g.freedTablePages = 3;
    g.reset();
    expect([g.isEmpty(), g.start, g.last, g.pgsize, g.freedTablePages]).toEqual([true, 0n, 0n, 0n, 0]);
    // After a reset the first range sets both ends again, even above the old ones.
    g.addRange(0x9000_0000n, SZ_4K);
    expect([g.start, g.last]).toEqual([0x9000_0000n, 0x9000_0fffn]);
  });
});

const leaf = (domainId: number, leafIova: bigint, pageSize: bigint, phys = 0x8000_0000n): IotlbEntry => ({
  domainId,
  leafIova,
  pageSize,
  phys,
  prot: IOMMU_READ,
});

describe('Iotlb', () => {
  test('a lookup probes each page size at its aligned IOVA and takes only an entry of that size', () => {
    const iotlb = new Iotlb(new Metrics());
    iotlb.insert(leaf(1, 0x20_0000n, SZ_4K));
    // The 2M probe finds the 4K leaf's key (0x200000) but not its size; the 4K probe takes it.
    expect(iotlb.lookup(1, 0x20_0123n, [SZ_2M, SZ_4K])).toEqual(leaf(1, 0x20_0000n, SZ_4K));
    expect(iotlb.lookup(1, 0x20_0123n, [SZ_2M])).toBeUndefined();
    expect(iotlb.lookup(1, 0x20_1000n, [SZ_2M, SZ_4K])).toBeUndefined();
    expect(iotlb.lookup(2, 0x20_0123n, [SZ_4K])).toBeUndefined(); // tagged by domain
    iotlb.insert(leaf(1, 0x40_0000n, SZ_2M));
    expect(iotlb.lookup(1, 0x5f_ffffn, [SZ_2M, SZ_4K])?.leafIova).toBe(0x40_0000n);
  });

  test('at capacity the least recently used entry goes; a hit or a re-insert makes an entry recent', () => {
    const iotlb = new Iotlb(new Metrics(), 2);
    iotlb.insert(leaf(1, 0x1000n, SZ_4K));
    iotlb.insert(leaf(1, 0x2000n, SZ_4K));
    expect(iotlb.lookup(1, 0x1000n, [SZ_4K])).toBeDefined(); // 0x1000 is now the most recent
    iotlb.insert(leaf(1, 0x3000n, SZ_4K)); // evicts 0x2000
    expect(iotlb.size).toBe(2);
    expect(iotlb.entriesOf(1).map((e) => e.leafIova)).toEqual([0x1000n, 0x3000n]);
    // Re-inserting a cached leaf replaces it (new phys) without evicting anything.
    iotlb.insert(leaf(1, 0x1000n, SZ_4K, 0x9000_0000n));
    expect(iotlb.entriesOf(1).map((e) => [e.leafIova, e.phys])).toEqual([
      [0x3000n, 0x8000_0000n],
      [0x1000n, 0x9000_0000n],
    ]);
    iotlb.insert(leaf(1, 0x4000n, SZ_4K)); // evicts 0x3000, the least recent now
    expect(iotlb.entriesOf(1).map((e) => e.leafIova)).toEqual([0x1000n, 0x4000n]);
  });

  test('a range invalidation drops the domain entries overlapping [start, last] inclusive, counting one flush', () => {
    const metrics = new Metrics();
    const iotlb = new Iotlb(metrics);
    for (const iova of [0x1000n, 0x2000n, 0x3000n, 0x4000n]) iotlb.insert(leaf(1, iova, SZ_4K));
    iotlb.insert(leaf(2, 0x2000n, SZ_4K));
    // [0x2fff, 0x3000] touches the last byte of 0x2000's leaf and the first of 0x3000's.
    expect(iotlb.invalidateRange(1, 0x2fffn, 0x3000n)).toBe(2);
    expect(iotlb.entriesOf(1).map((e) => e.leafIova)).toEqual([0x1000n, 0x4000n]);
    expect(iotlb.entriesOf(2)).toHaveLength(1);
    expect(iotlb.invalidateRange(1, 0x2000n, 0x3fffn)).toBe(0);
    expect(metrics.get(COUNTER.iotlbFlushes)).toBe(2);
    expect(iotlb.invalidateDomain(1)).toBe(2);
    expect(iotlb.entriesOf(1)).toEqual([]);
    expect(iotlb.entriesOf(2).map((e) => e.leafIova)).toEqual([0x2000n]);
    expect(iotlb.invalidateDomain(3)).toBe(0);
    expect(metrics.get(COUNTER.iotlbFlushes)).toBe(4);
  });
});
