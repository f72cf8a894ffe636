/**
 * The domain's own API (src/iommu/domain.ts): which domain types have a table or an IOVA allocator
 * (include/linux/iommu.h IOMMU_DOMAIN_*), how a DMA domain sets up its IOVA space
 * (iommu_dma_init_domain), the trace records iommu_map / iommu_unmap emit, and the refusals.
 */
import { describe, expect, test } from 'vitest';
import { COUNTER, type DmaTraceRecord, Metrics, PhyrList, SZ_2M, SZ_4K } from '../../src/core/index.ts';
import {
  armLpaeFormat,
  IOMMU_READ,
  IOMMU_WRITE,
  Iommu,
  IotlbGather,
  x86SecondStageFormat,
} from '../../src/iommu/index.ts';

const RW = IOMMU_READ | IOMMU_WRITE;

function unit(format = x86SecondStageFormat(4)) {
  const metrics = new Metrics();
  const records: DmaTraceRecord[] = [];
  metrics.traceSink = (r) => records.push(r);
  return { metrics, records, iommu: new Iommu({ name: 'smmu0', format, metrics }) };
}

describe('domain types and the DMA domain IOVA space (iommu_dma_init_domain)', () => {
  test('dma and paging domains translate; only dma has an IOVA allocator; identity and blocked have neither', () => {
    const { iommu } = unit();
    const dma = iommu.allocDomain('dma');
    const paging = iommu.allocDomain('paging');
    const identity = iommu.allocDomain('identity');
    const blocked = iommu.allocDomain('blocked');
    expect([dma.translating, paging.translating, identity.translating, blocked.translating]).toEqual([
      true,
      true,
      false,
      false,
    ]);
    expect([dma.iovad !== undefined, paging.iovad !== undefined]).toEqual([true, false]);
    expect(identity.pageSizesDescending).toEqual([]);
    // x86 second stage: 4K, 2M and 1G leaves, probed largest first.
    expect(dma.pageSizesDescending).toEqual([1n << 30n, SZ_2M, SZ_4K]);
    expect(identity.iovaToPhys(0x1234_5678n)).toBe(0x1234_5678n);
    expect(blocked.iovaToPhys(0x1234_5678n)).toBe(0n);
    expect(() => identity.map(0n, 0n, SZ_4K, RW)).toThrow(
      'EINVAL: cannot map in a identity domain (no page table)',
    );
    expect(() => blocked.unmap(0n, SZ_4K)).toThrow(
      'EINVAL: cannot unmap in a blocked domain (no page table)',
    );
    expect(() => paging.allocIova(SZ_4K, 0xffff_ffffn)).toThrow(
      'EINVAL: domain 2 is a paging domain, not a DMA domain',
    );
    expect(() => identity.dmaUnmap(0n, SZ_4K)).toThrow(/^EINVAL: cannot unmap in a identity domain/);
  });

  test('the IOVA space starts at pfn 1, ends at the aperture, in granules of the smallest page', () => {
    const { iommu } = unit();
    const dma = iommu.allocDomain('dma', { strict: true });
    // 48-bit input addresses, 4K granule: pfns 1 .. 2^36 - 1.
    expect([dma.iovad!.granule, dma.iovad!.startPfn, dma.iovad!.lastPfn]).toEqual([4096n, 1, 2 ** 36 - 1]);
    expect(dma.allocIova(SZ_4K, (1n << 64n) - 1n)).toBe((1n << 48n) - SZ_4K);
    const arm = unit(armLpaeFormat({ granule: 16384 })).iommu.allocDomain('dma');
    expect([arm.iovad!.granule, arm.iovad!.lastPfn]).toEqual([16384n, 2 ** 34 - 1]);
    // The caller's IOVA options win.
    const own = iommu.allocDomain('dma', { iova: { startPfn: 0x100, lastPfn: 0x1ff } });
    expect([own.iovad!.startPfn, own.iovad!.lastPfn]).toEqual([0x100, 0x1ff]);
    expect(own.allocIova(SZ_4K, (1n << 64n) - 1n)).toBe(0x1ff000n);
  });

  test('sizes round up to whole granules: 4097 bytes take two pages, and free back as two', () => {
    const { iommu } = unit();
    const dma = iommu.allocDomain('dma');
    const iova = dma.allocIova(SZ_4K + 1n, 0xffff_ffffn);
    expect(iova).toBe(0x1_0000_0000n - 2n * SZ_4K);
    const pfn = dma.iovad!.pfnOf(iova);
    expect(dma.iovad!.findIova(pfn)).toEqual({ pfnLo: pfn, pfnHi: pfn + 1, reserved: false });
    dma.freeIova(iova, SZ_4K + 1n);
    expect(dma.iovad!.cachedCounts()).toEqual([0, 1, 0, 0, 0, 0]);
    // One byte: one page, below the two (cached ranges stay allocated).
    const one = dma.allocIova(1n, 0xffff_ffffn);
    expect(one).toBe(0x1_0000_0000n - 3n * SZ_4K);
    expect(dma.iovad!.findIova(dma.iovad!.pfnOf(one))?.pfnHi).toBe(dma.iovad!.pfnOf(one));
  });
});

describe('domain options', () => {
  test('defaults: strict, a 256-slot flush queue and a 10 ms timer (dma-iommu.c IOVA_DEFAULT_FQ_*)', () => {
    const d = unit().iommu.allocDomain('dma');
    expect([d.strict, d.fqSize, d.fqTimeoutMs]).toEqual([true, 256, 10]);
  });

  test('a page-size subset, a table-page limit and a flush-queue timer of its own', () => {
    const { iommu } = unit();
    const d = iommu.allocDomain('dma', {
      strict: false,
      pgsizeBitmap: SZ_4K | SZ_2M,
      maxTablePages: 5,
      fqTimeoutMs: 3,
    });
    expect(d.pageSizesDescending).toEqual([SZ_2M, SZ_4K]);
    expect(d.pageTable!.pgsizeBitmap).toBe(SZ_4K | SZ_2M);
    // No 1G leaf: a 1G-aligned gigabyte maps as 512 x 2M.
    d.map(1n << 30n, 0x4000_0000n, 1n << 30n, RW);
    expect(d.pageTable!.lookup(1n << 30n)?.pageSize).toBe(SZ_2M);
    // Top + level 2 + level 1 for the 2M leaves = 3 pages; a 4K leaf below 4 GiB adds its level 1
    // and level 0 pages: 5, the limit. A 4K leaf at 512G needs a new level 2 page: ENOMEM.
    const iova = d.allocIova(SZ_4K, 0xffff_ffffn);
    d.map(iova, 0x1000n, SZ_4K, RW);
    expect(d.pageTable!.tablePages).toBe(5);
    expect(() => d.map(1n << 39n, 0n, SZ_4K, RW)).toThrow(/^ENOMEM: page table .* limit of 5 table pages/);
    d.dmaUnmap(iova, SZ_4K);
    iommu.advanceClock(2);
    expect(d.queuedIovas).toBe(1);
    iommu.advanceClock(1);
    expect(d.queuedIovas).toBe(0);
  });
});

describe('iommu_map / iommu_unmap on a domain', () => {
  test('map, unmap and unmapFast emit their trace records; unmap invalidates once, unmapFast not at all', () => {
    const { metrics, records, iommu } = unit();
    const d = iommu.allocDomain('paging');
    d.map(0x10_0000n, 0x4000_0000n, 2n * SZ_4K, RW);
    const flushes = metrics.get(COUNTER.iotlbFlushes);
    expect(d.unmap(0x10_0000n, SZ_4K)).toBe(SZ_4K);
    expect(metrics.get(COUNTER.iotlbFlushes) - flushes).toBe(1);
    const gather = new IotlbGather();
    expect(d.unmapFast(0x10_1000n, SZ_4K, gather)).toBe(SZ_4K);
    expect(metrics.get(COUNTER.iotlbFlushes) - flushes).toBe(1);
    expect([gather.start, gather.last]).toEqual([0x10_1000n, 0x10_1fffn]);
    d.iotlbSync(gather);
    expect(gather.isEmpty()).toBe(true);
    expect(metrics.get(COUNTER.iotlbFlushes) - flushes).toBe(2);
    d.iotlbSync(gather); // empty: no invalidation
    d.flushIotlbAll();
    expect(metrics.get(COUNTER.iotlbFlushes) - flushes).toBe(3);
    expect(records).toEqual([
      { kind: 'iommu_map', iova: 0x10_0000n, paddr: 0x4000_0000n, size: 2n * SZ_4K },
      { kind: 'iommu_unmap', iova: 0x10_0000n, size: SZ_4K, unmapped: SZ_4K },
      { kind: 'iommu_unmap', iova: 0x10_1000n, size: SZ_4K, unmapped: SZ_4K },
    ]);
  });

  test('mapList traces one iommu_map per range, each widened to whole pages, back to back', () => {
    const { records, iommu } = unit();
    const d = iommu.allocDomain('paging');
    // Range 0 starts 0x123 into its page and ends on a page boundary (3 pages); range 1 is 1.5 pages.
    const words = PhyrList.fromRanges([
      [0x4000_0123n, 0x2eddn],
      [0x5000_0000n, 0x1800n],
    ]);
    d.mapList(0x10_0123n, words, 0, 2, RW);
    expect(records).toEqual([
      { kind: 'iommu_map', iova: 0x10_0000n, paddr: 0x4000_0000n, size: 0x3000n },
      { kind: 'iommu_map', iova: 0x10_3000n, paddr: 0x5000_0000n, size: 0x2000n },
    ]);
    expect(d.iovaToPhys(0x10_3a00n)).toBe(0x5000_0a00n);
    // Only the ranges asked for: from 1 to 2.
    records.length = 0;
    d.mapList(0x20_0000n, words, 1, 2, RW);
    expect(records).toEqual([{ kind: 'iommu_map', iova: 0x20_0000n, paddr: 0x5000_0000n, size: 0x2000n }]);
  });

  test('a map that replaces a table page with a large leaf flushes once (walk caches); other maps do not', () => {
    const { metrics, iommu } = unit();
    const d = iommu.allocDomain('paging');
    d.map(SZ_2M, 0x4000_0000n, SZ_4K, RW);
    d.unmap(SZ_2M, SZ_4K); // the 4K leaf goes, its table page stays
    const flushes = metrics.get(COUNTER.iotlbFlushes);
    d.map(4n * SZ_2M, 0x8000_0000n, SZ_2M, RW); // a fresh 2M leaf: nothing freed
    expect(metrics.get(COUNTER.iotlbFlushes)).toBe(flushes);
    d.map(SZ_2M, 0x4000_0000n, SZ_2M, RW); // replaces the empty table page
    expect(metrics.get(COUNTER.iotlbFlushes)).toBe(flushes + 1);
    d.map(8n * SZ_2M, 0x8000_0000n, SZ_4K, RW);
    expect(metrics.get(COUNTER.iotlbFlushes)).toBe(flushes + 1);
  });

  test('a DMA unmap must remove exactly what it names (EINVAL otherwise); lazy queues count', () => {
    const { metrics, iommu } = unit();
    const d = iommu.allocDomain('dma', { strict: false, fqSize: 3 });
    const iova = d.allocIova(2n * SZ_4K, 0xffff_ffffn);
    d.map(iova, 0x4000_0000n, 2n * SZ_4K, RW);
    expect(() => d.dmaUnmap(iova, 4n * SZ_4K)).toThrow(
      `EINVAL: DMA unmap of 0x${iova.toString(16)} + 16K removed 8K: the range was not mapped as one`,
    );
    const other = d.allocIova(SZ_4K, 0xffff_ffffn);
    d.map(other, 0x5000_0000n, SZ_4K, RW);
    d.dmaUnmap(other, SZ_4K);
    expect(metrics.get('iommu.fq_queued')).toBe(1);
    d.flushQueue();
    expect(metrics.get('iommu.fq_flushes')).toBe(1);
    d.flushQueue(); // nothing queued: no flush counted
    expect(metrics.get('iommu.fq_flushes')).toBe(1);
  });
});
