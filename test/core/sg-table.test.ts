/**
 * The SgTable model: chaining across SG_MAX_SINGLE_ALLOC, end markers, metadata bytes, what
 * dma_map_sg writes, and the PhyrList <-> SgTable conversions against a plain interval reference.
 */
import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import {
  isPhysrError,
  PhyrList,
  PhyrListBuilder,
  phyrListToSgTable,
  SCATTERLIST_BYTES,
  SCATTERLIST_MAX_SEGMENT,
  SG_DMA_BUS_ADDRESS,
  SG_MAX_SINGLE_ALLOC,
  SG_NULL,
  SG_TABLE_BYTES,
  SgAppendTable,
  type SgTable,
  sgAllocTable,
  sgAllocTableFromPages,
  sgAllocTableFromPagesSegment,
  sgTableToPhyrList,
  U64_MAX,
} from '../../src/core/index.ts';

/** Chain slots the kernel needs for n entries: every full chunk gives one slot to the chain. */
const expectedChains = (n: number) => (n <= SG_MAX_SINGLE_ALLOC ? 0 : Math.ceil((n - 128) / 127));

/** Walks with sg_next from sgl; returns data slots visited and checks the end marker. */
function walk(table: SgTable): number[] {
  const slots: number[] = [];
  let s = table.sgl;
  while (s !== SG_NULL) {
    expect(table.isChain(s)).toBe(false);
    slots.push(s);
    s = table.next(s);
  }
  return slots;
}

describe('sg_alloc_table chaining', () => {
  test('the kernel sizes', () => {
    expect(SCATTERLIST_BYTES).toBe(32);
    expect(SG_TABLE_BYTES).toBe(16);
    expect(SG_MAX_SINGLE_ALLOC).toBe(128);
    expect(SCATTERLIST_MAX_SEGMENT).toBe(0xffff_f000);
  });

  for (const n of [1, 2, 127, 128, 129, 254, 255, 256, 257, 1000, 16_384]) {
    test(`${n} entries`, () => {
      const table = sgAllocTable(n);
      const chains = expectedChains(n);
      expect(table.origNents).toBe(n);
      expect(table.nents).toBe(n);
      expect(table.slotCount).toBe(n + chains);
      expect(table.chunkCount).toBe(chains + 1);
      expect(table.metadataBytes).toBe(32 * (n + chains) + 16);
      const slots = walk(table);
      expect(slots.length).toBe(n);
      expect(table.isLast(slots[n - 1]!)).toBe(true);
      expect(table.entrySlots()).toEqual(Int32Array.from(slots));
    });
  }

  test('a full chunk is a page; a small one rounds to a kmalloc class', () => {
    expect(sgAllocTable(128).allocatedBytes).toBe(4096 + 16);
    expect(sgAllocTable(3).allocatedBytes).toBe(96 + 16); // 96 B: kmalloc-96
    expect(sgAllocTable(5).allocatedBytes).toBe(192 + 16); // 160 B -> kmalloc-192
    expect(sgAllocTable(129).allocatedBytes).toBe(4096 + 64 + 16); // page + 2 entries
  });

  test('nents 0 is EINVAL; a preallocated first chunk of another size chains at its own end', () => {
    expect(() => sgAllocTable(0)).toThrowError(/nents is 0/);
    const table = sgAllocTable(10, 128, 4);
    expect(table.chunkCount).toBe(2);
    expect(table.slotCount).toBe(11);
    expect(table.isChain(3)).toBe(true);
    expect(walk(table).length).toBe(10);
  });
});

describe('sg_alloc_table_from_pages_segment', () => {
  test('non-contiguous pages across chunk boundaries chain exactly like sg_alloc_table', () => {
    for (const n of [127, 128, 129, 300]) {
      const pfns = Array.from({ length: n }, (_, i) => BigInt(2 * i + 100));
      const table = sgAllocTableFromPagesSegment(pfns, 0, n * 4096, SCATTERLIST_MAX_SEGMENT);
      expect(table.origNents).toBe(n);
      expect(table.slotCount).toBe(sgAllocTable(n).slotCount);
      expect(walk(table).length).toBe(n);
    }
  });

  test('contiguous pages merge up to max_segment, with offset and short size', () => {
    const pfns = [10n, 11n, 12n, 13n, 14n];
    const table = sgAllocTableFromPagesSegment(pfns, 0x100, 5 * 4096 - 0x300, 8192 + 5);
    const entries = [...table.entries()];
    expect(entries.map((e) => [e.pfn, e.offset, e.length])).toEqual([
      [10n, 0x100, 8192 - 0x100],
      [12n, 0, 8192],
      [14n, 0, 4096 - 0x200],
    ]);
    expect(entries[0]!.address).toBe(10n * 4096n + 0x100n);
  });

  test('max_segment below a page is EINVAL', () => {
    expect(() => sgAllocTableFromPagesSegment([1n], 0, 4096, 4095)).toThrowError(/below one page/);
  });

  test('sg_alloc_table_from_pages uses SCATTERLIST_MAX_SEGMENT', () => {
    const pfns = Array.from({ length: 0x10_0001 }, (_, i) => BigInt(i));
    const table = sgAllocTableFromPages(pfns, 0, 0x10_0001 * 4096);
    // 0xfffff pages fit one entry (0xffff_f000 bytes); the other two form a second.
    expect(table.origNents).toBe(2);
    expect(table.lengthAt(table.sgl)).toBe(0xffff_f000);
  });

  test('append across many calls keeps orig_nents equal to the table walk', () => {
    const append = new SgAppendTable();
    for (let call = 0; call < 40; call++) {
      const pfns = Array.from({ length: 5 }, (_, i) => BigInt(call * 100 + i * 2));
      append.appendFromPages(pfns, 0, 5 * 4096, SCATTERLIST_MAX_SEGMENT, call === 39 ? 0 : 5);
    }
    expect(append.sgt.origNents).toBe(200);
    expect(walk(append.sgt).length).toBe(200);
    expect(() => append.appendFromPages([1n], 4, 4096, SCATTERLIST_MAX_SEGMENT)).toThrowError(/offset 4/);
  });
});

describe('what dma_map_sg writes', () => {
  test('dma address, length, flags per entry and the mapped count', () => {
    const table = sgAllocTable(3);
    const slots = table.entrySlots();
    table.setDma(slots[0]!, 0xffff_ffff_ffff_0000n, 0x3000, SG_DMA_BUS_ADDRESS);
    table.setMappedNents(1);
    expect(table.nents).toBe(1);
    expect(table.origNents).toBe(3);
    expect(table.dmaFlagsAt(slots[0]!)).toBe(SG_DMA_BUS_ADDRESS);
    const dma = table.toDmaRangeList();
    expect(dma.toArray()).toEqual([{ address: 0xffff_ffff_ffff_0000n, length: 0x3000n }]);
    expect(() => table.setMappedNents(4)).toThrowError(/orig_nents/);
    expect(() => table.setDma(slots[1]!, 0n, 2 ** 32)).toThrowError(/unsigned int/);
    expect(() => table.lengthAt(99)).toThrowError(/not allocated/);
  });
});

describe('PhyrList <-> SgTable', () => {
  const listArb = fc
    .array(
      fc.record({
        pfn: fc.oneof(fc.bigInt(0n, 0x1000n), fc.bigInt((1n << 52n) - 0x100n, (1n << 52n) - 0x10n)),
        offset: fc.bigInt(0n, 0xfffn),
        length: fc.bigInt(1n, 0x4000n),
      }),
      { minLength: 1, maxLength: 300 },
    )
    .map((rs) => PhyrList.fromRanges(rs.map((r) => [(r.pfn << 12n) + r.offset, r.length])));

  test.prop([listArb, fc.integer({ min: 1, max: 0x3000 })])(
    'the round trip gives the list split at the max segment',
    (list, maxSegment) => {
      const table = phyrListToSgTable(list, { maxSegment });
      const expected = list.split({ maxSegmentSize: BigInt(maxSegment) });
      expect(table.origNents).toBe(expected.count);
      expect(table.metadataBytes).toBe(32 * (expected.count + expectedChains(expected.count)) + 16);
      expect(sgTableToPhyrList(table).equals(expected)).toBe(true);
      // Merging contiguous entries on the way back covers the same bytes as the list merged.
      const merged = new PhyrListBuilder().appendList(list).build();
      expect(sgTableToPhyrList(table, { merge: true }).equals(merged)).toBe(true);
    },
  );

  test('a 6 GiB BAR range needs two 32-bit entries; the top page round-trips', () => {
    const list = PhyrList.fromRanges([
      [0x40_0000_0000n, 6n << 30n],
      [0xffff_ffff_ffff_f000n, 0x1000n],
    ]);
    const table = phyrListToSgTable(list);
    expect(table.origNents).toBe(3); // 0xffff_f000 + 0x8000_1000, then the top page
    const back = sgTableToPhyrList(table, { merge: true });
    expect(back.equals(list)).toBe(true);
    expect(back.lastAt(1)).toBe(U64_MAX);
    expect(table.physAt(table.entrySlots()[2]!)).toBe(0xffff_ffff_ffff_f000n);
  });

  test('an empty list has no sg form', () => {
    let error: unknown;
    try {
      phyrListToSgTable(PhyrList.empty());
    } catch (e) {
      error = e;
    }
    expect(isPhysrError(error, 'EINVAL')).toBe(true);
  });
});
