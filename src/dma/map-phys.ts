/**
 * dma_map_phys / dma_unmap_phys (include/linux/dma-mapping.h, kernel/dma/mapping.c): one physical
 * range through dma-direct or the per-range dma-iommu path.
 */
import { DmaRangeListBuilder, fail, formatHex, PhyrListBuilder } from '../core/index.ts';
import { type DmaDeviceInfo, dmaDomainOf } from './device.ts';
import { dmaDirectMapPhys } from './direct.ts';
import { iommuDmaMapPhys } from './iommu-map-phys.ts';
import { dmaUnmap } from './map.ts';
import { checkDirection, type DmaMapping, findMapping, register } from './mapping.ts';
import { traceMapPhys, traceUnmapAddress } from './trace-points.ts';
import type { DmaAttrs, DmaDirection, DmaSegment } from './types.ts';

/**
 * dma_map_phys (include/linux/dma-mapping.h): one physical range, no P2P classification (the caller
 * decided), DMA_ATTR_MMIO allowed: then no struct page is needed, no cache maintenance, and
 * bouncing is refused. The handle's `dma` holds the one DMA range.
 */
export function mapPhys(
  device: DmaDeviceInfo,
  phys: bigint,
  size: bigint,
  dir: DmaDirection,
  attrs: DmaAttrs = {},
): DmaMapping {
  checkDirection(dir);
  if (size <= 0n) fail('EINVAL', `${device.bdf}: dma_map_phys of ${size} bytes`);
  const { memoryMap } = device.machine.platform;
  if (attrs.mmio !== true && !memoryMap.hasStructPage(phys)) {
    const region = memoryMap.lookup(phys);
    if (region === undefined || region.kind === 'mmio') {
      fail('EINVAL', `${device.bdf}: ${formatHex(phys)} has no struct page; map it with DMA_ATTR_MMIO`);
    }
  }
  const piece =
    dmaDomainOf(device) === undefined
      ? dmaDirectMapPhys(device, phys, size, dir, attrs, 0n)
      : iommuDmaMapPhys(device, phys, size, dir, attrs, 0n);
  const source = new PhyrListBuilder().append(phys, size).build();
  const dma = new DmaRangeListBuilder().append(piece.dma, size).build();
  const segment: DmaSegment = {
    kind: piece.kind,
    phys: source,
    dma,
    bouncedBytes: piece.bounce === undefined ? 0n : size,
  };
  const mapping = register(device, 'phys', source, dir, attrs, [piece], [segment], undefined, true);
  // dma_map_phys returns one dma_addr_t: no list metadata to count.
  traceMapPhys(mapping);
  return mapping;
}

/**
 * dma_unmap_phys as a driver calls it: by DMA address, size and direction. An address that is not
 * mapped is reported by dma-debug and otherwise ignored.
 */
export function unmapPhys(device: DmaDeviceInfo, dmaAddress: bigint, size: bigint, dir: DmaDirection): void {
  const mapping = findMapping(device, dmaAddress);
  if (mapping === undefined) {
    traceUnmapAddress(device, dmaAddress, size, dir);
    device.machine.debug.checkUnmap(device.bdf, dmaAddress, { type: 'phys', size, direction: dir });
    return;
  }
  dmaUnmap(mapping, { size, direction: dir, type: 'phys' });
}
