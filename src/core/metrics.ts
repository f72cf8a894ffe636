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

/**
 * One counter's cell. Hot paths take it once (`Metrics.counter`) and add to `value` directly instead
 * of looking the name up per add; a cell counts in snapshots once it was touched.
 */
export interface Counter {
  value: number;
  touched: boolean;
}

export class Metrics {
  private readonly counters = new Map<string, Counter>();
  /** Receives the model's DMA activity as trace records when set (`physr run --trace-out`). */
  traceSink: DmaTraceSink | undefined = undefined;

  /** The cell of a counter (created untouched), for hot paths that add many times. */
  counter(name: CounterName): Counter {
    let cell = this.counters.get(name);
    if (cell === undefined) {
      cell = { value: 0, touched: false };
      this.counters.set(name, cell);
    }
    return cell;
  }

  add(name: CounterName, by = 1): void {
    const cell = this.counter(name);
    cell.value += by;
    cell.touched = true;
  }

  get(name: CounterName): number {
    return this.counters.get(name)?.value ?? 0;
  }

  /** A copy of every counter touched so far, sorted by name. */
  snapshot(): MetricsSnapshot {
    const out: Record<string, number> = {};
    for (const name of [...this.counters.keys()].sort()) {
      const cell = this.counters.get(name)!;
      if (cell.touched) out[name] = cell.value;
    }
    return out;
  }

  /** Zeroes every counter (cells handed out stay valid). */
  reset(): void {
    for (const cell of this.counters.values()) {
      cell.value = 0;
      cell.touched = false;
    }
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
