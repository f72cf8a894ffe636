/**
 * IoPageTable at its edges: what it refuses and what it says (iommu_map's checks in
 * drivers/iommu/iommu.c, generic_pt map_pages, io-pgtable-arm's -EEXIST), the exact bounds of the
 * aperture and the output width, and runs of leaves whose addresses carry across 32-bit halves.
 */
import { describe, expect, test } from 'vitest';
import { PhyrList, SZ_1G, SZ_2M, SZ_4K } from '../../src/core/index.ts';
import { IOMMU_READ, IOMMU_WRITE, IoPageTable, x86SecondStageFormat } from '../../src/iommu/index.ts';

const RW = IOMMU_READ | IOMMU_WRITE;
const x86 = x86SecondStageFormat(4);

describe('IoPageTable refusals', () => {
  test('a page-size bitmap must be a non-empty subset of the format', () => {
    expect(() => new IoPageTable(x86, { pgsizeBitmap: 0n })).toThrow(
      "EINVAL: page sizes 0x0 are not a non-empty subset of x86-64-ss-4level's 0x40201000",
    );
    expect(() => new IoPageTable(x86, { pgsizeBitmap: SZ_4K | 0x2000n })).toThrow(
      /^EINVAL: page sizes 0x3000 are not a non-empty subset/,
    );
    const small = new IoPageTable(x86, { pgsizeBitmap: SZ_4K | SZ_2M });
    expect(small.pgsizeBitmap).toBe(0x20_1000n);
    // The restricted table refuses the 1G size the format has.
    expect(() => small.mapPages(0n, 0n, SZ_1G, 1n, RW)).toThrow(
      'EINVAL: page size 1G is not supported by x86-64-ss-4level',
    );
    expect(() => small.mapPages(0n, 0n, 0x2000n, 1n, RW)).toThrow(
      'EINVAL: page size 8K is not supported by x86-64-ss-4level',
    );
  });

  test('size, alignment and permission', () => {
    const pt = new IoPageTable(x86);
    expect(() => pt.map(0x1000n, 0x2000n, 0n, RW)).toThrow('EINVAL: map of 0x1000: size 0 must be positive');
    expect(() => pt.map(0x1000n, 0x2000n, -SZ_4K, RW)).toThrow(/^EINVAL: map of 0x1000: size -4096 /);
    expect(() => pt.map(0x1000n, 0x2800n, SZ_4K, RW)).toThrow(
      'EINVAL: map iova 0x1000 paddr 0x2800 size 0x1000 is not aligned to the minimum page size 4K',
    );
    expect(() => pt.map(0x1000n, 0x2000n, SZ_4K, 0)).toThrow(
      'EINVAL: map of 0x1000 with neither READ nor WRITE permission',
    );
    pt.map(0x1000n, 0x2000n, SZ_4K, IOMMU_WRITE); // write-only is a permission
    pt.map(0x2000n, 0x2000n, SZ_4K, IOMMU_READ);
    expect(pt.lookup(0x1000n)?.prot).toBe(IOMMU_WRITE);
    expect(pt.lookup(0x2000n)?.prot).toBe(IOMMU_READ);
  });

  test('the aperture and the output width end exactly at 2^ias - 1 and 2^oas - 1', () => {
    const pt = new IoPageTable(x86);
    const lastPage = (1n << 48n) - SZ_4K;
    pt.map(lastPage, 0x1000n, SZ_4K, RW);
    expect(pt.iovaToPhys(lastPage + 0xfffn)).toBe(0x1fffn);
    expect(() => pt.map(lastPage, 0x1000n, 2n * SZ_4K, RW)).toThrow(
      'ERANGE: iova 0xfffffffff000 + 0x2000 is outside the aperture 0..0xffffffffffff of x86-64-ss-4level',
    );
    const lastFrame = (1n << 52n) - SZ_4K;
    pt.map(0x10_0000n, lastFrame, SZ_4K, RW);
    expect(pt.iovaToPhys(0x10_0008n)).toBe(lastFrame + 8n);
    expect(() => pt.map(0x20_0000n, lastFrame, 2n * SZ_4K, RW)).toThrow(
      'ERANGE: paddr 0xffffffffff000 + 0x2000 exceeds the 52-bit output address space of x86-64-ss-4level',
    );
  });

  test('a mapping in the way is EEXIST, saying which', () => {
    const pt = new IoPageTable(x86);
    pt.map(0x1000n, 0x5000n, SZ_4K, RW);
    expect(() => pt.map(0x1000n, 0x9000n, SZ_4K, RW)).toThrow(
      'EEXIST: iova 0x1000 is already mapped (a leaf is present where a 4K leaf would go)',
    );
    expect(() => pt.map(0n, 0n, SZ_2M, RW)).toThrow(
      'EEXIST: iova 0x0 is already mapped (a table of smaller pages is present where a 2M leaf would go)',
    );
    pt.map(SZ_2M, 0x4000_0000n, SZ_2M, RW);
    expect(() => pt.map(SZ_2M + 0x3000n, 0x9000n, SZ_4K, RW)).toThrow(
      'EEXIST: iova 0x203000 lies inside the 2M leaf at 0x200000',
    );
  });

  test('the table-page limit is ENOMEM with the limit in the message', () => {
    // The top page plus one table per level below it for the first 4K leaf: 4 pages.
    const pt = new IoPageTable(x86, { maxTablePages: 4 });
    pt.map(0n, 0n, SZ_4K, RW);
    expect(pt.tablePages).toBe(4);
    expect(() => pt.map(SZ_1G, 0n, SZ_4K, RW)).toThrow(
      'ENOMEM: page table x86-64-ss-4level is at its limit of 4 table pages',
    );
  });

  test('mapList refusals name the ranges', () => {
    const pt = new IoPageTable(x86);
    const words = PhyrList.fromRanges([
      [0x5000_0100n, 0xf00n],
      [0x6000_0100n, 0x1000n],
    ]);
    expect(() => pt.mapList(0x100n, words, 0, 3, RW)).toThrow(
      'EINVAL: mapList ranges 0..3 are outside the list of 2',
    );
    expect(() => pt.mapList(0x100n, words, -1, 1, RW)).toThrow(/^EINVAL: mapList ranges -1..1 are outside/);
    expect(() => pt.mapList(0x100n, words, 0.5, 1, RW)).toThrow(/^EINVAL: mapList ranges 0.5..1 are outside/);
    expect(() => pt.mapList(0x100n, words, 1, 1, RW)).toThrow('EINVAL: mapList of no ranges at 0x100');
    expect(() => pt.mapList(0x200n, words, 0, 1, RW)).toThrow(
      'EINVAL: mapList iova 0x200 and paddr 0x50000100 differ in their 4K page offset',
    );
    expect(() => pt.mapList(0x100n, words, 0, 2, RW)).toThrow(
      'EINVAL: mapList range 1 0x60000100+4K breaks the 4K alignment a list needs (only the first may start, and the last end, inside a page)',
    );
    expect(() => pt.mapList(0x100n, words, 0, 1, 0)).toThrow(
      /^EINVAL: map of 0x100 with neither READ nor WRITE/,
    );
    // Range 1 alone may start inside its page: it is the first.
    expect(pt.mapList(0x100n, words, 1, 2, RW)).toBe(2n * SZ_4K);
    expect(pt.iovaToPhys(0x1080n)).toBe(0x6000_1080n);
  });
});

describe('runs of leaves written as 32-bit halves', () => {
  test('a run of 4K leaves crossing 4 GiB of physical address carries into the high half', () => {
    const pt = new IoPageTable(x86);
    pt.map(0x1000_0000n, 0xffff_e000n, 4n * SZ_4K, RW);
    const phys = [0n, 1n, 2n, 3n].map((i) => pt.iovaToPhys(0x1000_0000n + i * SZ_4K + 0x10n));
    expect(phys).toEqual([0xffff_e010n, 0xffff_f010n, 0x1_0000_0010n, 0x1_0000_1010n]);
  });

  test('a run of 1G leaves steps by 2^30 across several 4 GiB boundaries', () => {
    const pt = new IoPageTable(x86);
    pt.map(0x40_0000_0000n, 0x2_c000_0000n, 6n * SZ_1G, RW);
    const phys = [0n, 1n, 2n, 3n, 4n, 5n].map((i) => pt.iovaToPhys(0x40_0000_0000n + i * SZ_1G + 0x123n));
    expect(phys).toEqual([
      0x2_c000_0123n,
      0x3_0000_0123n,
      0x3_4000_0123n,
      0x3_8000_0123n,
      0x3_c000_0123n,
      0x4_0000_0123n,
    ]);
    expect(pt.lookup(0x40_4000_0000n)?.pageSize).toBe(SZ_1G);
  });
});

describe('unmap refusals, lookups at the edges, clear', () => {
  test('an unmap of nothing, off the smallest page or past the aperture unmaps nothing (iommu_unmap returns 0)', () => {
    const pt = new IoPageTable(x86);
    const last = (1n << 48n) - SZ_4K;
    pt.map(0x1000n, 0x5000n, 2n * SZ_4K, RW);
    pt.map(last, 0x9000n, SZ_4K, RW);
    expect(pt.unmap(0x1000n, 0n)).toBe(0n);
    expect(pt.unmap(0x1800n, SZ_4K)).toBe(0n);
    expect(pt.unmap(0x1000n, 0x800n)).toBe(0n);
    expect(pt.unmap(last, 2n * SZ_4K)).toBe(0n);
    expect(pt.unmap(1n << 48n, SZ_4K)).toBe(0n);
    expect([pt.iovaToPhys(0x1000n), pt.iovaToPhys(0x2000n), pt.iovaToPhys(last)]).toEqual([
      0x5000n,
      0x6000n,
      0x9000n,
    ]);
    expect(pt.unmap(last, SZ_4K)).toBe(SZ_4K);
    expect(pt.unmap(0x1000n, 2n * SZ_4K)).toBe(2n * SZ_4K);
  });

  test('lookups outside the aperture find nothing, even where the index bits would wrap onto a mapping', () => {
    const pt = new IoPageTable(x86);
    pt.map(0n, 0x5000n, SZ_4K, RW);
    pt.map((1n << 48n) - SZ_4K, 0x9000n, SZ_4K, RW);
    expect(pt.lookup(1n << 48n)).toBeUndefined();
    expect(pt.lookup(-1n)).toBeUndefined();
    expect(pt.lookup(0x10n)).toEqual({ phys: 0x5010n, leafIova: 0n, pageSize: SZ_4K, prot: RW });
  });

  test('pteAt stops at a leaf above the level asked for or at an empty entry; countLeaves and clear', () => {
    const pt = new IoPageTable(x86);
    pt.map(SZ_2M, 0x4000_0000n, SZ_2M, RW);
    pt.map(0x1000n, 0x5000n, 3n * SZ_4K, RW);
    expect(pt.pteAt(SZ_2M, 0)).toBeUndefined();
    expect(pt.pteAt(SZ_2M, 1)).toBe(0x4000_0000n | 0x83n); // R, W, PS
    expect(pt.pteAt(0x2000n, 0)).toBe(0x6003n);
    expect(pt.pteAt(5n * SZ_1G, 0)).toBeUndefined();
    expect(pt.pteAt(5n * SZ_1G, 2)).toBe(0n);
    expect(pt.countLeaves()).toEqual(
      new Map([
        [SZ_4K, 3],
        [SZ_2M, 1],
      ]),
    );
    expect(pt.tablePages).toBe(4);
    pt.clear();
    expect(pt.tablePages).toBe(1);
    expect([...pt.entries()]).toEqual([]);
    expect(pt.lookup(SZ_2M)).toBeUndefined();
    pt.map(SZ_2M, 0x4000_0000n, SZ_2M, RW);
    expect(pt.iovaToPhys(SZ_2M + 8n)).toBe(0x4000_0008n);
  });
});
