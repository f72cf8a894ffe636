/**
 * The routing view of a DMA-layer Machine: its platform's topology, memory and bytes, and for each
 * device the IOMMU unit and domain the Machine attached its group to. A device's first DMA probes it
 * (Machine.device), as a driver's probe would before any DMA happens.
 */
import { PhyrList, PhysrError } from '../core/index.ts';
import type { DmaMapping, Machine } from '../dma/index.ts';
import { type Bdf, type Folio, folioPhys } from '../platform/index.ts';
import type { DescriptorAllocator, DescriptorBuffer } from './nvme.ts';
import type { DeviceIommu, DmaFabric } from './routing.ts';

export function machineFabric(machine: Machine): DmaFabric {
  const { platform } = machine;
  return {
    topology: platform.topology,
    memoryMap: platform.memoryMap,
    bytes: platform.bytes,
    metrics: machine.metrics,
    iommuOf(bdf: Bdf): DeviceIommu | undefined {
      const device = machine.device(bdf);
      if (device.iommu === undefined) return undefined;
      return { iommu: device.iommu, deviceId: device.id };
    },
    // dma-direct hands out phys - dma_range_map offset (phys_to_dma), so that offset maps back.
    inboundOffset(bdf: Bdf): bigint {
      return machine.device(bdf).dmaRangeOffset;
    },
  };
}

/**
 * A dma_pool stand-in for descriptor memory (NVMe PRP lists and SGL segments): 4 KiB pages from the
 * folio allocator, each mapped for the device through the DMA API, carved into size-aligned blocks.
 * `release` unmaps and frees every page.
 */
export function descriptorPool(machine: Machine, bdf: Bdf): DescriptorAllocator & { release(): void } {
  const device = machine.device(bdf);
  const pages: { folio: Folio; mapping: DmaMapping }[] = [];
  let used = PAGE;
  const newPage = (): void => {
    const folio = machine.platform.folios.allocFolio(0);
    const mapping = device.map(PhyrList.fromRanges([[folioPhys(folio), BigInt(PAGE)]]), 'BIDIRECTIONAL');
    pages.push({ folio, mapping });
    used = 0;
  };
  return {
    alloc(size: number): DescriptorBuffer {
      if (!Number.isInteger(size) || size <= 0 || size > PAGE || (size & (size - 1)) !== 0)
        throw new PhysrError('EINVAL', `descriptor block of ${size} bytes: a power of two up to ${PAGE}`);
      if (Math.ceil(used / size) * size + size > PAGE) newPage();
      const start = Math.ceil(used / size) * size;
      used = start + size;
      const page = pages.at(-1)!;
      return {
        cpuAddress: folioPhys(page.folio) + BigInt(start),
        dmaAddress: page.mapping.dma.addressAt(0) + BigInt(start),
        size,
      };
    },
    release(): void {
      for (const { folio, mapping } of pages) {
        device.unmap(mapping);
        machine.platform.folios.freeFolio(folio);
      }
      pages.length = 0;
      used = PAGE;
    },
  };
}

const PAGE = 4096;
