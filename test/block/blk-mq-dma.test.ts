/**
 * Linux 7.1's block-layer DMA iterator (block/blk-mq-dma.c, 6.17) and what NVMe keeps per request
 * (drivers/nvme/host/pci.c). Expected values are worked out by hand from the kernel's rules.
 */
import { describe, expect, it } from 'vitest';
import {
  blkCanDmaMapIova,
  blkRequestFromPhyrs,
  blkRqDmaMap,
  blkRqDmaUnmap,
  blkRqPhysSegments,
  nvmeIodMetadata,
  physGapBitOf,
  reqPhysGapMask,
} from '../../src/block/index.ts';
import { COUNTER, DmaRangeList, PhyrList } from '../../src/core/index.ts';
import { builtinMachine, type DmaDevice, dmaGetMergeBoundary, liveMappings } from '../../src/dma/index.ts';
import { cpuBytes, deviceBytes, fillPattern, sameBytes } from '../dma/helpers.ts';
import { expectErrno } from '../errno.ts';

const GiB = 1n << 30n;
const NIC = '0000:04:00.0';
const NVME = '0000:06:00.0';
const GPU_BAR1 = 0x200_0000_0000n;
/** Linux boots with ACS redirect on (pci_std_enable_acs): switch-local P2P needs the kernel parameter. */
const SWITCH_P2P = 'pci=disable_acs_redir=0000:02:00.0;0000:02:01.0';

function request(dev: DmaDevice, ranges: [bigint, bigint][], dir: 'TO_DEVICE' | 'FROM_DEVICE' = 'TO_DEVICE') {
  return blkRequestFromPhyrs(dev.machine.platform.topology, PhyrList.fromRanges(ranges), dir);
}

function segmentsAsList(segments: readonly { addr: bigint; len: bigint }[]): DmaRangeList {
  return DmaRangeList.fromRanges(segments.map((s) => [s.addr, s.len] as [bigint, bigint]));
}

describe('phys_gap_bit and req_phys_gap_mask (block/blk-merge.c, include/linux/blk-mq.h)', () => {
  it('ORs each seam: the next page offset and where the previous bvec ends in its page', () => {
    // Seams: 0 | (0 + 0x1000) = 0x1000 and 0 | (0 + 0x3000) = 0x3000 -> gaps 0x3000, ffs 13.
    expect(
      physGapBitOf([
        { phys: 0x10_0000n, len: 0x1000 },
        { phys: 0x20_0000n, len: 0x3000 },
        { phys: 0x30_0000n, len: 0x1000 },
      ]),
    ).toBe(13);
    // A seam at 0x800 into a page: ffs(0x800) = 12.
    expect(
      physGapBitOf([
        { phys: 0x10_0000n, len: 0x800 },
        { phys: 0x20_0000n, len: 0x1000 },
      ]),
    ).toBe(12);
    // One bvec has no seam: the bit stays 0, whatever its offset.
    expect(physGapBitOf([{ phys: 0x10_0200n, len: 0x100 }])).toBe(0);
  });

  it('the mask sets every bit from phys_gap_bit - 1 up, and nothing for bit 0', () => {
    expect(reqPhysGapMask(0)).toBe(0n);
    expect(reqPhysGapMask(13)).toBe(0xffff_ffff_ffff_f000n);
    expect(reqPhysGapMask(12)).toBe(0xffff_ffff_ffff_f800n);
  });
});

describe('blk_map_iter_next: merged physical segments', () => {
  it('merges physically contiguous bvecs into one segment and splits at the 4 GiB boundary', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME);
    const req = request(dev, [
      [5n * GiB, 0x1000n],
      [5n * GiB + 0x1000n, 0x1000n], // contiguous: merges (biovec_phys_mergeable)
      [6n * GiB - 0x1000n, 0x2000n], // 6 GiB is not 4 GiB aligned: stays one segment
    ]);
    const segs = blkRqPhysSegments(req);
    expect(segs).toEqual([
      { paddr: 5n * GiB, len: 0x2000n },
      { paddr: 6n * GiB - 0x1000n, len: 0x2000n },
    ]);
    const across = request(dev, [[8n * GiB - 0x1000n, 0x2000n]]);
    // 8 GiB is 4 GiB aligned: get_max_segment_size stops the segment there.
    expect(blkRqPhysSegments(across)).toEqual([
      { paddr: 8n * GiB - 0x1000n, len: 0x1000n },
      { paddr: 8n * GiB, len: 0x1000n },
    ]);
  });
});

describe('blk_rq_dma_map_iter_start/_next: host memory', () => {
  it('page-aligned seams: one IOVA for the whole request, one sync, and the bytes arrive in order', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME);
    expect(dmaGetMergeBoundary(dev)).toBe(0xfffn); // iommu_dma_get_merge_boundary: 4K pages
    const ranges: [bigint, bigint][] = [
      [5n * GiB + 0x40n, 0xfc0n], // first bvec may start mid-page
      [7n * GiB, 0x2000n],
      [9n * GiB, 0x1000n],
    ];
    const req = request(dev, ranges);
    expect(blkCanDmaMapIova(req, dev)).toBe(true);
    fillPattern(dev, PhyrList.fromRanges(ranges));
    const syncs = m.metrics.get('dma.iova_syncs');
    const leaves = m.metrics.get('iommu.leaf_pte_writes');
    const map = blkRqDmaMap(dev, req);
    expect(map.path).toBe('iova');
    expect(map.segments).toHaveLength(1);
    expect(map.segments[0]!.len).toBe(0x3fc0n);
    expect(map.segments[0]!.addr & 0xfffn).toBe(0x40n);
    expect(m.metrics.get('dma.iova_syncs') - syncs).toBe(1);
    expect(m.metrics.get('iommu.leaf_pte_writes') - leaves).toBe(4); // 1 + 2 + 1 4K leaves
    expect(
      sameBytes(deviceBytes(dev, segmentsAsList(map.segments)), cpuBytes(dev, PhyrList.fromRanges(ranges))),
    ).toBe(true);
    // nvme_iod: 3 bvecs + the IOVA state; no dma_vecs when the IOVA holds everything.
    expect(nvmeIodMetadata(map)).toEqual({
      bioVecBytes: 48,
      iovaStateBytes: 16,
      dmaVecBytes: 0,
      dmaVecs: 0,
      totalBytes: 64,
    });
    const frees = m.metrics.get(COUNTER.iovaFrees);
    blkRqDmaUnmap(map);
    expect(m.metrics.get(COUNTER.iovaFrees) - frees).toBe(1); // dma_iova_destroy frees the one IOVA
    expectErrno(() => blkRqDmaUnmap(map), 'EINVAL');
  });

  it('a seam inside the merge boundary: one dma_map_phys per segment, and PRP mode keeps a dma_vec each', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME);
    const ranges: [bigint, bigint][] = [
      [5n * GiB, 0x800n], // ends 0x800 into its page: gap bit 12, mask bit 11 is inside 0xfff
      [7n * GiB, 0x1000n],
    ];
    const req = request(dev, ranges);
    expect(req.physGapBit).toBe(12);
    expect(blkCanDmaMapIova(req, dev)).toBe(false);
    fillPattern(dev, PhyrList.fromRanges(ranges));
    const allocs = m.metrics.get(COUNTER.iovaAllocations);
    const map = blkRqDmaMap(dev, req);
    expect(map.path).toBe('per-segment');
    expect(map.segments.map((s) => s.len)).toEqual([0x800n, 0x1000n]);
    expect(m.metrics.get(COUNTER.iovaAllocations) - allocs).toBe(2); // one IOVA per dma_map_phys
    expect(
      sameBytes(deviceBytes(dev, segmentsAsList(map.segments)), cpuBytes(dev, PhyrList.fromRanges(ranges))),
    ).toBe(true);
    // nvme_pci_prp_save_mapping: dma-iommu needs unmap, so 2 x 16-byte nvme_dma_vec.
    expect(nvmeIodMetadata(map, 'prp')).toMatchObject({
      dmaVecs: 2,
      dmaVecBytes: 32,
      totalBytes: 32 + 16 + 32,
    });
    // SGL mode finds the addresses in its descriptors at unmap (nvme_free_sgls): no dma_vecs.
    expect(nvmeIodMetadata(map, 'sgl')).toMatchObject({ dmaVecs: 0, totalBytes: 48 });
    blkRqDmaUnmap(map);
    expect(liveMappings(dev).size).toBe(0);
  });

  it('without an IOMMU: no merge boundary, no IOVA, and a coherent device keeps no dma_vecs', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NVME);
    expect(dmaGetMergeBoundary(dev)).toBe(0n);
    const req = request(dev, [
      [5n * GiB, 0x1000n],
      [7n * GiB, 0x1000n],
    ]);
    expect(blkCanDmaMapIova(req, dev)).toBe(true); // nothing to violate, but dma_iova_try_alloc fails
    const map = blkRqDmaMap(dev, req);
    expect(map.path).toBe('per-segment');
    expect(map.segments).toEqual([
      { addr: 5n * GiB, len: 0x1000n },
      { addr: 7n * GiB, len: 0x1000n },
    ]);
    expect(nvmeIodMetadata(map)).toMatchObject({ dmaVecs: 0, totalBytes: 32 + 16 });
    blkRqDmaUnmap(map);
  });
});

describe('blk_rq_dma_map_iter_start: P2P decided once, on the first segment, per provider', () => {
  it('bus address under a switch: every segment gets its bus address, nothing to unmap', () => {
    const m = builtinMachine('two-socket-server', { platform: { cmdline: SWITCH_P2P } });
    const nic = m.device(NIC);
    const ptes = m.metrics.get(COUNTER.pteWrites);
    const map = blkRqDmaMap(
      nic,
      request(nic, [
        [GPU_BAR1, 0x1000n],
        [GPU_BAR1 + 0x10_0000n, 0x1000n],
      ]),
    );
    expect(map.p2p).toBe('bus-address');
    expect(map.path).toBe('bus-address');
    expect(map.segments).toEqual([
      { addr: GPU_BAR1, len: 0x1000n },
      { addr: GPU_BAR1 + 0x10_0000n, len: 0x1000n },
    ]);
    expect(m.metrics.get(COUNTER.pteWrites)).toBe(ptes);
    blkRqDmaUnmap(map);
    expect(m.metrics.get(COUNTER.pteClears)).toBe(0);
  });

  it('through the host bridge: mapped like host memory with DMA_ATTR_MMIO, never cache-synced', () => {
    const m = builtinMachine('two-socket-server'); // ACS redirect on: NIC -> GPU goes up to the host bridge
    const nic = m.device(NIC, { coherent: false });
    const synced = m.metrics.get('dma.cache_sync_bytes');
    const map = blkRqDmaMap(
      nic,
      request(nic, [
        [GPU_BAR1, 0x1000n],
        [GPU_BAR1 + 0x10_0000n, 0x1000n],
      ]),
    );
    expect(map.p2p).toBe('through-host-bridge');
    expect(map.attrs).toEqual({ mmio: true });
    expect(map.path).toBe('iova');
    expect(m.metrics.get('dma.cache_sync_bytes')).toBe(synced);
    blkRqDmaUnmap(map);
  });

  it('P2P that is not supported fails the request with BLK_STS_INVAL (-EINVAL)', () => {
    const m = builtinMachine('laptop');
    const nvme = m.device('0000:01:00.0');
    expectErrno(
      () => blkRqDmaMap(nvme, request(nvme, [[0x200_0000_0000n, 0x1000n]])),
      'EINVAL',
      /BLK_STS_INVAL/,
    );
    expect(m.metrics.get(COUNTER.iovaAllocations)).toBe(0);
  });

  it('a bio never mixes host memory and a BAR (zone_device_pages_have_same_pgmap)', () => {
    const m = builtinMachine('two-socket-server');
    const nic = m.device(NIC);
    expectErrno(
      () =>
        request(nic, [
          [5n * GiB, 0x1000n],
          [GPU_BAR1, 0x1000n],
        ]),
      'EINVAL',
      /never mixes pgmaps/,
    );
  });
});

describe('nvme_pci_prp_save_mapping after a bounce', () => {
  it('a 32-bit device without an IOMMU bounces, which clears dma_skip_sync: the dma_vecs are kept', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NVME, { dmaMask: 32, minAlignMask: 0xfffn });
    const map = blkRqDmaMap(dev, request(dev, [[5n * GiB, 0x1000n]]));
    expect(map.path).toBe('per-segment');
    expect(m.metrics.get(COUNTER.bounceBytes)).toBe(0x1000);
    expect(nvmeIodMetadata(map)).toMatchObject({ dmaVecs: 1, totalBytes: 16 + 16 + 16 });
    blkRqDmaUnmap(map);
  });
});
