/**
 * DMA map+unmap of one big PhyrList (a 4K..2M folio mix from the folio allocator) through the physr
 * IOMMU path (one IOVA, two-step IOVA API) and through the legacy dma_map_sg path on the same machine,
 * with the counted costs of both: time, PTE writes, IOTLB flushes, IOVA allocations, metadata bytes.
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
} from '../src/core/index.ts';
import { builtinMachine, type DmaDevice, type DmaIovaState, type DmaMapping } from '../src/dma/index.ts';
import { folioBytes, folioPhys } from '../src/platform/index.ts';
import { type Benchmark, type Figure, figure, measure, timeSeconds } from './harness.ts';

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

export const dmaBenchmark: Benchmark = {
  name: 'dma',
  description:
    'map+unmap of a 1 GiB 4K..2M folio-mix PhyrList: physr one-IOVA path vs legacy dma_map_sg (time, PTE writes, IOTLB flushes, metadata)',
  async run(ctx) {
    const machine = builtinMachine('two-socket-server', { platform: { seed: 5 } });
    const dev = machine.device(NIC, { maxSegmentSize: 0xffff_f000n });
    // Scatter the free lists so folios are not handed out in address order.
    if (!ctx.smoke) machine.platform.folios.fragment(11, { fraction: 0.3 });
    const bytes = BigInt(ctx.size(1024, 4)) << 20n;
    const list = folioMix(dev, bytes);
    const sgt = phyrListToSgTable(list);
    const metrics = machine.metrics;

    const costs = (fn: () => void): Record<string, number> => {
      const before = metrics.snapshot();
      fn();
      return { ...metricsDelta(before, metrics.snapshot()) };
    };
    const physrOnce = (): void => dev.unmap(dev.map(list, 'BIDIRECTIONAL'));
    const sgOnce = (): void => {
      dev.mapSg(sgt, 'BIDIRECTIONAL');
      dev.unmapSg(sgt, 'BIDIRECTIONAL');
    };
    const alignedOnce = (): void => dev.unmap(dev.map(list, 'BIDIRECTIONAL', { layout: 'aligned' }));
    const physrCost = costs(physrOnce);
    const sgCost = costs(sgOnce);
    const alignedCost = costs(alignedOnce);

    const physrTime = await measure(
      ctx,
      'physr map+unmap (one IOVA)',
      'ms',
      () => timeSeconds(physrOnce) * 1e3,
    );
    const sgTime = await measure(ctx, 'legacy map_sg+unmap_sg', 'ms', () => timeSeconds(sgOnce) * 1e3);
    const alignedTime = await measure(
      ctx,
      'physr map+unmap (one IOVA, aligned layout)',
      'ms',
      () => timeSeconds(alignedOnce) * 1e3,
    );
    const timeRatio = physrTime.median / sgTime.median;
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
    const figures: Figure[] = [
      physrTime,
      { ...sgTime, note: `physr/sg time ${timeRatio.toFixed(2)}x` },
      figure('list ranges / sg entries', 'count', [list.count], { note: `sg slots ${sgt.slotCount}` }),
      figure('physr metadata (PhyrList + DmaRangeList)', 'bytes', [physrMeta], {
        note: `vs sg ${sgMeta} B: ${(physrMeta / sgMeta).toFixed(3)}x`,
      }),
      figure('sg metadata (sg_table + scatterlists)', 'bytes', [sgMeta]),
      figure('PTE writes physr / sg', 'writes', [get(physrCost, COUNTER.pteWrites)], {
        note: `sg ${get(sgCost, COUNTER.pteWrites)} (${(get(physrCost, COUNTER.pteWrites) / Math.max(1, get(sgCost, COUNTER.pteWrites))).toFixed(3)}x)`,
      }),
      figure('IOTLB flushes physr / sg', 'flushes', [get(physrCost, COUNTER.iotlbFlushes)], {
        note: `sg ${get(sgCost, COUNTER.iotlbFlushes)}`,
      }),
      figure('IOVA allocations physr / sg', 'allocs', [get(physrCost, COUNTER.iovaAllocations)], {
        note: `sg ${get(sgCost, COUNTER.iovaAllocations)}`,
      }),
      figure('DMA segments physr / sg', 'segments', [physrSegments], { note: `sg nents ${sgSegments}` }),
      {
        ...alignedTime,
        note: `aligned/packed time ${(alignedTime.median / physrTime.median).toFixed(2)}x`,
      },
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
    return figures;
  },
};
