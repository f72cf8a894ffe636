/**
 * dma_direct_map_sg (kernel/dma/direct.c, 7.1): a P2P entry the kernel routes through the host
 * bridge falls through to dma_direct_map_phys with the caller's attrs — it is mapped as host memory
 * would be, not with DMA_ATTR_MMIO (only phys-based callers such as dma_map_phys users and blk-mq-dma
 * pass that). So the device's dma-range offset applies to it, and a device that must bounce bounces
 * it through swiotlb.
 */
import { describe, expect, it } from 'vitest';
import { PhyrList, phyrListToSgTable, SG_DMA_BUS_ADDRESS, SG_DMA_SWIOTLB } from '../../src/core/index.ts';
import { builtinMachine } from '../../src/dma/index.ts';

const GiB = 1n << 30n;
const NVME = '0000:06:00.0';
const GPU_BAR1 = 0x200_0000_0000n; // the GPU's BAR1 on x86-2s, under a different root port

describe('dma_direct_map_sg: a P2P entry through the host bridge', () => {
  it('gets phys_to_dma (the dma-range offset), no bus-address flag', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const nvme = m.device(NVME, { dmaRangeOffset: GiB });
    const sgt = phyrListToSgTable(PhyrList.fromRanges([[GPU_BAR1 + 0x10n, 0x100n]]));
    nvme.mapSg(sgt, 'TO_DEVICE');
    const [slot] = sgt.entrySlots();
    expect(sgt.dmaAddressAt(slot!)).toBe(GPU_BAR1 + 0x10n - GiB);
    expect(sgt.dmaFlagsAt(slot!) & SG_DMA_BUS_ADDRESS).toBe(0);
    nvme.unmapSg(sgt, 'TO_DEVICE');
  });

  it('is bounced through swiotlb on a device that must bounce (not refused as MMIO)', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NVME, { forceBounce: true });
    const sgt = phyrListToSgTable(PhyrList.fromRanges([[GPU_BAR1, 0x1000n]]));
    expect(dev.mapSg(sgt, 'TO_DEVICE')).toBe(1);
    const [slot] = sgt.entrySlots();
    expect(sgt.dmaFlagsAt(slot!)).toBe(SG_DMA_SWIOTLB);
    expect(m.swiotlb!.contains(sgt.dmaAddressAt(slot!))).toBe(true);
    dev.unmapSg(sgt, 'TO_DEVICE');
    expect(m.swiotlb!.usedSlots).toBe(0);
  });
});
