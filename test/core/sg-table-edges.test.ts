/**
 * sg_table edges worked by hand from lib/scatterlist.c and include/linux/scatterlist.h: an
 * allocation's size bounds (sg_kmalloc: 1..SG_MAX_SINGLE_ALLOC), sg_unmark_end, for_each_sg never
 * stepping past the entry it stops at, an append to a table whose end was marked, and the refusals
 * of the dma fields and of a zero-length entry.
 */
import { describe, expect, test } from 'vitest';
import {
  SCATTERLIST_MAX_SEGMENT,
  SG_PAGE_SIZE,
  SgAppendTable,
  SgTable,
  sgAllocTable,
  U64_MAX,
  UINT_MAX,
} from '../../src/core/index.ts';
import { expectErrno } from '../errno.ts';

describe('allocation', () => {
  test('a chunk holds 1..128 slots; a full one is one page, a smaller one a kmalloc class', () => {
    const t = new SgTable();
    for (const bad of [0, 129, 1.5, -1]) {
      expectErrno(
        () => t.allocChunk(bad),
        'EINVAL',
        new RegExp(`^an sg chunk holds 1\\.\\.128 entries, not ${bad}$`),
      );
    }
    expect(t.slotCount).toBe(0);
    expect(t.allocChunk(128)).toBe(0);
    expect(t.allocChunk(3)).toBe(128);
    // 16 (sg_table) + one page + kmalloc-96 for 3 × 32 bytes.
    expect(t.allocatedBytes).toBe(16 + 4096 + 96);
    expect(t.isLast(127)).toBe(true);
    expect(t.isLast(130)).toBe(true);
    expect(t.isLast(129)).toBe(false);
    // Room grows past the first 16 slots without losing what was written.
    t.setPage(0, 7n, 0x800, 0x100);
    t.setDma(130, 0xfeed_0000n, 0x200, 1);
    expect([t.pfnAt(0), t.offsetAt(0), t.lengthAt(0)]).toEqual([7n, 0x100, 0x800]);
    expect([t.dmaAddressAt(130), t.dmaLengthAt(130), t.dmaFlagsAt(130)]).toEqual([0xfeed_0000n, 0x200, 1]);
    expect(t.toString()).toBe('SgTable(orig_nents 0, nents 0, 131 slots in 2 chunks, 4208 B)');
  });
});

describe('entry flags and walks', () => {
  test('sg_unmark_end clears only the end bit', () => {
    const t = sgAllocTable(2);
    const [, last] = t.entrySlots();
    expect(t.isLast(last!)).toBe(true);
    t.unmarkEnd(last!);
    expect([t.isLast(last!), t.isChain(last!)]).toEqual([false, false]);
    t.markEnd(last!);
    t.unmarkEnd(0);
    expect([t.isLast(0), t.isChain(0), t.isLast(last!)]).toEqual([false, false, true]);
  });

  test('for_each_sg and the entry walk stop at the last entry without calling sg_next on it', () => {
    // The last entry has no end mark and is the allocation's last slot: sg_next from it would run off.
    const t = sgAllocTable(2);
    t.setPage(0, 1n, 0x1000, 0);
    t.setPage(1, 9n, 0x200, 0x10);
    t.unmarkEnd(1);
    expectErrno(() => t.next(1), 'EINVAL', /^sg_next ran off allocation at slot 1 \(no end marker\)$/);
    const seen: number[] = [];
    t.forEachSlot((slot) => seen.push(slot));
    expect(seen).toEqual([0, 1]);
    expect([...t.entries()].map((e) => [e.slot, e.address, e.length])).toEqual([
      [0, 0x1000n, 0x1000],
      [1, 0x9010n, 0x200],
    ]);
    expect(t.toPhyrList().toArray()).toEqual([
      { address: 0x1000n, length: 0x1000n },
      { address: 0x9010n, length: 0x200n },
    ]);
  });

  test('a zero-length entry has no PhyrList form', () => {
    const t = sgAllocTable(2);
    t.setPage(0, 1n, 0x1000, 0);
    expectErrno(() => t.toPhyrList(), 'EINVAL', /^sg entry at slot 1 has length 0$/);
  });
});

describe('fields', () => {
  test('dma_address is a u64; sg->length grown past UINT_MAX is refused', () => {
    const t = sgAllocTable(1);
    t.setDma(0, U64_MAX, 1);
    expect(t.dmaAddressAt(0)).toBe(U64_MAX);
    expectErrno(() => t.setDma(0, -1n, 1), 'EINVAL', /^DMA address -0x1 is not u64$/);
    expectErrno(() => t.setDma(0, 1n << 64n, 1), 'EINVAL', /^DMA address 0x10000000000000000 is not u64$/);
    expect(t.dmaAddressAt(0)).toBe(U64_MAX);
    t.setPage(0, 1n, UINT_MAX - 0xfff, 0);
    t.growLength(0, 0xfff);
    expect(t.lengthAt(0)).toBe(UINT_MAX);
    expectErrno(() => t.growLength(0, 1), 'EINVAL', /^sg length 4294967296 is not an unsigned int/);
  });
});

describe('append', () => {
  test('after a call that marked the end (left_pages 0), a non-contiguous append is refused', () => {
    const a = new SgAppendTable();
    a.appendFromPages([0x10n], 0, SG_PAGE_SIZE, SCATTERLIST_MAX_SEGMENT, 0);
    expectErrno(
      () => a.appendFromPages([0x40n], 0, SG_PAGE_SIZE, SCATTERLIST_MAX_SEGMENT, 0),
      'EINVAL',
      /^sg append after the table was ended \(left_pages was 0\)$/,
    );
    // A contiguous page still folds into the ended entry (sg_alloc_append_table_from_pages merges first).
    a.appendFromPages([0x11n], 0, SG_PAGE_SIZE, SCATTERLIST_MAX_SEGMENT, 0);
    expect(a.sgt.toPhyrList().toArray()).toEqual([{ address: 0x10000n, length: 0x2000n }]);
  });
});

describe('append folding', () => {
  test('pages contiguous with the previous entry fold into it, the rest start new entries', () => {
    // lib/scatterlist.c sg_alloc_append_table_from_pages: merge with sgt_append->prv first, then
    // allocate entries for what is left.
    const a = new SgAppendTable();
    a.appendFromPages([0x10n], 0, SG_PAGE_SIZE, SCATTERLIST_MAX_SEGMENT, 2);
    a.appendFromPages([0x11n, 0x40n], 0, 2 * SG_PAGE_SIZE, SCATTERLIST_MAX_SEGMENT, 0);
    expect(a.sgt.origNents).toBe(2);
    expect(a.sgt.toPhyrList().toArray()).toEqual([
      { address: 0x10000n, length: 0x2000n },
      { address: 0x40000n, length: 0x1000n },
    ]);
  });
});

describe('the end mark after a call that only folds', () => {
  test('left_pages 0 marks the grown entry as the end; more pages to come leave it open', () => {
    const a = new SgAppendTable();
    a.appendFromPages([0x10n], 0, SG_PAGE_SIZE, SCATTERLIST_MAX_SEGMENT, 3);
    // Folds entirely into the first entry, two more pages announced: no end mark yet.
    a.appendFromPages([0x11n], 0, SG_PAGE_SIZE, SCATTERLIST_MAX_SEGMENT, 2);
    expect(a.sgt.isLast(a.prv)).toBe(false);
    a.appendFromPages([0x50n], 0, SG_PAGE_SIZE, SCATTERLIST_MAX_SEGMENT, 1);
    // Folds into the second entry and is the last call: the end is marked.
    a.appendFromPages([0x51n], 0, SG_PAGE_SIZE, SCATTERLIST_MAX_SEGMENT, 0);
    expect(a.sgt.isLast(a.prv)).toBe(true);
    expect(a.sgt.toPhyrList().toArray()).toEqual([
      { address: 0x10000n, length: 0x2000n },
      { address: 0x50000n, length: 0x2000n },
    ]);
  });
});
