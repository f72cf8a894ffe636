/**
 * IOVA allocator edges the mutation run found untested (issue 13): cached_node is left alone when a
 * range below it is freed (drivers/iommu/iova.c __cached_rbnode_delete_update; 6.12 in userspace:
 * 2097152 1048575 1048574 f 2097151), and largestFreeExtent's last pfn and ties with the tail.
 */
import { expect, test } from 'vitest';
import { IovaDomain } from '../../src/iommu/index.ts';

test('freeing a 32-bit range below cached_node leaves cached_node where it was', () => {
  const iovad = new IovaDomain();
  expect(iovad.allocIova(1, 0x20_0000)).toBe(0x20_0000); // cached_node
  expect(iovad.allocIova(1, 0xf_ffff)).toBe(0xf_ffff);
  expect(iovad.allocIova(1, 0xf_ffff)).toBe(0xf_fffe);
  iovad.freeIova(0xf_fffe);
  // The search starts at cached_node 0x200000, not at the freed range's neighbour 0xfffff.
  expect(iovad.allocIova(1, 0x20_0000)).toBe(0x1f_ffff);
});

test('largestFreeExtent counts the last pfn alone, and prefers a lower gap to an equal tail', () => {
  const end = new IovaDomain({ startPfn: 1, lastPfn: 10 });
  expect(end.allocIova(9, 9)).toBe(1);
  expect(end.largestFreeExtent()).toEqual({ pfnLo: 10, pages: 1 });
  const tie = new IovaDomain({ startPfn: 1, lastPfn: 20 });
  tie.reserveIova(6, 15);
  expect(tie.largestFreeExtent()).toEqual({ pfnLo: 1, pages: 5 });
});
