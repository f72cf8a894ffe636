/**
 * What the NVMe PCI driver of Linux 7.1 holds per request to map and later unmap it
 * (drivers/nvme/host/pci.c, struct nvme_iod): the request's bvecs (owned by the bio), one
 * struct dma_iova_state, and — only when the request was mapped segment by segment and unmap has
 * work to do (!dma_use_iova && dma_need_unmap, nvme_pci_prp_save_mapping) — a `struct nvme_dma_vec`
 * {addr, len} per PRP-mapped segment from the dmavec mempool. In SGL mode the driver finds the
 * segments again in its SGL descriptors at unmap (nvme_free_sgls), so it keeps no dma_vecs.
 * PRP lists and SGL segments themselves are what the device reads (src/devices/nvme.ts) and are the
 * same in every design.
 */
import { DMA_IOVA_STATE_BYTES, type DmaDeviceInfo, dmaNeedUnmap } from '../dma/index.ts';
import type { BlkDmaMapping } from './blk-mq-dma.ts';
import { BIO_VEC_BYTES } from './request.ts';

/** sizeof(struct nvme_dma_vec): dma_addr_t + unsigned int, padded to 16. */
export const NVME_DMA_VEC_BYTES = 16;

export type NvmeDataMode = 'prp' | 'sgl';

export interface NvmeIodMetadata {
  /** The bio's bi_io_vec entries: 16 bytes a bvec. */
  readonly bioVecBytes: number;
  /** iod->dma_state. */
  readonly iovaStateBytes: number;
  /** iod->dma_vecs in use: 16 bytes a segment, when kept. */
  readonly dmaVecBytes: number;
  readonly dmaVecs: number;
  readonly totalBytes: number;
}

/**
 * Whether the driver records each segment's DMA address for unmap (nvme_pci_prp_save_mapping). A
 * bounce through swiotlb clears dev->dma_skip_sync (swiotlb_tbl_map_single → dma_reset_need_sync), so
 * a request that bounced needs its addresses at unmap even on a coherent dma-direct device.
 */
export function nvmeKeepsDmaVecs(device: DmaDeviceInfo, mapping: BlkDmaMapping, mode: NvmeDataMode): boolean {
  if (mode !== 'prp' || mapping.path !== 'per-segment') return false;
  const bounced = mapping.perSegment.some((h) => h.segments.some((s) => s.bouncedBytes > 0n));
  return bounced || dmaNeedUnmap(device);
}

/** The metadata bytes an nvme_iod holds for one mapped request. */
export function nvmeIodMetadata(mapping: BlkDmaMapping, mode: NvmeDataMode = 'prp'): NvmeIodMetadata {
  const bioVecBytes = mapping.request.bvecs.length * BIO_VEC_BYTES;
  const dmaVecs = nvmeKeepsDmaVecs(mapping.device, mapping, mode) ? mapping.segments.length : 0;
  const dmaVecBytes = dmaVecs * NVME_DMA_VEC_BYTES;
  return {
    bioVecBytes,
    iovaStateBytes: DMA_IOVA_STATE_BYTES,
    dmaVecBytes,
    dmaVecs,
    totalBytes: bioVecBytes + DMA_IOVA_STATE_BYTES + dmaVecBytes,
  };
}
