/**
 * Plain data of the DMA API: directions, attributes, and the mapping handle a map call returns.
 * Names follow include/linux/dma-mapping.h and include/linux/dma-direction.h.
 */
import type { DmaRangeList, PhyrList } from '../core/index.ts';
import type { P2pDecision } from '../platform/index.ts';

/** enum dma_data_direction (DMA_NONE is not a valid mapping direction). */
export type DmaDirection = 'TO_DEVICE' | 'FROM_DEVICE' | 'BIDIRECTIONAL';

export const DMA_DIRECTIONS: readonly DmaDirection[] = ['TO_DEVICE', 'FROM_DEVICE', 'BIDIRECTIONAL'];

/** The DMA_ATTR_* bits physr models. */
export interface DmaAttrs {
  /** DMA_ATTR_SKIP_CPU_SYNC: no cache maintenance and no bounce copy at map/unmap. */
  readonly skipCpuSync?: boolean;
  /** DMA_ATTR_MMIO: the address is MMIO: no struct page, no cache maintenance, never bounced. */
  readonly mmio?: boolean;
  /**
   * DMA_ATTR_REQUIRE_COHERENT (7.1): the caller needs a coherent mapping, so it may not be bounced
   * and a non-coherent device refuses it.
   */
  readonly requireCoherent?: boolean;
  /**
   * Not a kernel attr: how dmaMapPhyrList lays a run out in its one IOVA (see iova-layout.ts).
   * Default 'packed'; 'aligned' trades more DMA segments for large IOMMU leaves.
   */
  readonly layout?: IovaLayout;
}

/** The IOVA layout of a physr map: ranges back to back, or each page-size congruent (with gaps). */
export type IovaLayout = 'packed' | 'aligned';

/**
 * How one stretch of a mapped list reached the device:
 *  - `iova`: linked into the one contiguous IOVA of the two-step IOVA API;
 *  - `iommu`: its own IOVA, as dma_map_phys/iommu_dma_map_phys does (the per-range fallback);
 *  - `direct`: phys → DMA address, no IOMMU;
 *  - `bounce`: copied through swiotlb (direct) — `iova`/`iommu` segments may bounce too (see `bounced`);
 *  - `bus-address`: P2P through a switch, the PCI bus address used as is;
 *  - `through-host-bridge`: P2P mapped like MMIO through the IOMMU (or direct without one).
 */
export type SegmentKind = 'iova' | 'iommu' | 'direct' | 'bounce' | 'bus-address' | 'through-host-bridge';

/** Which mapping strategy a map call took overall. */
export type MapPath = 'iova' | 'per-range' | 'bus-address' | 'mixed';

export interface DmaSegment {
  readonly kind: SegmentKind;
  /** The source ranges this segment covers, in list order. */
  readonly phys: PhyrList;
  /** What the device is given for them. */
  readonly dma: DmaRangeList;
  /** Bytes of this segment that went through swiotlb. */
  readonly bouncedBytes: bigint;
  /** The P2P decision for P2P segments. */
  readonly p2p?: P2pDecision;
}

/** dma-debug's entry types (kernel/dma/debug.c dma_debug_* plus the IOVA API). */
export type DmaMappingType = 'single' | 'phys' | 'sg' | 'iova';

/** What a device's DMA property set looks like (see DmaDevice). */
export interface DmaDeviceProps {
  /** dma_set_mask: bits (1..64) or the mask itself. Default 64 bits. */
  readonly dmaMask?: number | bigint;
  /** dev_is_dma_coherent. Default true (x86 and most server PCIe). */
  readonly coherent?: boolean;
  /** dma_set_max_seg_size. PCI core default 64 KiB. */
  readonly maxSegmentSize?: bigint;
  /** dma_set_seg_boundary. PCI core default 0xffffffff. */
  readonly segmentBoundaryMask?: bigint;
  /** dma_set_min_align_mask (e.g. NVMe: 4 KiB - 1). Default 0. */
  readonly minAlignMask?: bigint;
  /** pci_dev->untrusted (external-facing port): bounce what would expose other data. Default false. */
  readonly untrusted?: boolean;
  /** iommu.passthrough=1 / identity default domain for this device's group. */
  readonly passthrough?: boolean;
  /** swiotlb=force for this device (is_swiotlb_force_bounce). */
  readonly forceBounce?: boolean;
  /** dev->dma_range_map offset: CPU physical minus DMA address of RAM (0 on PCI x86). */
  readonly dmaRangeOffset?: bigint;
}
