/**
 * One metrics object per simulation: every layer counts into it, so reports and benchmarks read the
 * same numbers. Counters are plain numbers (all stay far below 2^53).
 */

import type { DmaTraceSink } from './trace-sink.ts';

/** Standard counter names; layers may add their own under their piece's prefix. */
export const COUNTER = {
  /** Bytes of range-list metadata built (PhyrList, DmaRangeList). */
  physrMetadataBytes: 'core.physr_metadata_bytes',
  /** Bytes of scatterlist metadata built (struct scatterlist arrays incl. chain entries). */
  sgMetadataBytes: 'core.sg_metadata_bytes',
  /** Entries of sg tables handed to dma_map_sg (orig_nents: the CPU-side list). */
  sgEntries: 'core.sg_entries',
  /** Physical ranges of PhyrLists built (the CPU-side list). */
  physrRanges: 'core.physr_ranges',
  /**
   * Bytes of scatterlist-side scratch the kernel holds only while it builds a table (the page
   * pointer array), at its real peak: counted in "metadata at peak", not in the retained figure.
   */
  sgScratchBytes: 'core.sg_scratch_bytes',
  /** DMA segments dma_map_sg handed the device (its return value, after IOMMU merging). */
  sgMappedNents: 'dma.sg_mapped_nents',
  /** DMA ranges a physr map handed the device. */
  physrDmaRanges: 'dma.physr_dma_ranges',
  pteWrites: 'iommu.pte_writes',
  pteClears: 'iommu.pte_clears',
  tablePagesAllocated: 'iommu.table_pages_allocated',
  tablePagesFreed: 'iommu.table_pages_freed',
  iotlbFlushes: 'iommu.iotlb_flushes',
  iotlbHits: 'iommu.iotlb_hits',
  iotlbMisses: 'iommu.iotlb_misses',
  iotlbStaleHits: 'iommu.iotlb_stale_hits',
  iovaAllocations: 'iommu.iova_allocations',
  iovaFrees: 'iommu.iova_frees',
  iommuFaults: 'iommu.faults',
  bounceBytes: 'dma.bounce_bytes',
  dmaMaps: 'dma.maps',
  dmaUnmaps: 'dma.unmaps',
  dmaBytesRead: 'devices.dma_bytes_read',
  dmaBytesWritten: 'devices.dma_bytes_written',
} as const;

export type CounterName = (typeof COUNTER)[keyof typeof COUNTER] | `${string}.${string}`;

export type MetricsSnapshot = Readonly<Record<string, number>>;

export class Metrics {
  private readonly counters = new Map<string, number>();
  /** Receives the model's DMA activity as trace records when set (`physr run --trace-out`). */
  traceSink: DmaTraceSink | undefined = undefined;

  add(name: CounterName, by = 1): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) + by);
  }

  get(name: CounterName): number {
    return this.counters.get(name) ?? 0;
  }

  /** A copy of every counter, sorted by name. */
  snapshot(): MetricsSnapshot {
    const out: Record<string, number> = {};
    for (const name of [...this.counters.keys()].sort()) out[name] = this.counters.get(name) ?? 0;
    return out;
  }

  reset(): void {
    this.counters.clear();
  }
}

/** What changed between two snapshots (counters that moved only). */
export function metricsDelta(before: MetricsSnapshot, after: MetricsSnapshot): MetricsSnapshot {
  const out: Record<string, number> = {};
  for (const [name, value] of Object.entries(after)) {
    const moved = value - (before[name] ?? 0);
    if (moved !== 0) out[name] = moved;
  }
  return out;
}
