/**
 * Linux 7.1's dma_buf_phys_vec_to_sgt / dma_buf_free_sgt (drivers/dma-buf/dma-buf-mapping.c, 6.19):
 * what each importer of a vfio-pci BAR export holds — a DMA-only sg_table.
 */
import { describe, expect, it } from 'vitest';
import { COUNTER, DmaRangeList, PhyrList, UINT_MAX } from '../../src/core/index.ts';
import { builtinMachine, liveMappings } from '../../src/dma/index.ts';
import { dmaBufFreeSgt, dmaBufPhysVecToSgt, physVecBytes } from '../../src/dmabuf/index.ts';
import { pcimP2pdmaProvider } from '../../src/platform/index.ts';
import { cpuBytes, deviceBytes, fillPattern, sameBytes } from '../dma/helpers.ts';
import { errnoOf, expectErrno } from '../errno.ts';

const GPU = '0000:03:00.0';
const NIC = '0000:04:00.0';
const GPU_BAR1 = 0x200_0000_0000n;
const GiB = 1n << 30n;
const NVME = '0000:06:00.0';
/** Linux boots with ACS redirect on (pci_std_enable_acs): switch-local P2P needs the kernel parameter. */
const SWITCH_P2P = 'pci=disable_acs_redir=0000:02:00.0;0000:02:01.0';

describe('dma_buf_phys_vec_to_sgt', () => {
  it('bus address: each range at its bus address, cut into UINT_MAX entries, no IOMMU work', () => {
    const m = builtinMachine('two-socket-server', { platform: { cmdline: SWITCH_P2P } });
    const nic = m.device(NIC);
    const provider = pcimP2pdmaProvider(m.platform.topology, GPU, 1);
    const physVec = PhyrList.fromRanges([[GPU_BAR1, 32n * GiB]]);
    const ptes = m.metrics.get(COUNTER.pteWrites);
    const dma = dmaBufPhysVecToSgt(nic, provider, physVec, 'BIDIRECTIONAL');
    expect(dma.mapType).toBe('bus-address');
    // DIV_ROUND_UP(32 GiB, 0xffffffff) = 9 entries; 8 x 0xffffffff leaves 8 bytes for the last.
    expect(dma.entries).toHaveLength(9);
    expect(dma.entries[0]).toEqual({ addr: GPU_BAR1, len: UINT_MAX });
    expect(dma.entries[1]).toEqual({ addr: GPU_BAR1 + 0xffff_ffffn, len: UINT_MAX });
    expect(dma.entries[8]).toEqual({ addr: GPU_BAR1 + 8n * 0xffff_ffffn, len: 8 });
    // 9 struct scatterlist (32 B) + sg_table (16 B) + dma_buf_dma's state pointer and size (16 B).
    expect(dma.metadataBytes).toBe(9 * 32 + 16 + 16);
    expect(physVecBytes(physVec)).toBe(16);
    expect(m.metrics.get(COUNTER.pteWrites)).toBe(ptes);
    dmaBufFreeSgt(dma);
    expectErrno(() => dmaBufFreeSgt(dma), 'EINVAL');
  });

  it('through the host bridge with an IOMMU: one IOVA, one entry, and the device reaches the BAR bytes', () => {
    const m = builtinMachine('two-socket-server');
    const nic = m.device(NIC);
    const provider = pcimP2pdmaProvider(m.platform.topology, GPU, 1);
    const physVec = PhyrList.fromRanges([[GPU_BAR1 + 0x20_0000n, 0x4000n]]);
    fillPattern(nic, physVec);
    const syncs = m.metrics.get('dma.iova_syncs');
    const dma = dmaBufPhysVecToSgt(nic, provider, physVec, 'TO_DEVICE');
    expect(dma.mapType).toBe('through-host-bridge');
    expect(dma.entries).toHaveLength(1);
    expect(dma.entries[0]!.addr).toBe(dma.state!.addr);
    expect(dma.entries[0]!.len).toBe(0x4000);
    expect(m.metrics.get('dma.iova_syncs') - syncs).toBe(1);
    const seen = deviceBytes(nic, DmaRangeList.fromRanges([[dma.entries[0]!.addr, 0x4000n]]));
    expect(sameBytes(seen, cpuBytes(nic, physVec))).toBe(true);
    // One entry (32) + sg_table (16) + dma_buf_dma extra (16) + the kzalloc'ed dma_iova_state (16).
    expect(dma.metadataBytes).toBe(80);
    const frees = m.metrics.get(COUNTER.iovaFrees);
    dmaBufFreeSgt(dma);
    expect(m.metrics.get(COUNTER.iovaFrees) - frees).toBe(1);
  });

  it('through the host bridge, several ranges behind an IOMMU: every link at offset 0, so the second fails', () => {
    const m = builtinMachine('two-socket-server');
    const nic = m.device(NIC);
    const provider = pcimP2pdmaProvider(m.platform.topology, GPU, 1);
    const physVec = PhyrList.fromRanges([
      [GPU_BAR1, 0x1000n],
      [GPU_BAR1 + 0x10_0000n, 0x1000n],
    ]);
    const allocs = m.metrics.get(COUNTER.iovaAllocations);
    const frees = m.metrics.get(COUNTER.iovaFrees);
    const errno = errnoOf(() => dmaBufPhysVecToSgt(nic, provider, physVec, 'TO_DEVICE'));
    // iommu_map refuses the IOVA the first range already maps (EEXIST in the model's page tables).
    expect(errno).toBe('EEXIST');
    // err_unmap_dma destroyed the state: the IOVA went back.
    expect(m.metrics.get(COUNTER.iovaAllocations) - allocs).toBe(1);
    expect(m.metrics.get(COUNTER.iovaFrees) - frees).toBe(1);
  });

  it('through the host bridge without an IOMMU: dma_map_phys per range with DMA_ATTR_MMIO', () => {
    // Without an IOMMU Linux leaves ACS redirect off; the NVMe sits under another root port.
    const m = builtinMachine('two-socket-server', { iommu: false });
    const nic = m.device(NVME);
    const provider = pcimP2pdmaProvider(m.platform.topology, GPU, 1);
    const dma = dmaBufPhysVecToSgt(
      nic,
      provider,
      PhyrList.fromRanges([
        [GPU_BAR1, 0x1000n],
        [GPU_BAR1 + 0x10_0000n, 0x1000n],
      ]),
      'FROM_DEVICE',
    );
    expect(dma.state).toBeUndefined();
    expect(dma.entries).toEqual([
      { addr: GPU_BAR1, len: 0x1000 },
      { addr: GPU_BAR1 + 0x10_0000n, len: 0x1000 },
    ]);
    expect(dma.perRange.every((h) => h.attrs.mmio === true)).toBe(true);
    dmaBufFreeSgt(dma);
    expect(liveMappings(nic).size).toBe(0);
  });

  it('a pair the p2pdma rules refuse is EINVAL', () => {
    const m = builtinMachine('laptop');
    const nvme = m.device('0000:01:00.0');
    const bar = m.platform.topology.functions.get('0000:00:02.0')!.bars.find((b) => !b.io)!;
    const provider = pcimP2pdmaProvider(m.platform.topology, '0000:00:02.0', bar.index);
    expectErrno(
      () => dmaBufPhysVecToSgt(nvme, provider, PhyrList.fromRanges([[bar.cpuAddress, 0x1000n]]), 'TO_DEVICE'),
      'EINVAL',
      /cannot reach/,
    );
  });
});
