/**
 * The IOVA range cache (alloc_iova_fast / free_iova_fast in drivers/iommu/iova.c): which sizes it
 * rounds, which orders it keeps, and how a CPU's loaded and previous magazines and the depot fill
 * and empty. Expected pfns are worked out by hand from the rules (steps beside them) or, where
 * marked, come from 6.12's iova.c compiled in userspace (test/kernel).
 */
import { describe, expect, test } from 'vitest';
import { COUNTER, Metrics } from '../../src/core/index.ts';
import { IOVA_MAG_SIZE, IovaDomain, MAX_GLOBAL_MAGS } from '../../src/iommu/index.ts';

const LIMIT32 = 0xf_ffff;

/** The k-th (from 1) one-page range `freeOnePagers` frees. */
const p = (k: number) => 0x10_0000 - k;

/**
 * Frees one-page ranges `from..to` into the order-0 cache, each allocated just before it is freed,
 * so the k-th is pfn p(k): alloc_iova goes top-down and cached ranges stay allocated.
 */
function freeOnePagers(iovad: IovaDomain, from: number, to: number): void {
  let wrong: [number, number] | undefined;
  for (let k = from; k <= to; k++) {
    const pfn = iovad.allocIova(1, LIMIT32, true);
    if (pfn !== p(k)) wrong ??= [k, pfn];
    iovad.freeIovaFast(pfn, 1);
  }
  expect(wrong).toBeUndefined();
}

describe('rcache magazines (iova_rcache_insert / iova_rcache_get, drivers/iommu/iova.c)', () => {
  test('a full loaded magazine swaps with the empty previous one; with both full it goes to the depot; pops take loaded, then previous, then the depot (kernel 6.12 in userspace agrees)', () => {
    const iovad = new IovaDomain();
    // Frees 1..127 fill loaded; free 128 finds loaded full and previous empty: they swap and
    // loaded = [p128]; frees 129..254 fill it; free 255 finds both full: loaded [p128..p254]
    // goes to the depot and loaded = [p255].
    freeOnePagers(iovad, 1, 2 * IOVA_MAG_SIZE + 1);
    expect(iovad.cachedCounts()[0]).toBe(2 * IOVA_MAG_SIZE + 1);
    const pops = Array.from({ length: IOVA_MAG_SIZE + 3 }, () => iovad.allocIovaFast(1, LIMIT32));
    // p255 from loaded; loaded empty, previous full: swap, p127 down to p1; both empty: the
    // depot's magazine, newest first: p254, p253.
    const expected = [
      p(255),
      ...Array.from({ length: IOVA_MAG_SIZE }, (_, i) => p(IOVA_MAG_SIZE - i)),
      p(254),
      p(253),
    ];
    expect(pops).toEqual(expected);
    expect(iovad.cachedCounts()[0]).toBe(2 * IOVA_MAG_SIZE + 1 - pops.length);
  });

  test('with the depot full (MAX_GLOBAL_MAGS, the bound before 6.7) the loaded magazine goes back to the tree', () => {
    const iovad = new IovaDomain();
    // Loaded + previous hold 254; each further 127 frees push one magazine: the depot holds 32
    // after free 254 + 31 * 127 + 1 = 4192, and loaded is full again after free 4318.
    const full = 2 * IOVA_MAG_SIZE + MAX_GLOBAL_MAGS * IOVA_MAG_SIZE;
    expect(full).toBe(4318);
    freeOnePagers(iovad, 1, full);
    expect(iovad.cachedCounts()[0]).toBe(full);
    expect(iovad.ranges()).toHaveLength(full);
    // Free 4319: the depot is full, so loaded (frees 4192..4318) is freed to the tree and the new
    // loaded magazine holds only p4319.
    freeOnePagers(iovad, full + 1, full + 1);
    expect(iovad.cachedCounts()[0]).toBe(full + 1 - IOVA_MAG_SIZE);
    expect(iovad.ranges()).toHaveLength(full + 1 - IOVA_MAG_SIZE);
    expect(iovad.findIova(p(4192))).toBeUndefined();
    expect(iovad.findIova(p(4318))).toBeUndefined();
    expect(iovad.findIova(p(4191))).toEqual({ pfnLo: p(4191), pfnHi: p(4191), reserved: false });
    expect(iovad.findIova(p(4319))).toEqual({ pfnLo: p(4319), pfnHi: p(4319), reserved: false });
    // The loaded magazine is [p4319]: the next pop.
    expect(iovad.allocIovaFast(1, LIMIT32)).toBe(p(4319));
  });
});

describe('alloc_iova_fast / free_iova_fast sizes (drivers/iommu/iova.c)', () => {
  test('below 32 pages a size is rounded up to a power of two; 33 pages stay 33, aligned to 64 (kernel 6.12 in userspace: 1048512-1048544)', () => {
    const iovad = new IovaDomain();
    const three = iovad.allocIovaFast(3, LIMIT32);
    expect(iovad.findIova(three)).toEqual({ pfnLo: 0xffffc, pfnHi: 0xfffff, reserved: false });
    const big = iovad.allocIovaFast(33, 0xffffb);
    // Below 0xffffc, 64-aligned: (0xffffc - 33) rounded down to 64 = 0xfffc0, .. + 32.
    expect(iovad.findIova(big)).toEqual({ pfnLo: 0xfffc0, pfnHi: 0xfffc0 + 32, reserved: false });
  });

  test('a 64-page range (order 6) bypasses the rcache both ways (kernel 6.12 in userspace: 1048512 freed, then reused)', () => {
    const iovad = new IovaDomain();
    const pfn = iovad.allocIovaFast(64, LIMIT32);
    expect(pfn).toBe(1048512);
    iovad.freeIovaFast(pfn, 64);
    expect(iovad.cachedCounts()).toEqual([0, 0, 0, 0, 0, 0]);
    expect(iovad.findIova(pfn)).toBeUndefined();
    expect(iovad.allocIovaFast(64, LIMIT32)).toBe(1048512);
  });

  test('a 32-page range is order 5: cached and handed back', () => {
    const iovad = new IovaDomain();
    const pfn = iovad.allocIovaFast(32, LIMIT32);
    expect(pfn).toBe(0x10_0000 - 32);
    iovad.freeIovaFast(pfn, 32);
    expect(iovad.cachedCounts()).toEqual([0, 0, 0, 0, 0, 1]);
    expect(iovad.findIova(pfn)).toEqual({ pfnLo: pfn, pfnHi: pfn + 31, reserved: false });
    expect(iovad.allocIovaFast(17, LIMIT32)).toBe(pfn); // 17 rounds to 32: the same order
  });

  test('hits and misses are counted; a hit counts as an allocation, a cached free as a free', () => {
    const metrics = new Metrics();
    const iovad = new IovaDomain({ metrics });
    const a = iovad.allocIovaFast(2); // miss
    iovad.freeIovaFast(a, 2);
    expect(iovad.allocIovaFast(2)).toBe(a); // hit
    expect(metrics.get('iommu.iova_rcache_hits')).toBe(1);
    expect(metrics.get('iommu.iova_rcache_misses')).toBe(1);
    expect(metrics.get(COUNTER.iovaAllocations)).toBe(2);
    expect(metrics.get(COUNTER.iovaFrees)).toBe(1);
  });

  test('the retry after a flush is size-aligned too (kernel 6.12 in userspace: 0 after the flush)', () => {
    // Seven 2-page blocks below pfn 15: 14, 12, 10, 8, 6, 4, 2. Caching 12 and 10 keeps them in the
    // tree; a 4-page request finds no 4-aligned gap, flushes (10..13 free again) and retries: 10..13
    // would fit unaligned, but no 4-aligned start (12: 14 taken; 8: taken) does.
    const iovad = new IovaDomain();
    const blocks = Array.from({ length: 7 }, () => iovad.allocIovaFast(2, 15));
    expect(blocks).toEqual([14, 12, 10, 8, 6, 4, 2]);
    iovad.freeIovaFast(12, 2);
    iovad.freeIovaFast(10, 2);
    expect(() => iovad.allocIovaFast(4, 15)).toThrow(
      'ENOMEM: no free IOVA range of 4 pages (size-aligned) at or below pfn 0xf',
    );
    expect(iovad.ranges().map((r) => [r.pfnLo, r.pfnHi])).toEqual([
      [2, 3],
      [4, 5],
      [6, 7],
      [8, 9],
      [14, 15],
    ]);
  });
});

describe('free_iova_fast refusals', () => {
  test('a pfn inside a range but not its first is ENOENT; a reserved range is EBUSY', () => {
    const iovad = new IovaDomain({ lastPfn: 0xfff });
    const a = iovad.allocIova(4, 0xfff, true);
    expect(a).toBe(0xffc);
    expect(() => iovad.freeIovaFast(0xffd, 4)).toThrow(
      'ENOENT: free_iova_fast of pfn 0xffd: no IOVA allocation starts there',
    );
    expect(() => iovad.freeIovaFast(0x10, 1)).toThrow(/^ENOENT: free_iova_fast of pfn 0x10:/);
    iovad.reserveIova(0x100, 0x1ff);
    expect(() => iovad.freeIovaFast(0x100, 1)).toThrow('EBUSY: pfn 0x100 is in a reserved IOVA range');
    expect(() => iovad.freeIova(0x180)).toThrow('EBUSY: pfn 0x180 is in a reserved IOVA range');
    expect(() => iovad.freeIova(0x80)).toThrow('ENOENT: no IOVA allocation contains pfn 0x80');
    // Nothing changed: the allocation and the reservation are still there, nothing cached.
    expect(iovad.ranges()).toEqual([
      { pfnLo: 0x100, pfnHi: 0x1ff, reserved: true },
      { pfnLo: 0xffc, pfnHi: 0xfff, reserved: false },
    ]);
    expect(iovad.cachedCounts()).toEqual([0, 0, 0, 0, 0, 0]);
  });
});
