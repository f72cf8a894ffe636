/**
 * The kernel's DMA trace events as data. Each kind is one event class of include/trace/events/dma.h,
 * iommu.h or swiotlb.h (Linux 6.12 to 7.1); the event name the line carried is kept in `event`, since
 * 6.12's `dma_map_page`/`dma_map_resource` and 6.18's `dma_map_phys` share one class.
 */

/** enum dma_data_direction as __print_symbolic prints it (decode_dma_data_direction). */
export type TraceDirection = 'BIDIRECTIONAL' | 'TO_DEVICE' | 'FROM_DEVICE' | 'NONE';

/** Where an event came from: line number, timestamp, the line itself. */
export interface TraceOrigin {
  readonly line: number;
  /** Timestamp in microseconds (tracefs prints seconds with 6 decimals). */
  readonly timeUs: number;
  /** The timestamp as printed, e.g. `327.747766`. */
  readonly time: string;
  readonly text: string;
}

interface Base {
  readonly event: string;
  readonly at: TraceOrigin;
}

/** dma_map_phys (6.18+), dma_map_page, dma_map_resource (to 6.17; resource also later). */
export interface MapEvent extends Base {
  readonly kind: 'map';
  readonly device: string;
  readonly dir: TraceDirection;
  readonly dma: bigint;
  readonly size: bigint;
  readonly phys: bigint;
  readonly attrs: readonly string[];
}

/** dma_unmap_phys, dma_unmap_page, dma_unmap_resource. */
export interface UnmapEvent extends Base {
  readonly kind: 'unmap';
  readonly device: string;
  readonly dir: TraceDirection;
  readonly dma: bigint;
  readonly size: bigint;
}

/**
 * dma_map_sg. The current print form carries `nents=shown/full ents=shown/full` and ` [TRUNCATED]`
 * when a list has more than 128 entries (DMA_TRACE_MAX_ENTRIES); the older form has no counts
 * (`counted` false; then the arrays are the whole list).
 */
export interface MapSgEvent extends Base {
  readonly kind: 'map_sg';
  readonly device: string;
  readonly dir: TraceDirection;
  readonly counted: boolean;
  /** Entries the caller passed (full, not the printed part). */
  readonly nents: number;
  /** DMA segments the mapping produced (full). */
  readonly ents: number;
  readonly truncated: boolean;
  readonly dmaAddrs: readonly bigint[];
  readonly sizes: readonly bigint[];
  readonly physAddrs: readonly bigint[];
  readonly attrs: readonly string[];
}

export interface MapSgErrEvent extends Base {
  readonly kind: 'map_sg_err';
  readonly device: string;
  readonly dir: TraceDirection;
  readonly physAddrs: readonly bigint[];
  readonly err: number;
}

/** dma_unmap_sg: only the CPU (phys) addresses of the entries, no sizes. */
export interface UnmapSgEvent extends Base {
  readonly kind: 'unmap_sg';
  readonly device: string;
  readonly dir: TraceDirection;
  readonly physAddrs: readonly bigint[];
}

/** dma_alloc, dma_alloc_pages, dma_alloc_sgt, dma_alloc_sgt_err (`dir=` printed or not). */
export interface AllocEvent extends Base {
  readonly kind: 'alloc';
  readonly device: string;
  readonly dir: TraceDirection | undefined;
  readonly dma: bigint;
  readonly size: bigint;
  /** dma_alloc_sgt: the entries' phys addresses. */
  readonly physAddrs: readonly bigint[] | undefined;
  readonly failed: boolean;
}

/** dma_free, dma_free_pages, dma_free_sgt. */
export interface FreeEvent extends Base {
  readonly kind: 'free';
  readonly device: string;
  readonly dir: TraceDirection | undefined;
  readonly dma: bigint;
  readonly size: bigint;
}

/** dma_sync_single_for_cpu / _for_device. */
export interface SyncSingleEvent extends Base {
  readonly kind: 'sync_single';
  readonly device: string;
  readonly dir: TraceDirection;
  readonly toCpu: boolean;
  readonly dma: bigint;
  readonly size: bigint;
}

/** dma_sync_sg_for_cpu / _for_device. */
export interface SyncSgEvent extends Base {
  readonly kind: 'sync_sg';
  readonly device: string;
  readonly dir: TraceDirection;
  readonly toCpu: boolean;
  readonly dmaAddrs: readonly bigint[];
  readonly sizes: readonly bigint[];
}

export interface SwiotlbBouncedEvent extends Base {
  readonly kind: 'swiotlb_bounced';
  readonly device: string;
  readonly dmaMask: bigint;
  readonly devAddr: bigint;
  readonly size: bigint;
  readonly force: boolean;
}

/** iommu:map — an IOMMU domain mapped [iova, iova+size) to paddr. No device is printed. */
export interface IommuMapEvent extends Base {
  readonly kind: 'iommu_map';
  readonly iova: bigint;
  readonly size: bigint;
  readonly paddr: bigint;
}

export interface IommuUnmapEvent extends Base {
  readonly kind: 'iommu_unmap';
  readonly iova: bigint;
  readonly size: bigint;
  readonly unmappedSize: bigint;
}

export interface IoPageFaultEvent extends Base {
  readonly kind: 'io_page_fault';
  readonly driver: string;
  readonly device: string;
  readonly iova: bigint;
  readonly flags: number;
}

/** attach_device_to_domain, add_device_to_group, remove_device_from_group. */
export interface IommuDeviceEvent extends Base {
  readonly kind: 'iommu_device';
  readonly device: string;
  readonly groupId: number | undefined;
}

export type TraceEvent =
  | MapEvent
  | UnmapEvent
  | MapSgEvent
  | MapSgErrEvent
  | UnmapSgEvent
  | AllocEvent
  | FreeEvent
  | SyncSingleEvent
  | SyncSgEvent
  | SwiotlbBouncedEvent
  | IommuMapEvent
  | IommuUnmapEvent
  | IoPageFaultEvent
  | IommuDeviceEvent;
