/**
 * What a trace shows going wrong, in the classes of the kernel's DMA-API debug (kernel/dma/debug.c:
 * check_unmap, check_sync, dma_debug_device_change leak reports) plus what only a trace with IOMMU
 * events shows (a device fault after the unmap). Each finding quotes the trace lines it rests on.
 */
import type { TraceOrigin } from './events.ts';

export type FindingClass =
  | 'unmap-never-mapped'
  | 'double-unmap'
  | 'size-mismatch'
  | 'dir-mismatch'
  | 'wrong-function'
  | 'sync-not-mapped'
  | 'leak'
  | 'overlap'
  | 'use-after-unmap'
  | 'fault-never-mapped'
  | 'fault-on-live-mapping'
  | 'iommu-map-missing';

/** `error`: misuse; `unknown`: the trace cannot tell (e.g. the kernel does not emit the event). */
export type FindingSeverity = 'error' | 'unknown';

export interface Finding {
  readonly class: FindingClass;
  readonly severity: FindingSeverity;
  readonly device: string | undefined;
  /** DMA address or IOVA the finding is about. */
  readonly address: bigint | undefined;
  readonly size: bigint | undefined;
  readonly message: string;
  /** The trace lines it rests on, in trace order. */
  readonly lines: readonly TraceOrigin[];
  /** use-after-unmap: when the IOVA/DMA address was unmapped, and how long before the fault. */
  readonly unmappedAt?: string;
  readonly sinceUnmapUs?: number;
}

/** What each class means, for reports. */
export const FINDING_CLASSES: Readonly<Record<FindingClass, string>> = {
  'unmap-never-mapped': 'unmap or free of an address the device never mapped',
  'double-unmap': 'unmap or free of an address already unmapped',
  'size-mismatch': 'unmap with a different size than the map',
  'dir-mismatch': 'unmap with a different direction than the map',
  'wrong-function': 'unmapped with the wrong function (e.g. dma_unmap_phys of a dma_alloc buffer)',
  'sync-not-mapped': 'sync of memory that is not mapped',
  leak: 'mapping still live at the end of the trace',
  overlap: 'a map overlapping a live mapping of the same device',
  'use-after-unmap': 'a device fault on an IOVA after its unmap',
  'fault-never-mapped': 'a device fault on an IOVA the trace never mapped',
  'fault-on-live-mapping': 'a device fault on an IOVA that is mapped',
  'iommu-map-missing': 'no iommu:map for an IOVA the DMA API or iommu:unmap used',
};
