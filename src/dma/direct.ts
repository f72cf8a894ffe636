/**
 * dma-direct (kernel/dma/direct.h, kernel/dma/direct.c, kernel/dma/mapping.c): phys → DMA address,
 * no IOMMU; swiotlb when forced or beyond the mask.
 */
import { fail, formatHex, U64_MAX } from '../core/index.ts';
import { cacheSync, type DmaDeviceInfo, dmaDomainOf } from './device.ts';
import type { MappedPiece } from './mapped-piece.ts';
import type { DmaAttrs, DmaDirection, SegmentKind } from './types.ts';

/**
 * dma_max_mapping_size (kernel/dma/mapping.c): the largest single mapping the device can be given.
 * dma-direct: swiotlb's per-mapping limit when bouncing may happen (forced, or the mask does not
 * cover all RAM: dma_addressing_limited); dma-iommu: the same limit for untrusted devices; else none.
 */
export function dmaMaxMappingSize(device: DmaDeviceInfo): bigint {
  const swiotlb = device.machine.swiotlb;
  if (swiotlb === undefined) return U64_MAX;
  const limit = swiotlb.maxMappingSize(device.minAlignMask);
  if (dmaDomainOf(device) !== undefined) return device.untrusted ? limit : U64_MAX;
  const lastRam = device.machine.platform.memoryMap.byKind('ram').at(-1)?.last ?? 0n;
  const limited = device.dmaMask < lastRam - device.dmaRangeOffset;
  return device.forceBounce || limited ? limit : U64_MAX;
}

/** dma_capable (include/linux/dma-direct.h): the last byte within the device's mask. */
export function dmaCapable(device: DmaDeviceInfo, addr: bigint, size: bigint): boolean {
  return addr + size - 1n <= device.dmaMask;
}

/**
 * dma_direct_map_phys (kernel/dma/direct.h): the DMA address of RAM is phys minus the device's
 * dma-range offset; MMIO is used as is. Bounced through swiotlb when forced or beyond the mask.
 * EIO when the address is unreachable and cannot be bounced.
 */
export function dmaDirectMapPhys(
  device: DmaDeviceInfo,
  phys: bigint,
  size: bigint,
  dir: DmaDirection,
  attrs: DmaAttrs,
  sourceOffset: bigint,
  kind: SegmentKind = 'direct',
): MappedPiece {
  const mmio = attrs.mmio === true;
  const swiotlb = device.machine.swiotlb;
  const bounce = (): MappedPiece => {
    if (mmio) fail('EIO', `${device.bdf}: MMIO at ${formatHex(phys)} cannot be bounced through swiotlb`);
    if (swiotlb === undefined) {
      fail(
        'EIO',
        `${device.bdf}: DMA addr ${formatHex(phys)}+${size} overflows mask ${formatHex(device.dmaMask)} and swiotlb is off`,
      );
    }
    const b = swiotlb.map(phys, size, {
      minAlignMask: device.minAlignMask,
      segmentBoundaryMask: device.segmentBoundaryMask,
    });
    const dma = b.tlbAddr - device.dmaRangeOffset;
    if (!dmaCapable(device, dma, size)) {
      swiotlb.unmap(b, dir, true);
      fail(
        'EIO',
        `${device.bdf}: swiotlb addr ${formatHex(dma)}+${size} overflows mask ${formatHex(device.dmaMask)}`,
      );
    }
    cacheSync(device, size, attrs);
    return { kind: 'bounce', sourceOffset, phys, size, dma, mmio, bounce: b };
  };
  if (device.forceBounce) return bounce();
  if (mmio) {
    if (!dmaCapable(device, phys, size)) {
      fail(
        'EIO',
        `${device.bdf}: MMIO ${formatHex(phys)}+${size} overflows mask ${formatHex(device.dmaMask)}`,
      );
    }
    return { kind, sourceOffset, phys, size, dma: phys, mmio };
  }
  const dma = phys - device.dmaRangeOffset;
  if (!dmaCapable(device, dma, size)) return bounce();
  cacheSync(device, size, attrs);
  return { kind, sourceOffset, phys, size, dma, mmio };
}
