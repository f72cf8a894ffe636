/**
 * Linux 7.1's hmm_dma_map_* (mm/hmm.c, include/linux/hmm-dma.h), the path of RDMA on-demand-paging
 * MRs (drivers/infiniband/core/umem_odp.c).
 */
import { describe, expect, it } from 'vitest';
import { COUNTER, DmaRangeList, PhyrList } from '../../src/core/index.ts';
import { builtinMachine, liveMappings } from '../../src/dma/index.ts';
import {
  HMM_PFN_DMA_MAPPED,
  HMM_PFN_P2PDMA_BUS,
  hmmDmaMapAlloc,
  hmmDmaMapFree,
  hmmDmaMapPfn,
  hmmDmaUnmapPfn,
} from '../../src/mm/index.ts';
import { IB_ACCESS_ON_DEMAND, ibUmemOdpGet } from '../../src/rdma/index.ts';
import { cpuBytes, deviceBytes, fillPattern, sameBytes } from '../dma/helpers.ts';
import { expectErrno } from '../errno.ts';
import { rdmaMachine } from '../rdma/fixture.ts';

const NIC = '0000:04:00.0';
const GPU_BAR1 = 0x200_0000_0000n;
/** Linux boots with ACS redirect on (pci_std_enable_acs): switch-local P2P needs the kernel parameter. */
const SWITCH_P2P = 'pci=disable_acs_redir=0000:02:00.0;0000:02:01.0';
const GiB = 1n << 30n;

describe('hmm_dma_map_* on the IOVA API', () => {
  it('one IOVA for the whole range up front; each faulted page linked at idx * 4K and synced alone', () => {
    const m = builtinMachine('two-socket-server');
    const nic = m.device(NIC);
    const allocs = m.metrics.get(COUNTER.iovaAllocations);
    const map = hmmDmaMapAlloc(nic, 8, 0x1000n);
    expect(m.metrics.get(COUNTER.iovaAllocations) - allocs).toBe(1);
    expect(map.state!.size).toBe(0x8000n);
    // struct hmm_dma_map (40) + the pfn array (8 x 8); no dma_addr_t array with an IOVA.
    expect(map.hasDmaList).toBe(false);
    expect(map.metadataBytes).toBe(40 + 64);
    const pages = [9n * GiB + 0x5000n, 5n * GiB, 7n * GiB + 0x3000n];
    fillPattern(nic, PhyrList.fromRanges(pages.map((p) => [p, 0x1000n] as [bigint, bigint])));
    const syncs = m.metrics.get('dma.iova_syncs');
    const dmas = pages.map((p, i) => hmmDmaMapPfn(map, i + 2, p));
    expect(dmas).toEqual([map.state!.addr + 0x2000n, map.state!.addr + 0x3000n, map.state!.addr + 0x4000n]);
    expect(m.metrics.get('dma.iova_syncs') - syncs).toBe(3);
    // The device reads page idx through its slot of the IOVA.
    pages.forEach((p, i) => {
      const seen = deviceBytes(nic, DmaRangeList.fromRanges([[dmas[i]!, 0x1000n]]));
      expect(sameBytes(seen, cpuBytes(nic, PhyrList.fromRanges([[p, 0x1000n]])))).toBe(true);
    });
    // Mapping an entry again returns its address without a new link.
    const leaves = m.metrics.get('iommu.leaf_pte_writes');
    expect(hmmDmaMapPfn(map, 2, pages[0]!)).toBe(dmas[0]);
    expect(m.metrics.get('iommu.leaf_pte_writes')).toBe(leaves);
    expect(hmmDmaUnmapPfn(map, 2)).toBe(true);
    expect(hmmDmaUnmapPfn(map, 2)).toBe(false);
    expect(map.entries[2]!.flags & HMM_PFN_DMA_MAPPED).toBe(0);
    hmmDmaUnmapPfn(map, 3);
    hmmDmaUnmapPfn(map, 4);
    const frees = m.metrics.get(COUNTER.iovaFrees);
    hmmDmaMapFree(map);
    expect(m.metrics.get(COUNTER.iovaFrees) - frees).toBe(1);
  });

  it('without an IOMMU on a coherent device: dma_map_phys per page and no dma_addr_t array', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const nic = m.device(NIC);
    const map = hmmDmaMapAlloc(nic, 4, 0x1000n);
    expect(map.state).toBeUndefined();
    expect(map.hasDmaList).toBe(false); // dma_need_unmap is false
    expect(map.metadataBytes).toBe(40 + 32);
    expect(hmmDmaMapPfn(map, 0, 5n * GiB)).toBe(5n * GiB);
    hmmDmaUnmapPfn(map, 0);
    expect(liveMappings(nic).size).toBe(0);
    hmmDmaMapFree(map);
  });

  it('P2P by bus address: the entry carries HMM_PFN_P2PDMA_BUS and no mapping', () => {
    const m = builtinMachine('two-socket-server', { platform: { cmdline: SWITCH_P2P } });
    const nic = m.device(NIC);
    const map = hmmDmaMapAlloc(nic, 2, 0x1000n);
    const leaves = m.metrics.get('iommu.leaf_pte_writes');
    expect(hmmDmaMapPfn(map, 1, GPU_BAR1 + 0x7000n)).toBe(GPU_BAR1 + 0x7000n);
    expect(map.entries[1]!.flags & HMM_PFN_P2PDMA_BUS).toBe(HMM_PFN_P2PDMA_BUS);
    expect(m.metrics.get('iommu.leaf_pte_writes')).toBe(leaves);
    expect(hmmDmaUnmapPfn(map, 1)).toBe(true);
    hmmDmaMapFree(map);
  });

  it('refuses a device that might bounce or needs syncs (EOPNOTSUPP at alloc)', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    expectErrno(() => hmmDmaMapAlloc(m.device(NIC, { coherent: false }), 4, 0x1000n), 'EOPNOTSUPP');
    const m2 = builtinMachine('two-socket-server', { iommu: false });
    // A 32-bit mask cannot reach RAM above 4 GiB: dma_addressing_limited.
    expectErrno(() => hmmDmaMapAlloc(m2.device(NIC, { dmaMask: 32 }), 4, 0x1000n), 'EOPNOTSUPP');
  });
});

describe('an ODP umem through the HMM map (drivers/infiniband/core/umem_odp.c ib_init_umem_odp)', () => {
  it('sizes the map as ib_init_umem_odp does: length >> PAGE_SHIFT entries of 1 << page_shift', () => {
    const rdma = rdmaMachine();
    const umem = ibUmemOdpGet(rdma.device, 0x7f00_0000_0000n, 0x8000n, IB_ACCESS_ON_DEMAND);
    expect(umem.pageShift).toBe(12);
    const m = builtinMachine('two-socket-server');
    const nic = m.device(NIC);
    const map = hmmDmaMapAlloc(nic, Number(umem.length >> 12n), 1n << BigInt(umem.pageShift));
    // One IOVA of 8 x 4 KiB, reserved at alloc, before any page faults in.
    expect(map.nrEntries).toBe(8);
    expect(map.state!.size).toBe(0x8000n);
    expect(hmmDmaMapPfn(map, 7, 6n * GiB)).toBe(map.state!.addr + 0x7000n);
    hmmDmaUnmapPfn(map, 7);
    hmmDmaMapFree(map);
    umem.release();
  });
});
