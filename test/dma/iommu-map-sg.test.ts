/**
 * iommu_map_sg (drivers/iommu/iommu.c, called by iommu_dma_map_sg): physically contiguous entries
 * go to the IOMMU in one iommu_map call; a bus-address entry is skipped but, tested for contiguity
 * first, ends the run. And dma_unmap_sg of a table this device did not map is dma-debug's
 * "has not allocated" (kernel/dma/debug.c check_unmap), leaving the real mapping alone.
 */
import { describe, expect, it } from 'vitest';
import { PhyrList, phyrListToSgTable } from '../../src/core/index.ts';
import { builtinMachine, type Machine } from '../../src/dma/index.ts';
import { traceOf } from './helpers.ts';

const GiB = 1n << 30n;
const NIC = '0000:04:00.0';
const NVME = '0000:06:00.0';
const BAR = 0x200_0000_0000n; // the GPU's BAR1, under the NIC's switch
const SWITCH_P2P = 'pci=disable_acs_redir=0000:02:00.0;0000:02:01.0';

function iommuMaps(m: Machine, run: () => void): { paddr: bigint; size: bigint }[] {
  return traceOf(m, run).flatMap((r) => (r.kind === 'iommu_map' ? [{ paddr: r.paddr, size: r.size }] : []));
}

describe('iommu_map_sg', () => {
  it('maps contiguous entries with one iommu_map; a gap or a bus-address entry starts a new one', () => {
    const m = builtinMachine('two-socket-server', { platform: { cmdline: SWITCH_P2P } });
    const dev = m.device(NIC);
    // 5 GiB + 0..0x2000 split into two 4 KiB entries (contiguous), the peer BAR (a bus address),
    // then 5 GiB + 0x2000 (contiguous with the first two, but after the bus entry), then 7 GiB.
    const sgt = phyrListToSgTable(
      PhyrList.fromRanges([
        [5n * GiB, 0x2000n],
        [BAR, 0x1000n],
        [5n * GiB + 0x2000n, 0x1000n],
        [7n * GiB, 0x1000n],
      ]),
      { maxSegment: 0x1000 },
    );
    expect(sgt.origNents).toBe(5);
    const maps = iommuMaps(m, () => dev.mapSg(sgt, 'TO_DEVICE'));
    expect(maps).toEqual([
      { paddr: 5n * GiB, size: 0x2000n },
      { paddr: 5n * GiB + 0x2000n, size: 0x1000n },
      { paddr: 7n * GiB, size: 0x1000n },
    ]);
    // Only the host pages are in the IOMMU: 4 leaves, none for the bus-address BAR.
    expect(dev.domain!.pageTable!.countLeaves().get(0x1000n)).toBe(4);
    dev.unmapSg(sgt, 'TO_DEVICE');
  });
});

describe('dma_unmap_sg of a table the device did not map', () => {
  it("is dma-debug's unmap-not-mapped at the table's first DMA address, and the owner's mapping stays", () => {
    const m = builtinMachine('two-socket-server');
    const owner = m.device(NVME);
    const other = m.device(NIC);
    const sgt = phyrListToSgTable(PhyrList.fromRanges([[5n * GiB, 0x1000n]]));
    owner.mapSg(sgt, 'TO_DEVICE');
    const [slot] = sgt.entrySlots();
    const dma = sgt.dmaAddressAt(slot!);
    other.unmapSg(sgt, 'TO_DEVICE');
    expect(m.debug.findings.map((f) => [f.class, f.device, f.dmaAddress])).toEqual([
      ['unmap-not-mapped', NIC, dma],
    ]);
    expect(m.debug.findings[0]!.message).toContain(
      `[device address=0x${dma.toString(16)}] [size=4096 bytes]`,
    );
    expect(owner.iommu!.translate(owner.id, dma, 'read')).toBe(5n * GiB);
    owner.unmapSg(sgt, 'TO_DEVICE');
    expect(m.debug.findings.length).toBe(1);
  });

  it('a table never mapped reports DMA address 0, size 0', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME);
    dev.unmapSg(phyrListToSgTable(PhyrList.fromRanges([[5n * GiB, 0x1000n]])), 'TO_DEVICE');
    expect(m.debug.findings.map((f) => [f.class, f.dmaAddress])).toEqual([['unmap-not-mapped', 0n]]);
    expect(m.debug.findings[0]!.message).toContain('[device address=0x0] [size=0 bytes]');
  });
});
