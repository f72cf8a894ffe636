/**
 * The rcache honours the limit by a range's end: alloc_iova_fast asks iova_rcache_get for
 * limit_pfn + 1, which pops only pfns at or below that minus the size (drivers/iommu/iova.c
 * iova_rcache_get / iova_magazine_pop). Values from 6.12's iova.c in userspace.
 */
import { expect, test } from 'vitest';
import { IovaDomain } from '../../src/iommu/index.ts';

test('a cached range ending one pfn above the limit is not handed out (kernel: 4092, then 4088)', () => {
  const iovad = new IovaDomain();
  expect(iovad.allocIovaFast(4, 4095)).toBe(4092);
  iovad.freeIovaFast(4092, 4);
  expect(iovad.allocIovaFast(4, 4094)).toBe(4088);
  expect(iovad.cachedCounts()).toEqual([0, 0, 1, 0, 0, 0]);
  // With the limit at its last pfn it is.
  expect(iovad.allocIovaFast(4, 4095)).toBe(4092);
});
