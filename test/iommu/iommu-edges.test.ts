/**
 * Edges of the domain and IOMMU APIs the mutation run found untested (issue 13): the bulk map's
 * flush, trace and refusal, iommu_unmap without a trace sink, the DMA path's default rcache flush,
 * a permission fault on a miss, freeing a domain without a table, and which PTE encoding an ARM
 * stage selects.
 */
import { describe, expect, test } from 'vitest';
import { COUNTER, type DmaTraceRecord, Metrics, PhyrList, SZ_2M, SZ_4K } from '../../src/core/index.ts';
import {
  armLpaeFormat,
  armLpaeStage1Pte,
  armLpaeStage2Pte,
  IOMMU_READ,
  IOMMU_WRITE,
  Iommu,
  x86SecondStageFormat,
} from '../../src/iommu/index.ts';

const RW = IOMMU_READ | IOMMU_WRITE;

function unit(sink?: DmaTraceRecord[]) {
  const metrics = new Metrics();
  if (sink !== undefined) metrics.traceSink = (r) => sink.push(r);
  return { metrics, iommu: new Iommu({ name: 'dmar3', format: x86SecondStageFormat(4), metrics }) };
}

describe('domain edges', () => {
  test('mapList without a trace sink; one replacing a table page flushes once; refused without a table', () => {
    const { metrics, iommu } = unit();
    const d = iommu.allocDomain('paging');
    d.map(SZ_2M, 0x4000_0000n, SZ_4K, RW);
    d.unmap(SZ_2M, SZ_4K); // the level-0 table page stays, empty
    const flushes = metrics.get(COUNTER.iotlbFlushes);
    expect(d.mapList(SZ_2M, PhyrList.fromRanges([[0x4000_0000n, SZ_2M]]), 0, 1, RW)).toBe(SZ_2M);
    expect(metrics.get(COUNTER.iotlbFlushes)).toBe(flushes + 1);
    expect(d.pageTable!.lookup(SZ_2M)?.pageSize).toBe(SZ_2M);
    const identity = iommu.allocDomain('identity');
    expect(() => identity.mapList(0n, PhyrList.fromRanges([[0n, SZ_4K]]), 0, 1, RW)).toThrow(
      'EINVAL: cannot map in a identity domain (no page table)',
    );
  });

  test('mapList traces a first range that starts mid-page widened down to its page', () => {
    const records: DmaTraceRecord[] = [];
    const d = unit(records).iommu.allocDomain('paging');
    // 0x800 into its page, 4K long: it touches two pages.
    d.mapList(0x10_0800n, PhyrList.fromRanges([[0x4000_0800n, SZ_4K]]), 0, 1, RW);
    expect(records).toEqual([{ kind: 'iommu_map', iova: 0x10_0000n, paddr: 0x4000_0000n, size: 2n * SZ_4K }]);
  });

  test('iommu_unmap works without a trace sink', () => {
    const d = unit().iommu.allocDomain('paging');
    d.map(0x1000n, 0x5000n, SZ_4K, RW);
    expect(d.unmap(0x1000n, SZ_4K)).toBe(SZ_4K);
  });

  test('a DMA allocation flushes the rcaches and retries by default (iommu_dma_alloc_iova)', () => {
    const d = unit().iommu.allocDomain('dma', { iova: { startPfn: 1, lastPfn: 11 } });
    const limit = 0xffff_ffffn;
    const pairs = [1, 2, 3, 4, 5].map(() => d.allocIova(2n * SZ_4K, limit));
    expect(pairs).toEqual([0xa000n, 0x8000n, 0x6000n, 0x4000n, 0x2000n]);
    d.freeIova(0xa000n, 2n * SZ_4K);
    d.freeIova(0x8000n, 2n * SZ_4K);
    expect(d.allocIova(4n * SZ_4K, limit)).toBe(0x8000n);
    expect(() => d.allocIova(4n * SZ_4K, limit, false)).toThrow(/^ENOMEM/);
  });
});

describe('IOMMU edges', () => {
  test('a permission fault on a miss is logged and traced; the leaf is cached all the same', () => {
    const records: DmaTraceRecord[] = [];
    const { iommu } = unit(records);
    const d = iommu.allocDomain('paging');
    iommu.attachGroup(2, d);
    d.map(0x1000n, 0x5000n, SZ_4K, IOMMU_READ);
    expect(() => iommu.translate(2, 0x1008n, 'write')).toThrow(
      'EFAULT: IOMMU dmar3: group2 write at iova 0x1008 faulted (permission, paging domain 1)',
    );
    expect(iommu.faults.map((f) => f.reason)).toEqual(['permission']);
    expect(records.at(-1)).toEqual({
      kind: 'io_page_fault',
      device: 'group2',
      iova: 0x1008n,
      driver: 'dmar3',
    });
    expect(iommu.iotlb.entriesOf(d.id)).toHaveLength(1);
  });

  test('a domain without a table (identity, blocked) can be freed', () => {
    const { iommu } = unit();
    const identity = iommu.allocDomain('identity');
    const blocked = iommu.allocDomain('blocked');
    iommu.freeDomain(identity);
    iommu.freeDomain(blocked);
    expect(() => iommu.attachGroup(1, identity)).toThrow(/^EINVAL: domain 1 does not belong/);
  });

  test('ARM LPAE stage 1 and stage 2 formats carry their own PTE encodings', () => {
    expect(armLpaeFormat({}).pte).toBe(armLpaeStage1Pte);
    expect(armLpaeFormat({ stage: 1 }).pte).toBe(armLpaeStage1Pte);
    expect(armLpaeFormat({ stage: 2 }).pte).toBe(armLpaeStage2Pte);
  });
});
