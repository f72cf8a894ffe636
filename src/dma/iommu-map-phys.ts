/**
 * The per-range dma-iommu path (drivers/iommu/dma-iommu.c iommu_dma_map_phys): its own IOVA for one
 * range, what dma_map_phys does on a dma-iommu device and what the physr map falls back to.
 */
import { alignUp, fail, formatHex } from '../core/index.ts';
import { cacheSync, type DmaDeviceInfo, dmaDomainOf } from './device.ts';
import { dmaInfoToProt, iommuDmaAllocIova, zeroPadding } from './dma-iommu.ts';
import type { MappedPiece } from './mapped-piece.ts';
import type { SwiotlbBounce } from './swiotlb.ts';
import type { DmaAttrs, DmaDirection, SegmentKind } from './types.ts';

/**
 * iommu_dma_map_phys (drivers/iommu/dma-iommu.c): its own IOVA for one range; an untrusted device
 * gets an unaligned range bounced first (never MMIO: EIO).
 */
export function iommuDmaMapPhys(
  device: DmaDeviceInfo,
  phys: bigint,
  size: bigint,
  dir: DmaDirection,
  attrs: DmaAttrs,
  sourceOffset: bigint,
  kind: SegmentKind = 'iommu',
): MappedPiece {
  const domain = dmaDomainOf(device);
  if (domain === undefined) fail('EINVAL', `${device.bdf} does not use dma-iommu`);
  const granule = domain.iovad!.granule;
  const mask = granule - 1n;
  const mmio = attrs.mmio === true;
  let target = phys;
  let b: SwiotlbBounce | undefined;
  const swiotlb = device.machine.swiotlb;
  if (device.untrusted && ((phys | size) & mask) !== 0n) {
    // MMIO and DMA_ATTR_REQUIRE_COHERENT (7.1) are never bounced: DMA_MAPPING_ERROR.
    if (mmio || attrs.requireCoherent === true)
      fail(
        'EIO',
        `${device.bdf}: ${mmio ? 'MMIO' : 'a coherent-only range'} at ${formatHex(phys)} cannot be bounced through swiotlb`,
      );
    // iommu_dma_map_swiotlb: no pool, no mapping (never the whole granule for an untrusted device).
    if (swiotlb === undefined) {
      fail(
        'EIO',
        `${device.bdf}: DMA bounce buffers are inactive, unable to map unaligned ${formatHex(phys)}`,
      );
    }
    // swiotlb_tbl_map_single takes the device's min_align_mask itself (dma_get_min_align_mask).
    b = swiotlb.map(phys, size, {
      minAlignMask: device.minAlignMask,
      allocAlignMask: mask,
      segmentBoundaryMask: device.segmentBoundaryMask,
    });
    zeroPadding(device, b.tlbAddr, size, granule);
    target = b.tlbAddr;
  }
  cacheSync(device, size, attrs);
  const iovaOff = target & mask;
  const len = alignUp(size + iovaOff, granule);
  let iova: bigint;
  try {
    iova = iommuDmaAllocIova(device, domain, len);
    try {
      domain.map(iova, target - iovaOff, len, dmaInfoToProt(dir, device.coherent, attrs));
    } catch (error) {
      domain.freeIova(iova, len);
      throw error;
    }
  } catch (error) {
    if (b !== undefined) swiotlb!.unmap(b, dir, true);
    throw error;
  }
  return {
    kind: b === undefined ? kind : 'bounce',
    sourceOffset,
    phys,
    size,
    dma: iova + iovaOff,
    mmio,
    iova: { start: iova, size: len },
    ...(b === undefined ? {} : { bounce: b }),
  };
}
