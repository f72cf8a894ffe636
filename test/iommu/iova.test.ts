import { fc, test as propTest } from '@fast-check/vitest';
import { describe, expect, test } from 'vitest';
import { isPhysrError } from '../../src/core/index.ts';
import { IOVA_MAG_SIZE, IovaDomain } from '../../src/iommu/index.ts';

describe('IOVA allocator (drivers/iommu/iova.c)', () => {
  test('top-down below the limit, size-aligned, reserved MSI window skipped, ENOMEM when full', () => {
    const iovad = new IovaDomain({ startPfn: 1, lastPfn: 0xfffff });
    iovad.reserveRange(0xfee00000n, 0xfeefffffn); // x86 MSI window
    const a = iovad.allocIova(1, 0xfffff, true);
    expect(a).toBe(0xfffff);
    const b = iovad.allocIova(3, 0xfffff, true); // rounded alignment 4
    expect(b % 4).toBe(0);
    expect(b + 2).toBeLessThan(a);
    const c = iovad.allocIova(0x100, 0xfee00, true);
    expect(c + 0xff).toBeLessThan(0xfee00);
    expect(iovad.allocIova(0x10, 0x10, false)).toBe(1);
    expect(() => iovad.allocIova(0x10, 0x10, false)).toThrow(/ENOMEM/);
    iovad.freeIova(c);
    expect(iovad.findIova(c)).toBeUndefined();
    expect(() => iovad.freeIova(c)).toThrow(/ENOENT/);
    expect(() => iovad.freeIova(0xfee10)).toThrow(/EBUSY/);
    expect(iovad.largestFreeExtent()).toEqual({ pfnLo: 0x11, pages: 0xfee00 - 0x11 });
  });

  test('the rcache hands a freed range back, rounds small sizes and respects the limit', () => {
    const iovad = new IovaDomain({ lastPfn: 0xfffff });
    const a = iovad.allocIovaFast(3);
    iovad.freeIovaFast(a, 3);
    expect(iovad.cachedCounts()[2]).toBe(1);
    expect(iovad.findIova(a)).toBeDefined(); // cached ranges stay allocated
    expect(iovad.allocIovaFast(4)).toBe(a);
    iovad.freeIovaFast(a, 4);
    const low = iovad.allocIovaFast(4, 0xfff);
    expect(low).not.toBe(a);
    expect(low + 3).toBeLessThanOrEqual(0xfff);
    iovad.freeIova(low);
    for (let i = 0; i < IOVA_MAG_SIZE * 3; i++) iovad.freeIovaFast(iovad.allocIova(1, 0xfffff, true), 1);
    expect(iovad.cachedCounts()[0]).toBe(IOVA_MAG_SIZE * 3);
    iovad.flushRcaches();
    expect(iovad.cachedCounts().every((n) => n === 0)).toBe(true);
    expect(iovad.ranges()).toHaveLength(0);
  });

  test('a double free is refused (EINVAL) instead of making a flush delete another range', () => {
    const iovad = new IovaDomain({ lastPfn: 0xfffff });
    const a = iovad.allocIovaFast(1);
    const b = iovad.allocIovaFast(1);
    iovad.freeIovaFast(a, 1);
    expect(() => iovad.freeIovaFast(a, 1)).toThrow(/EINVAL.*double free/);
    expect(() => iovad.freeIova(a)).toThrow(/EINVAL.*double free/);
    expect(() => iovad.freeIovaFast(0x1234, 1)).toThrow(/ENOENT/);
    iovad.flushRcaches();
    expect(iovad.findIova(a)).toBeUndefined();
    expect(iovad.findIova(b)).toEqual({ pfnLo: b, pfnHi: b, reserved: false });
    // Once flushed the pfn is free again: a new allocation may reuse it and free it normally.
    expect(iovad.allocIovaFast(1)).toBe(a);
    iovad.freeIovaFast(a, 1);
  });

  // alloc_iova_fast (iova.c): when the rbtree has no room, flush every CPU's and the global rcache
  // once and retry; with flush_rcache false it gives up (returns 0: ENOMEM here).
  function fullOfCachedPairs(): IovaDomain {
    // pfns 1..11: five 2-page blocks at 10, 8, 6, 4, 2 leave only pfn 1; 10 and 8 go to the
    // order-1 rcache and so stay allocated in the tree.
    const iovad = new IovaDomain({ startPfn: 1, lastPfn: 11 });
    const pairs = [1, 2, 3, 4, 5].map(() => iovad.allocIovaFast(2));
    expect(pairs).toEqual([10, 8, 6, 4, 2]);
    iovad.freeIovaFast(10, 2);
    iovad.freeIovaFast(8, 2);
    expect(iovad.cachedCounts()).toEqual([0, 2, 0, 0, 0, 0]);
    return iovad;
  }

  test('alloc_iova_fast without flush_rcache fails while the only room sits in another order cache', () => {
    const iovad = fullOfCachedPairs();
    expect(() => iovad.allocIovaFast(4, 11, false)).toThrow(/ENOMEM/);
    expect(iovad.cachedCounts()).toEqual([0, 2, 0, 0, 0, 0]);
  });

  test('alloc_iova_fast flushes the rcaches and retries: the 4-aligned block 8..11 comes back', () => {
    const iovad = fullOfCachedPairs();
    // The order-2 cache is empty and the tree has no 4-aligned gap: only the flush frees 8..11.
    expect(iovad.allocIovaFast(4)).toBe(8);
    expect(iovad.cachedCounts()).toEqual([0, 0, 0, 0, 0, 0]);
    expect(iovad.findIova(8)).toEqual({ pfnLo: 8, pfnHi: 11, reserved: false });
  });

  test('iova_magazine_pop moves the last entry into the popped slot (mag->pfns[i] = mag->pfns[--size])', () => {
    const iovad = new IovaDomain({ lastPfn: 0xfffff });
    const c = iovad.allocIova(1, 0xfffff, true);
    const d = iovad.allocIova(1, 0xfffff, true);
    const a = iovad.allocIova(1, 0x10, true);
    const b = iovad.allocIova(1, 0x10, true);
    // Two pages at or below the 0x100 limit used below, two far above it.
    expect([a, b].every((p) => p <= 0x10) && [c, d].every((p) => p > 0x100)).toBe(true);
    for (const pfn of [a, b, c, d]) iovad.freeIovaFast(pfn, 1); // magazine: [a, b, c, d]
    // Below pfn 0x100 the newest fit is b; d moves into its slot: [a, d, c].
    expect(iovad.allocIovaFast(1, 0x100)).toBe(b);
    // So the next unlimited pop is c (an ordered removal would have left [a, c, d] and given d).
    expect(iovad.allocIovaFast(1)).toBe(c);
    expect(iovad.allocIovaFast(1)).toBe(d);
    expect(iovad.allocIovaFast(1)).toBe(a);
  });

  const opArb = fc.oneof(
    fc.record({
      kind: fc.constant('alloc' as const),
      pages: fc.integer({ min: 1, max: 40 }),
      limit: fc.integer({ min: 1, max: 511 }),
      aligned: fc.boolean(),
    }),
    fc.record({ kind: fc.constant('free' as const), pick: fc.nat() }),
    fc.record({
      kind: fc.constant('reserve' as const),
      lo: fc.integer({ min: 0, max: 511 }),
      len: fc.integer({ min: 1, max: 20 }),
    }),
  );

  propTest.prop([fc.array(opArb, { maxLength: 80 })], { numRuns: 150 })(
    'against a sorted interval list: no overlap, alignment, below limit, reserved never handed out, ENOMEM only without a fit',
    (ops) => {
      const iovad = new IovaDomain({ startPfn: 1, lastPfn: 511 });
      const live: Array<[number, number]> = [];
      const reserved: Array<[number, number]> = [];
      let failedSize: number | undefined;
      const used = (p: number) =>
        live.some(([l, h]) => p >= l && p <= h) || reserved.some(([l, h]) => p >= l && p <= h);
      for (const op of ops) {
        if (op.kind === 'alloc') {
          const align = op.aligned ? 2 ** Math.ceil(Math.log2(op.pages)) : 1;
          // Reference: the highest aligned start whose pages are all free (undefined: no fit at all).
          let expected: number | undefined;
          for (let s = Math.floor((op.limit - op.pages + 1) / align) * align; s >= 1; s -= align) {
            let ok = true;
            for (let p = s; p < s + op.pages; p++) if (used(p)) ok = false;
            if (ok) {
              expected = s;
              break;
            }
          }
          // The kernel searches down from its cached node, so any free aligned fit may come back,
          // not only the highest; it fails only when none exists, or at once for a request at least
          // as large as the smallest that failed since the last free (max32_alloc_size: every pfn is
          // below 4 GiB).
          try {
            const pfn = iovad.allocIova(op.pages, op.limit, op.aligned);
            expect(expected).toBeDefined();
            expect(pfn % align).toBe(0);
            expect(pfn).toBeGreaterThanOrEqual(1);
            expect(pfn + op.pages - 1).toBeLessThanOrEqual(op.limit);
            for (let p = pfn; p < pfn + op.pages; p++) expect(used(p)).toBe(false);
            live.push([pfn, pfn + op.pages - 1]);
          } catch (e) {
            expect(isPhysrError(e, 'ENOMEM')).toBe(true);
            if (expected !== undefined)
              expect(op.pages).toBeGreaterThanOrEqual(failedSize ?? Number.POSITIVE_INFINITY);
            failedSize = Math.min(failedSize ?? Number.POSITIVE_INFINITY, op.pages);
          }
        } else if (op.kind === 'free') {
          if (live.length === 0) continue;
          const [lo] = live.splice(op.pick % live.length, 1)[0]!;
          iovad.freeIova(lo);
          failedSize = undefined;
        } else {
          const hi = Math.min(op.lo + op.len - 1, 511);
          const overlapsLive = live.some(([l, h]) => l <= hi && h >= op.lo);
          try {
            iovad.reserveIova(op.lo, hi);
            expect(overlapsLive).toBe(false);
            reserved.push([op.lo, hi]);
          } catch (e) {
            expect(isPhysrError(e, 'EBUSY') && overlapsLive).toBe(true);
          }
        }
        // Reference largest free extent over [1, 511].
        let best = 0;
        let run = 0;
        for (let p = 1; p <= 511; p++) {
          run = used(p) ? 0 : run + 1;
          best = Math.max(best, run);
        }
        expect(iovad.largestFreeExtent().pages).toBe(best);
      }
    },
  );
});

describe('alloc_iova searches down from its cached node (drivers/iommu/iova.c, values from 6.12 run in userspace)', () => {
  const LIMIT32 = 0xf_ffff; // the last pfn below 4 GiB with a 4K granule

  test('a hole above the last allocation is not used: the next fit below it is', () => {
    const iovad = new IovaDomain({ startPfn: 1 });
    // 138 pages size-aligned take a 256-page slot at its top; the hole 1048458..1048575 stays free.
    expect(iovad.allocIovaFast(138, LIMIT32)).toBe(1048320);
    expect(iovad.allocIovaFast(6, LIMIT32)).toBe(1048312);
  });

  test('a failure under 4 GiB makes as large a request fail at once, until a free below 4 GiB', () => {
    const iovad = new IovaDomain({ startPfn: 1 });
    expect(iovad.allocIova(1023, 1023)).toBe(1);
    expect(() => iovad.allocIova(1, 1023)).toThrow(expect.objectContaining({ errno: 'ENOMEM' }));
    // Space is free above pfn 1023, but max32_alloc_size is 1 now.
    expect(() => iovad.allocIova(1, LIMIT32)).toThrow(expect.objectContaining({ errno: 'ENOMEM' }));
    // A limit above 4 GiB does not look at it.
    expect(iovad.allocIova(1, 0xf_ffff_ffff)).toBe(0xf_ffff_ffff);
    iovad.freeIova(1);
    expect(iovad.allocIova(1, LIMIT32)).toBe(LIMIT32);
    expect(iovad.allocIova(4, LIMIT32)).toBe(1048571);
  });

  test('freeing a range moves the cached node to the next range up', () => {
    const iovad = new IovaDomain({ startPfn: 1 });
    expect(iovad.allocIova(16, LIMIT32)).toBe(1048560);
    expect(iovad.allocIova(16, LIMIT32)).toBe(1048544);
    expect(iovad.allocIova(16, LIMIT32)).toBe(1048528);
    iovad.freeIova(1048544);
    expect(iovad.allocIova(8, LIMIT32)).toBe(1048552);
  });
});

describe('alloc_iova rules the mutation run found untested (issue 13)', () => {
  test('a candidate whose first pfn is the last pfn of the range below overlaps it: the walk goes on', () => {
    // __alloc_and_insert_iova_range (drivers/iommu/iova.c) keeps walking down while
    // new_pfn <= curr_iova->pfn_hi. Ranges [80,85] and [90,100], limit 100, 5 pages:
    //   high = 101 → new_pfn 96 ≤ 100: on; high = 90 → new_pfn 85 ≤ 85: on (85 is taken);
    //   high = 80 → new_pfn 75, nothing below: 75..79.
    const iovad = new IovaDomain({ startPfn: 1, lastPfn: 100 });
    iovad.reserveIova(90, 100);
    iovad.reserveIova(80, 85);
    expect(iovad.allocIova(5)).toBe(75);
  });

  test('an allocation of no pages and an empty domain are refused (EINVAL)', () => {
    const iovad = new IovaDomain({ startPfn: 1, lastPfn: 100 });
    expect(() => iovad.allocIova(0)).toThrow(/EINVAL/);
    expect(() => iovad.allocIova(1.5)).toThrow(/EINVAL/);
    // One page is fine: the top pfn.
    expect(iovad.allocIova(1)).toBe(100);
    expect(() => new IovaDomain({ startPfn: -1, lastPfn: 100 })).toThrow(/EINVAL/);
    expect(() => new IovaDomain({ startPfn: 10, lastPfn: 9 })).toThrow(/EINVAL/);
    // A one-pfn domain is not empty, and start_pfn 0 is allowed (init_iova_domain only checks
    // the granule): high 1 - 1 page = pfn 0 ≥ low 0.
    expect(new IovaDomain({ startPfn: 10, lastPfn: 10 }).allocIova(1)).toBe(10);
    expect(new IovaDomain({ startPfn: 0, lastPfn: 0 }).allocIova(1)).toBe(0);
  });

  test('the refusals say what was wrong, with the numbers', () => {
    // init_iova_domain BUG()s on a granule that is not a power of two; here it is EINVAL.
    expect(() => new IovaDomain({ granule: 3000n })).toThrow(
      'EINVAL: IOVA granule 0xbb8 is not a power of two',
    );
    expect(() => new IovaDomain({ startPfn: 10, lastPfn: 9 })).toThrow(
      'EINVAL: IOVA domain pfn range 10..9 is empty',
    );
    const iovad = new IovaDomain({ startPfn: 1, lastPfn: 100 });
    expect(() => iovad.allocIova(0)).toThrow('EINVAL: IOVA allocation of 0 pages');
    expect(() => iovad.allocIova(-3)).toThrow('EINVAL: IOVA allocation of -3 pages');
    // The exclusive limit is min(limit, lastPfn) + 1; the message names the last usable pfn.
    expect(() => iovad.allocIova(101, 0x1000)).toThrow(
      'ENOMEM: no free IOVA range of 101 pages at or below pfn 0x64',
    );
    expect(() => iovad.allocIova(65, 0x50, true)).toThrow(
      'ENOMEM: no free IOVA range of 65 pages (size-aligned) at or below pfn 0x50',
    );
  });

  test('largestFreeExtent: the lowest of equal gaps, a limit of its own, a range ending the space', () => {
    const iovad = new IovaDomain({ startPfn: 1, lastPfn: 100 });
    expect(iovad.largestFreeExtent(0x50)).toEqual({ pfnLo: 1, pages: 0x50 });
    iovad.reserveIova(1, 10);
    expect(iovad.largestFreeExtent()).toEqual({ pfnLo: 11, pages: 90 }); // the tail after the last range
    iovad.reserveIova(21, 30);
    iovad.reserveIova(41, 100); // gaps 11..20 and 31..40: ten pages each
    expect(iovad.largestFreeExtent()).toEqual({ pfnLo: 11, pages: 10 });
    expect(iovad.largestFreeExtent(35)).toEqual({ pfnLo: 11, pages: 10 });
    iovad.reserveIova(11, 19);
    iovad.reserveIova(31, 40);
    expect(iovad.largestFreeExtent()).toEqual({ pfnLo: 20, pages: 1 }); // one page is a gap
    const full = new IovaDomain({ startPfn: 1, lastPfn: 10 });
    expect(full.allocIova(1)).toBe(10);
    expect(full.allocIova(9)).toBe(1);
    expect(full.largestFreeExtent()).toEqual({ pfnLo: 1, pages: 0 });
  });
});
