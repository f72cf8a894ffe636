import { COUNTER, Metrics, SZ_1G, SZ_2M, SZ_4K } from '../src/core/index.ts';
import { IOMMU_READ, IOMMU_WRITE, Iommu, IoPageTable, x86SecondStageFormat } from '../src/iommu/index.ts';
import {
  type BenchContext,
  type Benchmark,
  collectGarbage,
  type Figure,
  figure,
  measure,
  timeSeconds,
} from './harness.ts';

const RW = IOMMU_READ | IOMMU_WRITE;

/** Map then unmap `count` leaves of `pgsize` as one range; returns leaf operations per second. */
function mapUnmapRate(
  pt: IoPageTable,
  iova: bigint,
  paddr: bigint,
  pgsize: bigint,
  count: number,
  rounds: number,
): number {
  const size = pgsize * BigInt(count);
  const seconds = timeSeconds(() => {
    for (let r = 0; r < rounds; r++) {
      pt.map(iova, paddr, size, RW);
      if (pt.unmap(iova, size) !== size) throw new Error('unmap fell short');
    }
  });
  return (2 * count * rounds) / seconds;
}

export const iommuBenchmark: Benchmark = {
  name: 'iommu',
  description:
    'IO page-table map+unmap throughput (4K PTEs, 2M and 1G leaves), leaf PTE writes vs minimum, IOTLB flushes per unmap batch',
  async run(ctx) {
    const figures: Figure[] = [];
    const pt = new IoPageTable(x86SecondStageFormat(4));
    // paddr offset by one page from the next larger boundary forces the size measured (iommu_pgsize).
    const pages4k = ctx.size(32768, 64);
    figures.push(
      await measure(
        ctx,
        'map+unmap 4K PTEs',
        'PTE ops/s',
        () => mapUnmapRate(pt, SZ_1G, 0x40_0000_1000n, SZ_4K, pages4k, ctx.size(8, 1)),
        {
          target: { op: '>=', value: 5e6, label: '>= 5M PTE ops/s' },
        },
      ),
    );
    figures.push(
      await measure(ctx, 'map+unmap 2M leaves', 'mappings/s', () =>
        mapUnmapRate(pt, SZ_1G, 0x40_0020_0000n, SZ_2M, ctx.size(4096, 8), ctx.size(4, 1)),
      ),
    );
    figures.push(
      await measure(ctx, 'map+unmap 1G leaves', 'mappings/s', () =>
        mapUnmapRate(pt, SZ_1G, 0x40_0000_0000n, SZ_1G, ctx.size(4096, 4), ctx.size(4, 1)),
      ),
    );

    // Leaf PTE writes for an awkward range against the brute-force minimum (mixed case of generic_pt).
    const metrics = new Metrics();
    const counted = new IoPageTable(x86SecondStageFormat(4), { metrics });
    const start = 0x3fe400n << 12n;
    const end = 0x4c0600n << 12n;
    counted.map(start, start, end - start, RW);
    figures.push(
      figure(
        'leaf PTE writes / minimum (mixed 2M/1G range)',
        'ratio',
        [metrics.get('iommu.leaf_pte_writes') / 20],
        {
          target: { op: '<=', value: 1, label: 'equal to minimum' },
        },
      ),
    );

    // IOTLB flushes per strict unmap batch of 64 pages that a device had touched.
    const iommuMetrics = new Metrics();
    const iommu = new Iommu({ name: 'dmar0', format: x86SecondStageFormat(4), metrics: iommuMetrics });
    const domain = iommu.allocDomain('dma', { strict: true });
    iommu.attachGroup(1, domain);
    const batches = ctx.size(200, 4);
    for (let b = 0; b < batches; b++) {
      const iova = domain.allocIova(64n * SZ_4K, (1n << 32n) - 1n);
      domain.map(iova, 0x1_0000_0000n, 64n * SZ_4K, RW);
      for (let p = 0n; p < 64n; p += 8n) iommu.translate(1, iova + p * SZ_4K, 'read');
      domain.dmaUnmap(iova, 64n * SZ_4K);
    }
    figures.push(
      figure(
        'IOTLB flushes per unmap batch (strict)',
        'flushes',
        [iommuMetrics.get(COUNTER.iotlbFlushes) / batches],
        {
          target: { op: '<=', value: 1, label: '1 per batch' },
        },
      ),
    );
    return figures;
  },
};

const GIB = 2 ** 30;

/**
 * 1 TiB of physically contiguous memory mapped with 4K pages only (the domain's pgsize bitmap holds
 * 4K alone, as on an IOMMU without large pages): 2^28 leaf PTEs, whose words alone need 2 GiB. What
 * the table holds (storageBytes), what the process grew by, the time, then the unmap and what it
 * gave back. Run once: it is minutes of CPU and GiBs of memory.
 */
function hugeMap4k(ctx: BenchContext): Figure[] {
  const size = BigInt(ctx.size(2 ** 40, 2 ** 26));
  const label = ctx.smoke ? '64 MiB' : '1 TiB';
  const iova = 1n << 40n;
  const paddr = 2n << 40n;
  const metrics = new Metrics();
  collectGarbage();
  const before = process.memoryUsage();
  const pt = new IoPageTable(x86SecondStageFormat(4), { pgsizeBitmap: SZ_4K, metrics });
  const mapSeconds = timeSeconds(() => pt.map(iova, paddr, size, RW));
  const leaves = metrics.get('iommu.leaf_pte_writes');
  if (BigInt(leaves) !== size / SZ_4K) throw new Error(`${leaves} leaf PTEs written for ${label}`);
  if (pt.iovaToPhys(iova + size - 1n) !== paddr + size - 1n) throw new Error('last byte mistranslated');
  const storage = pt.storageBytes;
  const tablePages = pt.tablePages;
  collectGarbage();
  const mapped = process.memoryUsage();
  const unmapSeconds = timeSeconds(() => {
    if (pt.unmap(iova, size) !== size) throw new Error('unmap fell short');
  });
  const storageAfter = pt.storageBytes;
  collectGarbage();
  const after = process.memoryUsage();
  // Mapped again: what the first unmap gave back is reused (glibc may keep it from the OS: its
  // malloc raises the mmap threshold as blocks are freed, so RSS need not fall after the unmap).
  pt.map(iova, paddr, size, RW);
  const again = process.memoryUsage();
  pt.unmap(iova, size);
  const need = Number(size / SZ_4K) * 8;
  const grown = mapped.arrayBuffers - before.arrayBuffers;
  return [
    figure(`${label} of 4K PTEs: table storage`, 'GiB', [storage / GIB], {
      ...(ctx.smoke ? {} : { target: { op: '<=', value: 2.3, label: '<= 2.3 GiB' } as const }),
      note: `${tablePages} table pages; the PTE words alone are ${need / GIB} GiB`,
    }),
    figure(`${label} of 4K PTEs: arrayBuffers growth`, 'GiB', [grown / GIB], {
      note: `RSS grew ${((mapped.rss - before.rss) / GIB).toFixed(3)} GiB`,
    }),
    figure(`${label} of 4K PTEs: map time`, 's', [mapSeconds], {
      note: `unmap ${unmapSeconds.toFixed(2)} s`,
    }),
    figure(
      `${label} of 4K PTEs: arrayBuffers kept after unmap / growth`,
      'ratio',
      [(after.arrayBuffers - before.arrayBuffers) / grown],
      {
        ...(ctx.smoke ? {} : { target: { op: '<=', value: 0.01, label: '<= 1% kept' } as const }),
        note: `storage after unmap ${(storageAfter / 2 ** 20).toFixed(2)} MiB; RSS ${((after.rss - before.rss) / GIB).toFixed(3)} GiB above the start`,
      },
    ),
    figure(`${label} of 4K PTEs mapped again: RSS growth`, 'GiB', [(again.rss - after.rss) / GIB], {
      note: `against ${((mapped.rss - before.rss) / GIB).toFixed(3)} GiB at the first map: the memory given back is reused`,
    }),
  ];
}

export const iommuHugeMapBenchmark: Benchmark = {
  name: 'iommu-1tib',
  description:
    '1 TiB mapped with 4K PTEs only: table storage, memory growth and time, and memory given back by the unmap',
  run(ctx) {
    return hugeMap4k(ctx);
  },
};
