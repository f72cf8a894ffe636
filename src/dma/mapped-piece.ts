/**
 * The per-range result every map path shares: one stretch of source bytes and how it reached the
 * device, plus what undoes a per-range piece (iommu_dma_unmap_phys / dma_direct_unmap_phys) and the
 * cache maintenance a non-coherent device needs (arch_sync_dma_for_device/cpu).
 */
import type { P2pDecision } from '../platform/index.ts';
import { type DmaDeviceInfo, dmaDomainOf } from './device.ts';
import type { DmaIovaState } from './iova-api.ts';
import type { SwiotlbBounce } from './swiotlb.ts';
import type { DmaAttrs, DmaDirection, SegmentKind } from './types.ts';

/** One mapped piece: a stretch of source bytes and how it reached the device. */
export interface MappedPiece {
  readonly kind: SegmentKind;
  /** Byte offset of the piece in the source list. */
  readonly sourceOffset: bigint;
  readonly phys: bigint;
  readonly size: bigint;
  readonly dma: bigint;
  readonly mmio: boolean;
  /** Own IOVA allocation (per-range iommu path): granule-aligned start and size. */
  readonly iova?: { readonly start: bigint; readonly size: bigint };
  /** The IOVA state a piece was linked into (shared by the pieces of one segment). */
  readonly state?: DmaIovaState;
  /**
   * Source ranges a linked piece stands for when it is a whole run linked at once (the compact
   * record): then `phys` is the first range's address and the ranges are read from the source list.
   */
  readonly ranges?: number;
  /** swiotlb record when the whole piece was bounced (per-range paths). */
  readonly bounce?: SwiotlbBounce;
  readonly p2p?: P2pDecision;
}

/** Undoes one per-range piece (iommu_dma_unmap_phys / dma_direct_unmap_phys). */
export function unmapPiece(
  device: DmaDeviceInfo,
  piece: MappedPiece,
  dir: DmaDirection,
  attrs: DmaAttrs,
): void {
  if (piece.state !== undefined || piece.kind === 'bus-address') return;
  if (!device.coherent && attrs.skipCpuSync !== true && !piece.mmio && dir !== 'TO_DEVICE') {
    device.machine.metrics.add('dma.cache_sync_bytes', Number(piece.size));
  }
  if (piece.iova !== undefined) dmaDomainOf(device)!.dmaUnmap(piece.iova.start, piece.iova.size);
  if (piece.bounce !== undefined)
    device.machine.swiotlb!.unmap(piece.bounce, dir, attrs.skipCpuSync === true);
}
