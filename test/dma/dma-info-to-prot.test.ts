/**
 * dma_info_to_prot (drivers/iommu/dma-iommu.c): the IOMMU prot of a DMA API mapping. Since 6.18
 * DMA_ATTR_MMIO takes the place of the cache attribute (a coherent device's MMIO mapping is
 * IOMMU_MMIO, not IOMMU_CACHE | IOMMU_MMIO); the direction adds READ, WRITE or both.
 */
import { describe, expect, it } from 'vitest';
import { dmaInfoToProt } from '../../src/dma/dma-iommu.ts';
import { builtinMachine, mapPhys } from '../../src/dma/index.ts';

// include/linux/iommu.h bit values, written out rather than imported from the model.
const READ = 1;
const WRITE = 2;
const CACHE = 4;
const MMIO = 16;

describe('dma_info_to_prot', () => {
  // [dir, coherent, mmio, prot] worked out from the kernel function by hand.
  const table = [
    ['TO_DEVICE', false, false, READ],
    ['FROM_DEVICE', false, false, WRITE],
    ['BIDIRECTIONAL', false, false, READ | WRITE],
    ['TO_DEVICE', true, false, CACHE | READ],
    ['FROM_DEVICE', true, false, CACHE | WRITE],
    ['BIDIRECTIONAL', true, false, CACHE | READ | WRITE],
    ['TO_DEVICE', false, true, MMIO | READ],
    ['FROM_DEVICE', false, true, MMIO | WRITE],
    ['BIDIRECTIONAL', false, true, MMIO | READ | WRITE],
    ['TO_DEVICE', true, true, MMIO | READ],
    ['FROM_DEVICE', true, true, MMIO | WRITE],
    ['BIDIRECTIONAL', true, true, MMIO | READ | WRITE],
  ] as const;
  it.each(table)('%s, coherent %s, DMA_ATTR_MMIO %s -> prot %i', (dir, coherent, mmio, prot) => {
    expect(dmaInfoToProt(dir, coherent, { mmio })).toBe(prot);
  });

  it("a coherent device's DMA_ATTR_MMIO mapping through VT-d carries no snoop bit (MMIO replaces CACHE)", () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device('0000:04:00.0');
    expect(dev.coherent).toBe(true);
    const table = dev.domain!.pageTable!;
    const ram = mapPhys(dev, 5n << 30n, 0x1000n, 'TO_DEVICE');
    const bar = mapPhys(dev, 0x200_0000_0000n, 0x1000n, 'TO_DEVICE', { mmio: true });
    // VT-d keeps IOMMU_CACHE as the leaf's SNP bit; it has no bit for IOMMU_MMIO.
    expect(table.lookup(ram.dma.addressAt(0))!.prot).toBe(CACHE | READ);
    expect(table.lookup(bar.dma.addressAt(0))!.prot).toBe(READ);
    dev.unmap(bar);
    dev.unmap(ram);
  });
});
