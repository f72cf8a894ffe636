/**
 * DMA map+unmap of one big PhyrList (a 4K..2M folio mix from the folio allocator) through the physr
 * IOMMU path (one IOVA, two-step IOVA API, one bulk page-table call) and through the legacy
 * dma_map_sg path (one iommu_map per entry) on the same machine, timed interleaved in one process at
 * 1, 4 and 16 GiB (target: map_sg time / physr time >= 1.5, median), with the counted costs of both
 * at 1 GiB: PTE writes, IOTLB flushes, IOVA allocations, metadata bytes.
 * The same list is also mapped with the `aligned` IOVA layout (each range congruent to its phys
 * modulo its largest usable page, gaps between): PTE writes, time, DMA segments and IOVA space
 * against the default `packed` layout, in the same run.
 */
import {
  COUNTER,
  metricsDelta,
  type PhyrList,
  PhyrListBuilder,
  phyrListToSgTable,
  SZ_4K,
} from '../src/core/index.ts';
import { builtinMachine, type DmaDevice, type DmaIovaState, type DmaMapping } from '../src/dma/index.ts';
import { IOMMU_READ, IOMMU_WRITE, IoPageTable, x86SecondStageFormat } from '../src/iommu/index.ts';
import { folioBytes, folioPhys } from '../src/platform/index.ts';
import {
  type Benchmark,
  compareInterleaved,
  type Figure,
  figure,
  measure,
  type Target,
  timeSeconds,
} from './harness.ts';

const NIC = '0000:04:00.0';
/** Folio orders of the mix (4K, 16K, 64K, 2M) and how often each is drawn. */
const ORDERS = [0, 0, 0, 2, 4, 9, 9] as const;

/** IOVA bytes a mapping holds (its IOVA states' allocations). */
function iovaSpaceOf(mapping: DmaMapping): bigint {
  const states = new Set<DmaIovaState>();
  for (const p of mapping.pieces) if (p.state !== undefined) states.add(p.state);
  let bytes = 0n;
  for (const s of states) bytes += s.allocSize;
  return bytes;
}

function folioMix(dev: DmaDevice, bytes: bigint): PhyrList {
  const { folios, random } = dev.machine.platform;
  const b = new PhyrListBuilder({ merge: true });
  let total = 0n;
  while (total < bytes) {
    const order = ORDERS[random.nextUint32() % ORDERS.length]!;
    const folio = folios.allocFolio(order, { node: 1 });
    b.append(folioPhys(folio), folioBytes(folio));
    total += folioBytes(folio);
  }
  return b.build();
}

/** The bar: the physr IOVA path at least 1.5x faster than map_sg (median of rounds). */
const RATIO_TARGET: Target = { op: '>=', value: 1.5, label: 'physr >= 1.5x faster than map_sg' };

interface Workload {
  readonly dev: DmaDevice;
  readonly list: PhyrList;
  readonly physrOnce: () => void;
  readonly sgOnce: () => void;
}

function workload(bytes: bigint, fragment: boolean): Workload {
  const machine = builtinMachine('two-socket-server', { platform: { seed: 5 } });
  const dev = machine.device(NIC, { maxSegmentSize: 0xffff_f000n });
  // Scatter the free lists so folios are not handed out in address order.
  if (fragment) machine.platform.folios.fragment(11, { fraction: 0.3 });
  const list = folioMix(dev, bytes);
  const sgt = phyrListToSgTable(list);
  return {
    dev,
    list,
    physrOnce: () => dev.unmap(dev.map(list, 'BIDIRECTIONAL')),
    sgOnce: () => {
      dev.mapSg(sgt, 'BIDIRECTIONAL');
      dev.unmapSg(sgt, 'BIDIRECTIONAL');
    },
  };
}

/** map_sg vs physr at one size, interleaved: both times and the ratio with its spread. */
async function ratioAt(ctx: Parameters<Benchmark['run']>[0], label: string, w: Workload): Promise<Figure[]> {
  const c = await compareInterleaved(
    ctx,
    {
      a: `legacy map_sg+unmap_sg ${label}`,
      b: `physr map+unmap (one IOVA) ${label}`,
      ratio: `map_sg time / physr time ${label}`,
    },
    w.sgOnce,
    w.physrOnce,
    RATIO_TARGET,
  );
  return [c.b, c.a, { ...c.ratio, note: `${c.ratio.note}; ${w.list.count} ranges` }];
}

/** One map() and one unmap() per 4K page of a strict DMA domain's table: what a per-page driver does. */
function perPageRate(pages: number): number {
  const pt = new IoPageTable(x86SecondStageFormat(4));
  const base = 1n << 32n;
  const seconds = timeSeconds(() => {
    for (let p = 0; p < pages; p++) {
      const iova = base + BigInt(p) * SZ_4K;
      pt.map(iova, 0x40_0000_0000n + BigInt(p) * SZ_4K, SZ_4K, IOMMU_READ | IOMMU_WRITE);
      pt.unmap(iova, SZ_4K);
    }
  });
  return pages / seconds;
}

export const dmaBenchmark: Benchmark = {
  name: 'dma',
  description:
    'map+unmap of a 1/4/16 GiB 4K..2M folio-mix PhyrList: physr one-IOVA bulk path vs legacy dma_map_sg, interleaved (ratio target 1.5x); per-page map+unmap; costs',
  async run(ctx) {
    const figures: Figure[] = [];
    const sizes: readonly [string, bigint][] = ctx.smoke
      ? [['@4 MiB', 4n << 20n]]
      : [
          ['@1 GiB', 1n << 30n],
          ['@4 GiB', 4n << 30n],
          ['@16 GiB', 16n << 30n],
        ];
    let first: Workload | undefined;
    for (const [label, bytes] of sizes) {
      const w = workload(bytes, !ctx.smoke);
      figures.push(...(await ratioAt(ctx, label, w)));
      first ??= w;
    }
    const pages = ctx.size(65536, 64);
    figures.push(
      await measure(ctx, 'per-page 4K map+unmap (IoPageTable)', 'pairs/s', () => perPageRate(pages), {
        target: { op: '>=', value: 2e5, label: '>= 200k map+unmap pairs/s' },
      }),
    );
    figures.push(...costFigures(first!));
    return figures;
  },
};

/** The counted costs of both designs at the first size, and the aligned layout against packed. */
function costFigures(w: Workload): Figure[] {
  const { dev, list } = w;
  const metrics = dev.machine.metrics;
  const sgt = phyrListToSgTable(list);
  const costs = (fn: () => void): Record<string, number> => {
    const before = metrics.snapshot();
    fn();
    return { ...metricsDelta(before, metrics.snapshot()) };
  };
  const alignedOnce = (): void => dev.unmap(dev.map(list, 'BIDIRECTIONAL', { layout: 'aligned' }));
  const physrCost = costs(w.physrOnce);
  const sgCost = costs(w.sgOnce);
  const alignedCost = costs(alignedOnce);
  const physrMeta = list.metadataBytes + (physrCost[COUNTER.physrMetadataBytes] ?? 0);
  const sgMeta = sgCost[COUNTER.sgMetadataBytes] ?? 0;
  const get = (c: Record<string, number>, k: string): number => c[k] ?? 0;
  const probe = dev.map(list, 'TO_DEVICE');
  const physrSegments = probe.dma.count;
  const packedIova = iovaSpaceOf(probe);
  dev.unmap(probe);
  const alignedProbe = dev.map(list, 'TO_DEVICE', { layout: 'aligned' });
  const alignedSegments = alignedProbe.dma.count;
  const alignedIova = iovaSpaceOf(alignedProbe);
  dev.unmap(alignedProbe);
  const ratio = (a: number, b: number): string => `${(a / Math.max(1, b)).toFixed(3)}x`;
  const alignedPte = get(alignedCost, COUNTER.pteWrites);
  const packedPte = get(physrCost, COUNTER.pteWrites);
  const sgSegments = dev.mapSg(sgt, 'TO_DEVICE');
  dev.unmapSg(sgt, 'TO_DEVICE');
  return [
    figure('list ranges / sg entries', 'count', [list.count], { note: `sg slots ${sgt.slotCount}` }),
    figure('physr metadata (PhyrList + DmaRangeList)', 'bytes', [physrMeta], {
      note: `vs sg ${sgMeta} B: ${(physrMeta / sgMeta).toFixed(3)}x`,
    }),
    figure('sg metadata (sg_table + scatterlists)', 'bytes', [sgMeta]),
    figure('PTE writes physr / sg', 'writes', [packedPte], {
      note: `sg ${get(sgCost, COUNTER.pteWrites)} (${(packedPte / Math.max(1, get(sgCost, COUNTER.pteWrites))).toFixed(3)}x)`,
    }),
    figure('IOTLB flushes physr / sg', 'flushes', [get(physrCost, COUNTER.iotlbFlushes)], {
      note: `sg ${get(sgCost, COUNTER.iotlbFlushes)}`,
    }),
    figure('IOVA allocations physr / sg', 'allocs', [get(physrCost, COUNTER.iovaAllocations)], {
      note: `sg ${get(sgCost, COUNTER.iovaAllocations)}`,
    }),
    figure('DMA segments physr / sg', 'segments', [physrSegments], { note: `sg nents ${sgSegments}` }),
    figure('PTE writes aligned layout', 'writes', [alignedPte], {
      note: `packed ${packedPte} (${ratio(alignedPte, packedPte)})`,
    }),
    figure('IOTLB flushes aligned layout', 'flushes', [get(alignedCost, COUNTER.iotlbFlushes)], {
      note: `packed ${get(physrCost, COUNTER.iotlbFlushes)} (one dma_iova_unlink per gap-separated run)`,
    }),
    figure('DMA segments aligned layout', 'segments', [alignedSegments], {
      note: `packed ${physrSegments} (${ratio(alignedSegments, physrSegments)}): more SGL/PRP descriptors`,
    }),
    figure('IOVA space aligned layout', 'MiB', [Number(alignedIova >> 10n) / 1024], {
      note: `packed ${(Number(packedIova >> 10n) / 1024).toFixed(1)} MiB (${ratio(Number(alignedIova), Number(packedIova))})`,
    }),
  ];
}
