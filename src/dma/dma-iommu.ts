/**
 * What every dma-iommu path shares (drivers/iommu/dma-iommu.c): the IOMMU prot of a mapping
 * (dma_info_to_prot), IOVA allocation below the mask with the 32-bit first try
 * (iommu_dma_alloc_iova), and the zeroed padding around an untrusted device's bounce.
 */
import { alignUp } from '../core/index.ts';
import {
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_READ,
  IOMMU_WRITE,
  type IommuDomain,
  type Prot,
} from '../iommu/index.ts';
import type { DmaDeviceInfo } from './device.ts';
import type { DmaAttrs, DmaDirection } from './types.ts';

const DMA_BIT_MASK_32 = 0xffff_ffffn;

/** The smaller of two bigints (Math.min takes Numbers only). */
export function bigintMin(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

/**
 * dma_info_to_prot (dma-iommu.c): DMA_ATTR_MMIO (6.18) takes the place of the cache attribute, so
 * MMIO is never mapped IOMMU_CACHE, however coherent the device (on VT-d no snoop bit; on ARM
 * device memory, outer shareable).
 */
export function dmaInfoToProt(dir: DmaDirection, coherent: boolean, attrs: DmaAttrs): Prot {
  const prot = attrs.mmio === true ? IOMMU_MMIO : coherent ? IOMMU_CACHE : 0;
  if (dir === 'TO_DEVICE') return prot | IOMMU_READ;
  if (dir === 'FROM_DEVICE') return prot | IOMMU_WRITE;
  return prot | IOMMU_READ | IOMMU_WRITE;
}

/**
 * iommu_dma_alloc_iova: below the DMA mask; a PCI device first tries below 4 GiB (the 32-bit
 * workaround), and only when that fails goes wide for good.
 */
export function iommuDmaAllocIova(device: DmaDeviceInfo, domain: IommuDomain, size: bigint): bigint {
  const limit = device.dmaMask;
  if (limit > DMA_BIT_MASK_32 && device.pci32bitWorkaround) {
    try {
      // This first try does not flush the IOVA caches (alloc_iova_fast's flush_rcache is false).
      return domain.allocIova(size, DMA_BIT_MASK_32, false);
    } catch {
      device.pci32bitWorkaround = false;
    }
  }
  return domain.allocIova(size, limit);
}

/** iommu_dma_map_swiotlb: an untrusted device must not see leftover bytes around its bounce. */
export function zeroPadding(device: DmaDeviceInfo, tlbAddr: bigint, size: bigint, granule: bigint): void {
  if (!device.untrusted) return;
  const bytes = device.machine.platform.bytes;
  const start = tlbAddr - (tlbAddr & (granule - 1n));
  if (tlbAddr > start) bytes.fill(start, Number(tlbAddr - start), 0);
  const end = tlbAddr + size;
  const endAligned = alignUp(end, granule);
  if (endAligned > end) bytes.fill(end, Number(endAligned - end), 0);
}
