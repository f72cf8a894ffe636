/**
 * struct scatterlist's field widths (lib/scatterlist.c, include/linux/scatterlist.h): length,
 * offset, dma_length and dma_flags are unsigned int, a page frame fits 52 bits; and the walk and
 * append refusals the model keeps where the kernel would read out of bounds.
 */
import { describe, expect, test } from 'vitest';
import { SCATTERLIST_MAX_SEGMENT, SgAppendTable, sgAllocTable, UINT_MAX } from '../../src/core/index.ts';
import { expectErrno } from '../errno.ts';

describe('scatterlist fields', () => {
  test('u32 fields accept 0..UINT_MAX and refuse anything else, naming the field', () => {
    const table = sgAllocTable(2);
    const [first] = table.entrySlots();
    table.setPage(first!, 0xf_ffff_ffff_ffffn, UINT_MAX, 0);
    expect(table.lengthAt(first!)).toBe(UINT_MAX);
    expectErrno(
      () => table.setPage(first!, 1n, UINT_MAX + 1, 0),
      'EINVAL',
      /^sg length 4294967296 is not an unsigned int \(0\.\.4294967295\)$/,
    );
    expectErrno(
      () => table.setPage(first!, 1n, 0x1000, -1),
      'EINVAL',
      /^sg offset -1 is not an unsigned int/,
    );
    expectErrno(() => table.setPage(first!, 1n, 0.5, 0), 'EINVAL', /^sg length 0\.5 is not/);
    // PFN: 64 - PAGE_SHIFT bits.
    expectErrno(
      () => table.setPage(first!, 1n << 52n, 0x1000, 0),
      'EINVAL',
      /^pfn 0x10000000000000 is out of range$/,
    );
    expectErrno(() => table.setPage(first!, -1n, 0x1000, 0), 'EINVAL', /pfn -0x1 is out of range/);
    table.setDma(first!, 0x8000_0000n, 0x1234, 0);
    expect(table.dmaLengthAt(first!)).toBe(0x1234);
    expectErrno(() => table.setDma(first!, 0n, UINT_MAX + 1), 'EINVAL', /^sg dma_length 4294967296 is not/);
    expectErrno(() => table.setDma(first!, 0n, 0, -1), 'EINVAL', /^sg dma_flags -1 is not/);
  });

  test('a slot that was not allocated is refused with the valid span', () => {
    const table = sgAllocTable(3);
    expect(table.slotCount).toBe(3);
    expectErrno(() => table.lengthAt(3), 'EINVAL', /^scatterlist slot 3 was not allocated \(0\.\.2\)$/);
    expectErrno(() => table.lengthAt(-1), 'EINVAL', /slot -1 was not allocated/);
    expect(table.lengthAt(2)).toBe(0);
  });

  test('walking more entries than the list holds stops at its end marker', () => {
    const table = sgAllocTable(2);
    const seen: number[] = [];
    table.forEachSlot((_slot, i) => seen.push(i));
    expect(seen).toEqual([0, 1]);
    expectErrno(() => table.forEachSlot(() => {}, 3), 'EINVAL', /^sg list ended after 2 of 3 entries$/);
  });

  test('appending no pages to a fresh table is refused (the kernel would read pages[0])', () => {
    expectErrno(
      () => new SgAppendTable().appendFromPages([], 0, 0, SCATTERLIST_MAX_SEGMENT, 0),
      'EINVAL',
      /^no pages to append$/,
    );
  });
});
