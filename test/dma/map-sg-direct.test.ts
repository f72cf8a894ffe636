/**
 * dma_map_sg entry by entry on dma-direct (kernel/dma/direct.c dma_direct_map_sg, Linux 7.1): P2P
 * entries by their pci_p2pdma_map_type, SG_DMA_BUS_ADDRESS / SG_DMA_SWIOTLB flags, the unwind of a
 * failed entry; and the merged dma-iommu path's __finalise_sg reset and unmap-time cache sync
 * (drivers/iommu/dma-iommu.c).
 */
import { describe, expect, it } from 'vitest';
import { PhyrList, phyrListToSgTable, SG_DMA_BUS_ADDRESS, SG_DMA_SWIOTLB } from '../../src/core/index.ts';
import { builtinMachine } from '../../src/dma/index.ts';
import { expectErrno } from '../errno.ts';

const GiB = 1n << 30n;
const NVME = '0000:06:00.0';
/** Under the same PCIe switch as the GPU: its BAR is a bus address (no IOMMU, so no ACS redirect). */
const NIC = '0000:04:00.0';
const GPU_BAR1 = 0x200_0000_0000n;

function columns(sgt: ReturnType<typeof phyrListToSgTable>, count: number) {
  return Array.from(sgt.entrySlots(count), (slot) => ({
    dma: sgt.dmaAddressAt(slot),
    len: sgt.dmaLengthAt(slot),
    flags: sgt.dmaFlagsAt(slot),
  }));
}

describe('dma_direct_map_sg', () => {
  it('a peer BAR under the same switch is a bus address (SG_DMA_BUS_ADDRESS), RAM is phys - dma-range offset', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const nic = m.device(NIC, { dmaRangeOffset: GiB });
    const sgt = phyrListToSgTable(
      PhyrList.fromRanges([
        [5n * GiB, 0x1000n],
        [GPU_BAR1 + 0x10n, 0x100n],
      ]),
    );
    expect(nic.mapSg(sgt, 'TO_DEVICE')).toBe(2);
    expect(columns(sgt, 2)).toEqual([
      { dma: 4n * GiB, len: 0x1000, flags: 0 },
      { dma: GPU_BAR1 + 0x10n, len: 0x100, flags: SG_DMA_BUS_ADDRESS },
    ]);
    nic.unmapSg(sgt, 'TO_DEVICE');
  });

  it('a peer BAR through the host bridge is mapped as host memory would be: phys - dma-range offset', () => {
    // The host-bridge case falls through to dma_direct_map_phys with the caller's attrs: no
    // DMA_ATTR_MMIO (direct.c), so phys_to_dma applies to the BAR as to RAM.
    const m = builtinMachine('two-socket-server', { iommu: false });
    const nvme = m.device(NVME, { dmaRangeOffset: GiB });
    const sgt = phyrListToSgTable(
      PhyrList.fromRanges([
        [5n * GiB, 0x1000n],
        [GPU_BAR1 + 0x10n, 0x100n],
      ]),
    );
    nvme.mapSg(sgt, 'TO_DEVICE');
    expect(columns(sgt, 2)).toEqual([
      { dma: 4n * GiB, len: 0x1000, flags: 0 },
      { dma: GPU_BAR1 + 0x10n - GiB, len: 0x100, flags: 0 },
    ]);
    nvme.unmapSg(sgt, 'TO_DEVICE');
  });

  it('a peer BAR through the host bridge is bounced on a device that must bounce (not refused as MMIO)', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NVME, { forceBounce: true });
    const sgt = phyrListToSgTable(PhyrList.fromRanges([[GPU_BAR1, 0x1000n]]));
    expect(dev.mapSg(sgt, 'TO_DEVICE')).toBe(1);
    const [only] = columns(sgt, 1);
    expect(only!.flags).toBe(SG_DMA_SWIOTLB);
    expect(m.swiotlb!.contains(only!.dma)).toBe(true);
    dev.unmapSg(sgt, 'TO_DEVICE');
    expect(m.swiotlb!.usedSlots).toBe(0);
  });

  it('only bounced entries carry SG_DMA_SWIOTLB', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NVME, { dmaMask: 32 });
    const low = m.swiotlb!.start - 0x10_0000n; // RAM just below the pool, under 4 GiB
    const sgt = phyrListToSgTable(
      PhyrList.fromRanges([
        [low, 0x1000n],
        [5n * GiB, 0x1000n],
      ]),
    );
    dev.mapSg(sgt, 'FROM_DEVICE');
    const [first, second] = columns(sgt, 2);
    expect(first).toEqual({ dma: low, len: 0x1000, flags: 0 });
    expect(second!.flags).toBe(SG_DMA_SWIOTLB);
    expect(m.swiotlb!.contains(second!.dma)).toBe(true);
    dev.unmapSg(sgt, 'FROM_DEVICE');
    expect(m.swiotlb!.usedSlots).toBe(0);
  });

  it('a failing entry unmaps the entries before it: a bounce larger than a segment (EIO), no slot stays used', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NVME, { forceBounce: true, maxSegmentSize: 1n << 20n });
    const sgt = phyrListToSgTable(
      PhyrList.fromRanges([
        [5n * GiB, 0x1000n],
        [6n * GiB, 0x1000n],
        // 512 KiB: more than one swiotlb segment (128 slots of 2 KiB), "swiotlb buffer is full".
        [7n * GiB, 0x8_0000n],
      ]),
    );
    expectErrno(() => dev.mapSg(sgt, 'TO_DEVICE'), 'EIO', /swiotlb buffer is full/);
    expect(m.swiotlb!.usedSlots).toBe(0);
  });
});

describe('dma-iommu map_sg (iommu_dma_map_sg)', () => {
  it('__finalise_sg clears every DMA slot first: a table re-mapped into fewer segments keeps no stale ones', () => {
    const m = builtinMachine('two-socket-server');
    const narrow = m.device(NVME, { maxSegmentSize: 0x1000n });
    const wide = m.device(NIC, { maxSegmentSize: 0x1_0000n });
    const sgt = phyrListToSgTable(
      PhyrList.fromRanges([
        [5n * GiB, 0x1000n],
        [6n * GiB, 0x1000n],
        [7n * GiB, 0x1000n],
      ]),
    );
    expect(narrow.mapSg(sgt, 'TO_DEVICE')).toBe(3);
    narrow.unmapSg(sgt, 'TO_DEVICE');
    expect(wide.mapSg(sgt, 'TO_DEVICE')).toBe(1);
    const [head, ...rest] = columns(sgt, 3);
    expect(head!.len).toBe(0x3000);
    expect(rest).toEqual([
      { dma: 0n, len: 0, flags: 0 },
      { dma: 0n, len: 0, flags: 0 },
    ]);
    wide.unmapSg(sgt, 'TO_DEVICE');
  });

  it('a non-coherent device syncs for the CPU at unmap only when the device may have written', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME, { coherent: false });
    for (const [dir, atUnmap] of [
      ['TO_DEVICE', 0],
      ['FROM_DEVICE', 0x1800],
      ['BIDIRECTIONAL', 0x1800],
    ] as const) {
      const sgt = phyrListToSgTable(
        PhyrList.fromRanges([
          [5n * GiB, 0x1000n],
          [6n * GiB, 0x800n],
        ]),
      );
      dev.mapSg(sgt, dir);
      const before = m.metrics.get('dma.cache_sync_bytes');
      dev.unmapSg(sgt, dir);
      expect(m.metrics.get('dma.cache_sync_bytes') - before).toBe(atUnmap);
    }
  });
});
