/**
 * Two small DMA-API queries the 7.1 callers (block layer, HMM, dma-buf helpers) branch on
 * (kernel/dma/mapping.c).
 */
import { type DmaDeviceInfo, dmaDomainOf } from './device.ts';

/**
 * dma_get_merge_boundary: with dma-iommu, the smallest IOMMU page minus one (iommu_dma_get_merge_boundary
 * takes __ffs of the domain's pgsize_bitmap); without, 0 — the device cannot merge segments.
 */
export function dmaGetMergeBoundary(device: DmaDeviceInfo): bigint {
  const domain = dmaDomainOf(device);
  if (domain === undefined) return 0n;
  return domain.pageSizesDescending.at(-1)! - 1n;
}

/**
 * dma_need_unmap: whether an unmap does anything, so a caller must keep every DMA address it was
 * given. True through dma-iommu, and on dma-direct whenever syncs may be needed (a non-coherent
 * device, or swiotlb forced: dev->dma_skip_sync is false); CONFIG_DMA_API_DEBUG is taken as off.
 */
export function dmaNeedUnmap(device: DmaDeviceInfo): boolean {
  if (dmaDomainOf(device) !== undefined) return true;
  return !device.coherent || device.forceBounce;
}
