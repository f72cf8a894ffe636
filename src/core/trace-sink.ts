/**
 * Where the model reports its own DMA activity as the kernel's trace events would (include/trace/
 * events/dma.h, iommu.h): structured records, formatted as trace text by src/trace. The sink rides
 * on the one Metrics object every layer already holds, so no layer needs a new dependency.
 */
export type TraceDir = 'TO_DEVICE' | 'FROM_DEVICE' | 'BIDIRECTIONAL';

export type DmaTraceRecord =
  | {
      kind: 'map_phys';
      device: string;
      dir: TraceDir;
      dma: bigint;
      size: bigint;
      phys: bigint;
      mmio: boolean;
    }
  | { kind: 'unmap_phys'; device: string; dir: TraceDir; dma: bigint; size: bigint }
  | {
      kind: 'map_sg';
      device: string;
      dir: TraceDir;
      phys: readonly bigint[];
      dma: readonly bigint[];
      lengths: readonly bigint[];
    }
  | { kind: 'unmap_sg'; device: string; dir: TraceDir; phys: readonly bigint[] }
  | { kind: 'sync_single'; device: string; dir: TraceDir; toCpu: boolean; dma: bigint; size: bigint }
  | {
      kind: 'sync_sg';
      device: string;
      dir: TraceDir;
      toCpu: boolean;
      dma: readonly bigint[];
      lengths: readonly bigint[];
    }
  | { kind: 'iommu_map'; iova: bigint; paddr: bigint; size: bigint }
  | { kind: 'iommu_unmap'; iova: bigint; size: bigint; unmapped: bigint }
  | { kind: 'io_page_fault'; device: string; iova: bigint; driver: string };

export type DmaTraceSink = (record: DmaTraceRecord) => void;
