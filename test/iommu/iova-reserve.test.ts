/**
 * reserve_iova (drivers/iommu/iova.c, unchanged 6.12 .. 7.1): a reservation overlapping reserved
 * ranges grows the first one it overlaps down to its start (__adjust_overlap_range), goes on above
 * each, and inserts one new range for what is left above the last; touching ranges stay apart.
 * Expected ranges and pfns come from 6.12's iova.c compiled in userspace (test/kernel).
 */
import { describe, expect, test } from 'vitest';
import { IovaDomain } from '../../src/iommu/index.ts';

const spans = (iovad: IovaDomain) => iovad.ranges().map((r) => [r.pfnLo, r.pfnHi, r.reserved]);

describe('reserve_iova keeps the kernel nodes (drivers/iommu/iova.c, 6.12 in userspace)', () => {
  test('a reservation reaching above a reserved range adds only the part above it', () => {
    const iovad = new IovaDomain({ lastPfn: 0xfff });
    iovad.reserveIova(10, 20);
    iovad.reserveIova(15, 30);
    expect(spans(iovad)).toEqual([
      [10, 20, true],
      [21, 30, true],
    ]);
    expect(iovad.findIova(25)).toEqual({ pfnLo: 21, pfnHi: 30, reserved: true });
    expect(iovad.findIova(15)).toEqual({ pfnLo: 10, pfnHi: 20, reserved: true });
  });

  test('over two reserved ranges: the first grows down, the second grows over the gap, the rest is new', () => {
    const iovad = new IovaDomain({ lastPfn: 0xfff });
    iovad.reserveIova(10, 20);
    iovad.reserveIova(30, 40);
    iovad.reserveIova(5, 50);
    expect(spans(iovad)).toEqual([
      [5, 20, true],
      [21, 40, true],
      [41, 50, true],
    ]);
    // Ending inside the second range: nothing new.
    const again = new IovaDomain({ lastPfn: 0xfff });
    again.reserveIova(10, 20);
    again.reserveIova(30, 40);
    again.reserveIova(5, 35);
    expect(spans(again)).toEqual([
      [5, 20, true],
      [21, 40, true],
    ]);
  });

  test('touching or contained reservations change nothing of what is there', () => {
    const iovad = new IovaDomain({ lastPfn: 0xfff });
    iovad.reserveIova(10, 20);
    iovad.reserveIova(21, 30);
    iovad.reserveIova(11, 12);
    iovad.reserveIova(10, 20);
    expect(spans(iovad)).toEqual([
      [10, 20, true],
      [21, 30, true],
    ]);
    // A reservation ending on a range's first pfn overlaps it: the range grows down to take it all.
    iovad.reserveIova(40, 50);
    iovad.reserveIova(35, 40);
    expect(spans(iovad).at(-1)).toEqual([35, 50, true]);
    iovad.reserveIova(5, 5);
    iovad.reserveIova(4, 6); // [5,5] grows to [4,5]; 6 is new
    expect(spans(iovad).slice(0, 2)).toEqual([
      [4, 5, true],
      [6, 6, true],
    ]);
  });

  test('a cached node that grows down keeps its place: the next search starts below it (kernel: 4)', () => {
    const iovad = new IovaDomain({ startPfn: 1 });
    iovad.reserveIova(10, 12);
    expect(iovad.allocIova(1, 15)).toBe(15);
    expect(iovad.allocIova(2, 9)).toBe(8);
    // Freeing the cached32 node [8,9] moves it to the next range up: the reserved [10,12].
    iovad.freeIova(8);
    iovad.reserveIova(5, 11); // [10,12] grows to [5,12], still the cached node
    // The search starts at [5,12], not at the top (where 14 is free).
    expect(iovad.allocIova(1, 15)).toBe(4);
    expect(spans(iovad)).toEqual([
      [4, 4, false],
      [5, 12, true],
      [15, 15, false],
    ]);
  });

  test('allocations see the reserved pfns, not the node layout (kernel: 71, 41, then none)', () => {
    const iovad = new IovaDomain({ startPfn: 1 });
    iovad.reserveIova(10, 20);
    iovad.reserveIova(30, 40);
    iovad.reserveIova(12, 38);
    expect(iovad.allocIova(30, 100)).toBe(71);
    expect(iovad.allocIova(30, 100)).toBe(41);
    expect(() => iovad.allocIova(30, 100)).toThrow(
      'ENOMEM: no free IOVA range of 30 pages at or below pfn 0x64',
    );
  });

  test('an empty range is EINVAL; over a live allocation EBUSY, and nothing changes', () => {
    const iovad = new IovaDomain({ lastPfn: 0xfff });
    expect(() => iovad.reserveIova(5, 4)).toThrow('EINVAL: reserve of empty pfn range 5..4');
    iovad.reserveIova(0x10, 0x1f);
    const a = iovad.allocIova(0x10, 0x2f);
    expect(a).toBe(0x20);
    expect(() => iovad.reserveIova(0x8, 0x20)).toThrow(
      'EBUSY: cannot reserve pfns 0x8..0x20: the allocation at 0x20 overlaps',
    );
    expect(() => iovad.reserveIova(0x2f, 0x40)).toThrow(/^EBUSY: .* the allocation at 0x20 overlaps/);
    expect(spans(iovad)).toEqual([
      [0x10, 0x1f, true],
      [0x20, 0x2f, false],
    ]);
  });
});
