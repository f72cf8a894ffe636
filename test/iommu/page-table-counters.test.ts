/**
 * What one map or unmap adds to the counters (counted once per call): PTE words written (table
 * entries included), leaves by size, map_pages calls (one per iommu_pgsize step, drivers/iommu/
 * iommu.c __iommu_map), PTEs cleared, table pages allocated and freed. Counts worked by hand.
 */
import { describe, expect, test } from 'vitest';
import { COUNTER, Metrics, SZ_2M, SZ_4K } from '../../src/core/index.ts';
import {
  IOMMU_READ,
  IOMMU_WRITE,
  IoPageTable,
  IotlbGather,
  x86SecondStageFormat,
} from '../../src/iommu/index.ts';

const RW = IOMMU_READ | IOMMU_WRITE;

function counts(m: Metrics) {
  return {
    pteWrites: m.get(COUNTER.pteWrites),
    leaves: m.get('iommu.leaf_pte_writes'),
    leaves4K: m.get('iommu.leaf_pte_writes.4K'),
    leaves2M: m.get('iommu.leaf_pte_writes.2M'),
    leaves1G: m.get('iommu.leaf_pte_writes.1G'),
    mapPages: m.get('iommu.map_pages_calls'),
    clears: m.get(COUNTER.pteClears),
    allocated: m.get(COUNTER.tablePagesAllocated),
    freed: m.get(COUNTER.tablePagesFreed),
  };
}

describe('page-table counters', () => {
  test('a 2M leaf and three 4K pages: two map_pages calls, three new tables, seven PTE words', () => {
    const metrics = new Metrics();
    const pt = new IoPageTable(x86SecondStageFormat(4), { metrics });
    expect(counts(metrics).allocated).toBe(1); // the top page
    pt.map(0n, 0n, SZ_2M + 3n * SZ_4K, RW);
    // Tables: level 2 and level 1 for the 2M leaf, level 0 under its neighbour for the 4K pages;
    // words: those three table entries and four leaves.
    expect(counts(metrics)).toEqual({
      pteWrites: 7,
      leaves: 4,
      leaves4K: 3,
      leaves2M: 1,
      leaves1G: 0,
      mapPages: 2,
      clears: 0,
      allocated: 4,
      freed: 0,
    });
    const gather = new IotlbGather();
    expect(pt.unmap(0n, SZ_2M + 3n * SZ_4K, gather)).toBe(SZ_2M + 3n * SZ_4K);
    // Four leaves cleared; no table is covered whole, so none is freed.
    expect(counts(metrics)).toMatchObject({ clears: 4, freed: 0 });
    expect([gather.start, gather.last, gather.pgsize, gather.freedTablePages]).toEqual([
      0n,
      SZ_2M + 3n * SZ_4K - 1n,
      SZ_2M,
      0,
    ]);
  });

  test('a gigabyte at a 1G-aligned IOVA and address is one 1G leaf in one call', () => {
    const metrics = new Metrics();
    const pt = new IoPageTable(x86SecondStageFormat(4), { metrics });
    pt.map(1n << 30n, 1n << 30n, 1n << 30n, RW);
    expect(counts(metrics)).toMatchObject({
      pteWrites: 2,
      leaves: 1,
      leaves1G: 1,
      mapPages: 1,
      allocated: 2,
    });
  });

  test('mismatched IOVA and address offsets in 2M: one call of smallest pages (the constant-time path)', () => {
    const metrics = new Metrics();
    const pt = new IoPageTable(x86SecondStageFormat(4), { metrics });
    pt.map(SZ_2M, SZ_2M + SZ_4K, 2n * SZ_2M, RW);
    // 1024 4K leaves over two level-0 tables; one map_pages call.
    expect(counts(metrics)).toMatchObject({ leaves: 1024, leaves4K: 1024, mapPages: 1, allocated: 5 });
    expect(pt.iovaToPhys(3n * SZ_2M - 8n)).toBe(3n * SZ_2M + SZ_4K - 8n);
  });
});
