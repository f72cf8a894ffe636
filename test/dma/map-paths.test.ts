import { describe, expect, it } from 'vitest';
import { COUNTER, isPhysrError, PhyrList } from '../../src/core/index.ts';
import {
  builtinMachine,
  dmaIovaDestroy,
  dmaIovaLink,
  dmaIovaSync,
  dmaIovaTryAlloc,
  dmaMappingError,
  iommuDmaAllocIova,
  mapPhys,
  unmapPhys,
} from '../../src/dma/index.ts';
import { cpuBytes, deviceBytes, dmaToPhys, fillPattern, sameBytes } from './helpers.ts';

/** Booted so the PCIe switch routes GPU<->NIC peer traffic (Linux sets ACS redirect with an IOMMU). */
const SWITCH_P2P = 'pci=disable_acs_redir=0000:02:00.0;0000:02:01.0';

const GiB = 1n << 30n;
const NIC = '0000:04:00.0';
const NVME = '0000:06:00.0';
/** nvme_probe: dma_set_min_align_mask(NVME_CTRL_PAGE_SIZE - 1), so a bounce keeps the 4 KiB offset. */
const NVME_MIN_ALIGN = 0xfffn;
const GPU_BAR1 = 0x200_0000_0000n;

function expectErrno(fn: () => unknown, errno: string): void {
  try {
    fn();
  } catch (error) {
    expect(isPhysrError(error)).toBe(true);
    expect((error as { errno: string }).errno).toBe(errno);
    return;
  }
  throw new Error(`expected ${errno}`);
}

describe('direct path (no IOMMU)', () => {
  it('maps RAM to the same bus address and needs no IOVA', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NVME);
    expect(dev.usesIommu).toBe(false);
    const list = PhyrList.fromRanges([
      [5n * GiB, 0x3000n],
      [6n * GiB + 0x200n, 0x100n],
    ]);
    const map = dev.map(list, 'TO_DEVICE');
    expect(map.path).toBe('per-range');
    expect(map.fallbackReason).toMatch(/no IOMMU/);
    expect(map.dma.toArray()).toEqual([
      { address: 5n * GiB, length: 0x3000n },
      { address: 6n * GiB + 0x200n, length: 0x100n },
    ]);
    expect(m.metrics.get(COUNTER.iovaAllocations)).toBe(0);
    expect(m.metrics.get(COUNTER.bounceBytes)).toBe(0);
    dev.unmap(map);
  });

  it("maps one range across two nodes' RAM back to back (pin_user_pages coalesces it); RAM into a hole is EINVAL", () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NVME);
    // Node 0's RAM ends at 64 GiB, where node 1's begins.
    const across = PhyrList.fromRanges([[64n * GiB - 0x2000n, 0x4000n]]);
    const map = dev.map(across, 'TO_DEVICE');
    // Mapped, and cut only where the default 4 GiB segment boundary falls (64 GiB is one).
    expect(map.dma.toArray()).toEqual([
      { address: 64n * GiB - 0x2000n, length: 0x2000n },
      { address: 64n * GiB, length: 0x2000n },
    ]);
    dev.unmap(map);
    // Node 1's RAM ends at 128 GiB, and nothing follows it.
    expectErrno(() => dev.map(PhyrList.fromRanges([[128n * GiB - 0x1000n, 0x2000n]]), 'TO_DEVICE'), 'EINVAL');
  });

  it('bounces through swiotlb below 4 GiB for a 32-bit mask and copies the bytes', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NVME, { dmaMask: 32 });
    const list = PhyrList.fromRanges([[5n * GiB + 0x40n, 0x1800n]]);
    fillPattern(dev, list);
    const map = dev.map(list, 'TO_DEVICE');
    expect(map.segments.map((s) => s.kind)).toEqual(['bounce']);
    const dma = map.dma.addressAt(0);
    expect(dma + 0x1800n - 1n <= 0xffff_ffffn).toBe(true);
    expect(m.swiotlb!.contains(dma)).toBe(true);
    // The device sees the original bytes in the bounce buffer.
    expect(sameBytes(deviceBytes(dev, map.dma), cpuBytes(dev, list))).toBe(true);
    expect(m.metrics.get(COUNTER.bounceBytes)).toBe(0x1800);
    dev.unmap(map);
    expect(m.swiotlb!.usedSlots).toBe(0);
  });

  it('splits by max segment size and boundary before mapping', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NVME, { maxSegmentSize: 0x1000n, segmentBoundaryMask: 0xffffn });
    const map = dev.map(PhyrList.fromRanges([[5n * GiB + 0xf800n, 0x2000n]]), 'FROM_DEVICE');
    expect(map.dma.toArray().map((r) => r.length)).toEqual([0x800n, 0x1000n, 0x800n]);
    dev.unmap(map);
  });

  it('refuses an unreachable address when swiotlb is off (EIO)', () => {
    const m = builtinMachine('two-socket-server', { iommu: false, platform: { swiotlbBytes: 0n } });
    const dev = m.device(NVME, { dmaMask: 32 });
    expectErrno(() => dev.map(PhyrList.fromRanges([[5n * GiB, 0x1000n]]), 'TO_DEVICE'), 'EIO');
  });

  it('dma_set_mask below the DMA zone is EIO on dma-direct', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    expectErrno(() => m.device(NVME, { dmaMask: 20 }), 'EIO');
  });
});

describe('IOMMU path: one IOVA with the two-step API', () => {
  it('maps a whole list into one contiguous IOVA, one allocation, largest pages', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME, { maxSegmentSize: 1n << 32n, segmentBoundaryMask: (1n << 64n) - 1n });
    const list = PhyrList.fromRanges([
      [5n * GiB + 0xe00n, 0x200n], // first starts mid-page
      [7n * GiB, 0x20_0000n], // 2 MiB folio
      [9n * GiB, 0x1000n],
      [10n * GiB, 0x10n], // last ends mid-page
    ]);
    fillPattern(dev, list);
    const map = dev.map(list, 'BIDIRECTIONAL');
    expect(map.path).toBe('iova');
    expect(map.type).toBe('iova');
    expect(map.dma.count).toBe(1);
    expect(map.dma.totalLength).toBe(list.totalLength);
    expect(map.dma.addressAt(0) & 0xfffn).toBe(0xe00n);
    expect(m.metrics.get(COUNTER.iovaAllocations)).toBe(1);
    expect(m.metrics.get('dma.iova_syncs')).toBe(1);
    expect(sameBytes(deviceBytes(dev, map.dma), cpuBytes(dev, list))).toBe(true);
    const flushes = m.metrics.get(COUNTER.iotlbFlushes);
    dev.unmap(map);
    // Strict: one invalidation for the whole list.
    expect(m.metrics.get(COUNTER.iotlbFlushes)).toBe(flushes + 1);
    expectErrno(() => dmaToPhys(dev, map.dma.addressAt(0)), 'EFAULT');
  });

  it('uses a 2 MiB leaf when IOVA and phys share the 2 MiB offset', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME, { maxSegmentSize: 1n << 32n });
    const map = dev.map(PhyrList.fromRanges([[7n * GiB, 0x40_0000n]]), 'TO_DEVICE');
    expect(m.metrics.get('iommu.leaf_pte_writes.2M')).toBe(2);
    expect(m.metrics.get('iommu.leaf_pte_writes.4K')).toBe(0);
    dev.unmap(map);
  });

  it('falls back to per-range dma_map_phys when an interior range is not page aligned', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME);
    const list = PhyrList.fromRanges([
      [5n * GiB, 0x1000n],
      [6n * GiB + 0x100n, 0x100n],
    ]);
    fillPattern(dev, list);
    const map = dev.map(list, 'TO_DEVICE');
    expect(map.path).toBe('per-range');
    expect(map.fallbackReason).toMatch(/does not start on a 4K granule/);
    expect(map.segments.map((s) => s.kind)).toEqual(['iommu']);
    expect(m.metrics.get(COUNTER.iovaAllocations)).toBe(2);
    expect(sameBytes(deviceBytes(dev, map.dma), cpuBytes(dev, list))).toBe(true);
    dev.unmap(map);
  });

  it('the IOVA API functions compose by hand and try_alloc declines a direct device', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME);
    const state = dmaIovaTryAlloc(dev, 5n * GiB, 0x2000n)!;
    dmaIovaLink(dev, state, 5n * GiB, 0n, 0x1000n, 'TO_DEVICE');
    // A second range linked at an unaligned offset breaks the rules.
    expectErrno(() => dmaIovaLink(dev, state, 6n * GiB + 0x10n, 0x1000n, 0x100n, 'TO_DEVICE'), 'EIO');
    dmaIovaLink(dev, state, 6n * GiB, 0x1000n, 0x1000n, 'TO_DEVICE');
    dmaIovaSync(dev, state, 0n, 0x2000n);
    expect(dmaToPhys(dev, state.addr + 0x1000n)).toBe(6n * GiB);
    dmaIovaDestroy(dev, state, 0x2000n, 'TO_DEVICE');
    const direct = builtinMachine('two-socket-server', { iommu: false }).device(NVME);
    expect(dmaIovaTryAlloc(direct, 0n, 0x1000n)).toBeUndefined();
  });

  it('dma_iova_destroy after a partial link frees only the mapped length (dma-iommu.c __iommu_dma_iova_unlink)', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME);
    const iovad = dev.domain!.iovad!;
    // 64 KiB: 16 pages, an order-4 allocation; only the first 8 KiB get linked.
    const state = dmaIovaTryAlloc(dev, 5n * GiB, 0x10000n)!;
    dmaIovaLink(dev, state, 5n * GiB, 0n, 0x2000n, 'TO_DEVICE');
    const before = iovad.cachedCounts();
    dmaIovaDestroy(dev, state, 0x2000n, 'TO_DEVICE');
    // iommu_dma_free_iova gets the 8 KiB that were unmapped: free_iova_fast caches the allocation
    // under order 1 (2 pages), not order 4 (16 pages).
    const after = iovad.cachedCounts();
    expect(after[1]! - before[1]!).toBe(1);
    expect(after[4]! - before[4]!).toBe(0);
    // The whole 16-page range stays allocated in the tree while it sits in the order-1 cache.
    const pfn = Number(state.allocStart >> 12n);
    expect(iovad.findIova(pfn)).toEqual({ pfnLo: pfn, pfnHi: pfn + 15, reserved: false });
  });

  describe('dma_iova_link checks, in the order of dma-iommu.c (7.1)', () => {
    it('a link whose IOVA starts mid-granule is refused by iommu_map (EINVAL), not by a check of its own', () => {
      const m = builtinMachine('two-socket-server');
      const dev = m.device(NVME);
      const state = dmaIovaTryAlloc(dev, 5n * GiB, 0x3000n)!;
      dmaIovaLink(dev, state, 5n * GiB, 0n, 0x800n, 'TO_DEVICE');
      // phys is aligned, so iova_start_pad is 0 and the WARN does not fire; IOVA addr + 0x800 is not
      // on a 4K page, which __iommu_map refuses with EINVAL.
      expectErrno(() => dmaIovaLink(dev, state, 6n * GiB, 0x800n, 0x1000n, 'TO_DEVICE'), 'EINVAL');
      // A mid-granule phys at a non-zero offset is the WARN_ON_ONCE: EIO.
      expectErrno(() => dmaIovaLink(dev, state, 6n * GiB + 0x800n, 0x800n, 0x800n, 'TO_DEVICE'), 'EIO');
      dmaIovaDestroy(dev, state, 0x800n, 'TO_DEVICE');
    });

    it('no bounds check against the state size: the kernel maps what it is told', () => {
      const m = builtinMachine('two-socket-server');
      const dev = m.device(NVME);
      const state = dmaIovaTryAlloc(dev, 5n * GiB, 0x1800n)!; // a 0x2000 allocation
      dmaIovaLink(dev, state, 5n * GiB, 0n, 0x1000n, 'TO_DEVICE');
      dmaIovaLink(dev, state, 6n * GiB, 0x1000n, 0x1000n, 'TO_DEVICE'); // ends 0x800 past 0x1800
      expect(dmaToPhys(dev, state.addr + 0x1fffn)).toBe(6n * GiB + 0xfffn);
      dmaIovaDestroy(dev, state, 0x2000n, 'TO_DEVICE');
    });

    it('DMA_ATTR_REQUIRE_COHERENT: EOPNOTSUPP on a non-coherent device or after a bounce, EPERM instead of a bounce', () => {
      const m = builtinMachine('two-socket-server');
      const nonCoherent = m.device(NIC, { coherent: false });
      const s1 = dmaIovaTryAlloc(nonCoherent, 5n * GiB, 0x1000n)!;
      expectErrno(
        () => dmaIovaLink(nonCoherent, s1, 5n * GiB, 0n, 0x1000n, 'TO_DEVICE', { requireCoherent: true }),
        'EOPNOTSUPP',
      );
      dmaIovaDestroy(nonCoherent, s1, 0n, 'TO_DEVICE');
      const untrusted = m.device(NVME, { untrusted: true, minAlignMask: NVME_MIN_ALIGN });
      const s2 = dmaIovaTryAlloc(untrusted, 5n * GiB + 0x100n, 0x3000n)!;
      // An unaligned head would be bounced: with REQUIRE_COHERENT (or MMIO) it is EPERM instead.
      expectErrno(
        () =>
          dmaIovaLink(untrusted, s2, 5n * GiB + 0x100n, 0n, 0x1f00n, 'TO_DEVICE', { requireCoherent: true }),
        'EPERM',
      );
      expectErrno(
        () => dmaIovaLink(untrusted, s2, 5n * GiB + 0x100n, 0n, 0x1f00n, 'TO_DEVICE', { mmio: true }),
        'EPERM',
      );
      // Without the attr the head is bounced; a later REQUIRE_COHERENT link is then EOPNOTSUPP.
      dmaIovaLink(untrusted, s2, 5n * GiB + 0x100n, 0n, 0x1f00n, 'TO_DEVICE');
      expect(s2.usedSwiotlb).toBe(true);
      expectErrno(
        () => dmaIovaLink(untrusted, s2, 6n * GiB, 0x1f00n, 0x1000n, 'TO_DEVICE', { requireCoherent: true }),
        'EOPNOTSUPP',
      );
      dmaIovaDestroy(untrusted, s2, 0x1f00n, 'TO_DEVICE');
    });
  });

  it('identity (passthrough) domain maps like dma-direct', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME, { passthrough: true });
    const map = dev.map(PhyrList.fromRanges([[5n * GiB, 0x1000n]]), 'TO_DEVICE');
    expect(map.fallbackReason).toMatch(/identity/);
    expect(map.dma.addressAt(0)).toBe(5n * GiB);
    dev.unmap(map);
  });

  it('lazy mode defers the invalidation to the flush queue', () => {
    const m = builtinMachine('two-socket-server', { strict: false });
    const dev = m.device(NVME);
    const map = dev.map(PhyrList.fromRanges([[5n * GiB, 0x1000n]]), 'TO_DEVICE');
    dmaToPhys(dev, map.dma.addressAt(0)); // fill the IOTLB
    const flushes = m.metrics.get(COUNTER.iotlbFlushes);
    dev.unmap(map);
    expect(m.metrics.get(COUNTER.iotlbFlushes)).toBe(flushes);
    // The stale IOTLB entry still reaches the old page.
    expect(dmaToPhys(dev, map.dma.addressAt(0))).toBe(5n * GiB);
    expect(m.metrics.get(COUNTER.iotlbStaleHits)).toBe(1);
    m.flushQueues();
    expect(m.metrics.get(COUNTER.iotlbFlushes)).toBe(flushes + 1);
    expectErrno(() => dmaToPhys(dev, map.dma.addressAt(0)), 'EFAULT');
  });

  it('an untrusted device bounces only the unaligned head and tail granules', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME, { untrusted: true, maxSegmentSize: 1n << 32n, minAlignMask: NVME_MIN_ALIGN });
    const list = PhyrList.fromRanges([[5n * GiB + 0xc00n, 0x2800n]]); // 0x400 head, 0x1000 middle, 0x1400 tail... ends at +0x3400
    fillPattern(dev, list);
    const map = dev.map(list, 'BIDIRECTIONAL');
    expect(map.path).toBe('iova');
    expect(map.segments[0]!.bouncedBytes).toBe(0x400n + 0x400n);
    expect(m.metrics.get(COUNTER.bounceBytes)).toBe(0x800);
    // The middle page is the original; the head is a bounce page with zeroed padding.
    expect(dmaToPhys(dev, map.dma.addressAt(0) + 0x400n)).toBe(5n * GiB + 0x1000n);
    expect(m.swiotlb!.contains(dmaToPhys(dev, map.dma.addressAt(0)))).toBe(true);
    expect(sameBytes(deviceBytes(dev, map.dma), cpuBytes(dev, list))).toBe(true);
    const padding = m.platform.bytes.read(dmaToPhys(dev, map.dma.addressAt(0)) - 0xc00n, 0xc00);
    expect(padding.every((b) => b === 0)).toBe(true);
    dev.unmap(map);
    expect(m.swiotlb!.usedSlots).toBe(0);
  });
});

describe('P2P', () => {
  it('bus address under a switch: no IOMMU mapping', () => {
    const m = builtinMachine('two-socket-server', { platform: { cmdline: SWITCH_P2P } });
    const nic = m.device(NIC);
    const pte = m.metrics.get(COUNTER.pteWrites);
    const map = nic.map(PhyrList.fromRanges([[GPU_BAR1, 0x1_0000n]]), 'FROM_DEVICE');
    expect(map.path).toBe('bus-address');
    expect(map.segments[0]!.p2p?.mapType).toBe('bus-address');
    expect(map.dma.addressAt(0)).toBe(GPU_BAR1); // host bridge offset 0 on this machine
    expect(m.metrics.get(COUNTER.pteWrites)).toBe(pte);
    nic.unmap(map);
  });

  it('bus address subtracts the host bridge offset (ARM high window)', () => {
    const m = builtinMachine('arm-server');
    const nic = m.device('0001:01:00.0');
    const bar = 0x4100_0000_0000n;
    const map = nic.map(PhyrList.fromRanges([[bar, 0x1000n]]), 'FROM_DEVICE');
    expect(map.dma.addressAt(0)).toBe(bar - 0x4000_0000_0000n);
    nic.unmap(map);
  });

  it('through the host bridge: mapped via the IOMMU like MMIO, never bounced', () => {
    const m = builtinMachine('two-socket-server');
    const nic = m.device(NIC);
    const map = nic.map(PhyrList.fromRanges([[GPU_BAR1 + 0x10n, 0x100n]]), 'BIDIRECTIONAL');
    expect(map.segments[0]!.kind).toBe('through-host-bridge');
    expect(m.metrics.get(COUNTER.bounceBytes)).toBe(0);
    expect(dmaToPhys(nic, map.dma.addressAt(0))).toBe(GPU_BAR1 + 0x10n);
    nic.unmap(map);
  });

  it('the IOVA-API bounce keeps the bits of the device min_align_mask, not just the granule offset', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME, { untrusted: true, maxSegmentSize: 1n << 32n, minAlignMask: 0x1fffn });
    const phys = 5n * GiB + 0x1c00n; // bit 12 set: min_align_mask 0x1fff asks the slot to match it
    const list = PhyrList.fromRanges([[phys, 0x400n]]);
    fillPattern(dev, list);
    const map = dev.map(list, 'TO_DEVICE');
    expect(map.path).toBe('iova');
    const bounce = dmaToPhys(dev, map.dma.addressAt(0));
    expect(m.swiotlb!.contains(bounce)).toBe(true);
    expect(bounce & 0x1fffn).toBe(phys & 0x1fffn);
    expect(sameBytes(deviceBytes(dev, map.dma), cpuBytes(dev, list))).toBe(true);
    dev.unmap(map);
    expect(m.swiotlb!.usedSlots).toBe(0);
  });

  it('an untrusted device without min_align_mask cannot link an unaligned head: iommu_map EINVAL, nothing left behind', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME, { untrusted: true, maxSegmentSize: 1n << 32n });
    // The granule-aligned bounce would be linked 0x123 bytes below a granule (dma-iommu.c
    // iommu_dma_iova_bounce_and_link), which iommu_map refuses.
    expectErrno(() => dev.map(PhyrList.fromRanges([[5n * GiB + 0x123n, 0x2000n]]), 'TO_DEVICE'), 'EINVAL');
    expect(m.swiotlb!.usedSlots).toBe(0);
    expect(dev.domain!.pageTable!.countLeaves().size).toBe(0);
    // A granule-aligned start needs no head bounce; the tail bounce starts on a granule.
    const map = dev.map(PhyrList.fromRanges([[5n * GiB, 0x1400n]]), 'TO_DEVICE');
    expect(map.segments[0]!.bouncedBytes).toBe(0x400n);
    dev.unmap(map);
    expect(m.swiotlb!.usedSlots).toBe(0);
  });

  it('an untrusted device cannot map unaligned MMIO (it would need a bounce): EPERM', () => {
    const m = builtinMachine('two-socket-server');
    const nic = m.device(NIC, { untrusted: true });
    expectErrno(() => nic.map(PhyrList.fromRanges([[GPU_BAR1 + 0x10n, 0x100n]]), 'TO_DEVICE'), 'EPERM');
    const ok = nic.map(PhyrList.fromRanges([[GPU_BAR1, 0x1000n]]), 'TO_DEVICE');
    expect(m.metrics.get(COUNTER.bounceBytes)).toBe(0);
    nic.unmap(ok);
  });

  it('not supported is EREMOTEIO with the p2pdma reason', () => {
    const m = builtinMachine('laptop');
    const nvme = m.device('0000:01:00.0');
    try {
      nvme.map(PhyrList.fromRanges([[0x200_0000_0000n, 0x1000n]]), 'TO_DEVICE');
      throw new Error('mapped');
    } catch (error) {
      expect(isPhysrError(error, 'EREMOTEIO')).toBe(true);
      expect(String((error as Error).message)).toMatch(/P2PDMA whitelist/);
    }
    expect(m.metrics.get(COUNTER.iovaAllocations)).toBe(0);
  });

  it('a mixed list is split into segments by kind, in order', () => {
    const m = builtinMachine('two-socket-server', { platform: { cmdline: SWITCH_P2P } });
    const nic = m.device(NIC, { maxSegmentSize: 1n << 32n });
    const list = PhyrList.fromRanges([
      [5n * GiB, 0x2000n],
      [5n * GiB + 0x10_0000n, 0x1000n],
      [GPU_BAR1, 0x4000n],
      [6n * GiB, 0x1000n],
    ]);
    const map = nic.map(list, 'TO_DEVICE');
    expect(map.path).toBe('mixed');
    expect(map.segments.map((s) => [s.kind, s.phys.count, s.dma.count])).toEqual([
      ['iova', 2, 1],
      ['bus-address', 1, 1],
      ['iova', 1, 1],
    ]);
    expect(m.metrics.get(COUNTER.iovaAllocations)).toBe(2);
    nic.unmap(map);
  });

  it('a failure part-way leaves nothing mapped', () => {
    const m = builtinMachine('laptop');
    const nvme = m.device('0000:01:00.0');
    const list = PhyrList.fromRanges([
      [5n * GiB, 0x2000n],
      [0x200_0000_0000n, 0x1000n],
    ]);
    expectErrno(() => nvme.map(list, 'TO_DEVICE'), 'EREMOTEIO');
    expect(nvme.domain!.pageTable!.countLeaves().size).toBe(0);
  });
});

describe('dma_map_phys', () => {
  it('DMA_ATTR_MMIO maps a BAR without struct pages and without bouncing', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const nic = m.device(NIC, { dmaMask: 64 });
    const map = mapPhys(nic, 0x8000_0000n, 0x1000n, 'TO_DEVICE', { mmio: true });
    expect(dmaMappingError(map)).toBe(false);
    expect(map.dma.addressAt(0)).toBe(0x8000_0000n);
    unmapPhys(nic, map.dma.addressAt(0), 0x1000n, 'TO_DEVICE');
    expect(m.debug.findings).toEqual([]);
  });

  it('refuses to bounce MMIO (forced bounce) and needs MMIO for pageless memory', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const nic = m.device(NIC, { forceBounce: true });
    expectErrno(() => mapPhys(nic, 0x8000_0000n, 0x1000n, 'TO_DEVICE', { mmio: true }), 'EIO');
    expectErrno(() => mapPhys(nic, 0x8000_0000n, 0x1000n, 'TO_DEVICE'), 'EINVAL');
  });

  it('through the IOMMU gets its own IOVA', () => {
    const m = builtinMachine('two-socket-server');
    const nic = m.device(NIC);
    const map = mapPhys(nic, GPU_BAR1 + 0x123n, 0x10n, 'BIDIRECTIONAL', { mmio: true });
    expect(dmaToPhys(nic, map.dma.addressAt(0))).toBe(GPU_BAR1 + 0x123n);
    expect(m.metrics.get(COUNTER.iovaAllocations)).toBe(1);
    dmaMappingError(map);
    nic.unmap(map);
    expect(m.debug.findings).toEqual([]);
  });
});

describe('dma_max_mapping_size', () => {
  it('an addressing-limited direct device gets ranges cut to what swiotlb can bounce', async () => {
    const { dmaMaxMappingSize } = await import('../../src/dma/index.ts');
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NVME, { dmaMask: 32, maxSegmentSize: 1n << 32n });
    expect(dmaMaxMappingSize(dev)).toBe(0x4_0000n);
    const list = PhyrList.fromRanges([[5n * GiB, 0x20_0000n]]);
    fillPattern(dev, list);
    const map = dev.map(list, 'TO_DEVICE');
    // Eight 256 KiB bounces (they may sit back to back in the pool, so the DMA ranges can merge).
    expect(map.pieces.length).toBe(8);
    expect(map.pieces.every((p) => p.kind === 'bounce' && p.size === 0x4_0000n)).toBe(true);
    expect(sameBytes(deviceBytes(dev, map.dma), cpuBytes(dev, list))).toBe(true);
    dev.unmap(map);
    const wide = m.device('0000:04:00.0', { maxSegmentSize: 1n << 32n });
    expect(dmaMaxMappingSize(wide)).toBe((1n << 64n) - 1n);
  });
});

describe('dma-iommu corner rules', () => {
  it('an untrusted device with no swiotlb cannot map an unaligned range (no whole-page exposure)', () => {
    // dma-iommu.c: the bounce is required (dev_use_swiotlb); iommu_dma_map_swiotlb fails when swiotlb
    // is inactive, so dma_iova_link is ENOMEM and iommu_dma_map_phys a mapping error.
    const m = builtinMachine('two-socket-server', { platform: { swiotlbBytes: 0n } });
    const dev = m.device(NVME, { untrusted: true, maxSegmentSize: 1n << 32n, minAlignMask: NVME_MIN_ALIGN });
    expect(m.swiotlb).toBeUndefined();
    expectErrno(() => dev.map(PhyrList.fromRanges([[5n * GiB + 0xc00n, 0x2800n]]), 'TO_DEVICE'), 'ENOMEM');
    expectErrno(() => mapPhys(dev, 5n * GiB + 0x10n, 0x100n, 'TO_DEVICE'), 'EIO');
    expect(dev.domain!.pageTable!.countLeaves().size).toBe(0);
    // Granule-aligned ranges need no bounce and still map.
    const ok = dev.map(PhyrList.fromRanges([[5n * GiB, 0x2000n]]), 'TO_DEVICE');
    expect(ok.path).toBe('iova');
    dev.unmap(ok);
  });

  it('a link whose tail bounce fails undoes its head bounce and mapping (iommu_dma_iova_link_swiotlb)', () => {
    // Two 2 KiB slots: the head granule's bounce takes both, so the tail's bounce finds none.
    const m = builtinMachine('two-socket-server', { platform: { swiotlbBytes: 0x1000n } });
    const dev = m.device(NVME, { untrusted: true, maxSegmentSize: 1n << 32n, minAlignMask: NVME_MIN_ALIGN });
    const list = PhyrList.fromRanges([[5n * GiB + 0x400n, 0x2000n]]); // head 0xc00, middle 0x1000, tail 0x400
    expectErrno(() => dev.map(list, 'FROM_DEVICE'), 'ENOMEM');
    expect(m.swiotlb!.usedSlots).toBe(0);
    expect(dev.domain!.pageTable!.countLeaves().size).toBe(0);
    // Nothing stale is left in the table: a later mapping of the same IOVA space succeeds.
    const ok = dev.map(PhyrList.fromRanges([[5n * GiB, 0x3000n]]), 'FROM_DEVICE');
    dev.unmap(ok);
  });

  it('the below-4 GiB attempt does not flush the IOVA caches; on failure the device goes wide for good', () => {
    // iommu_dma_alloc_iova: alloc_iova_fast(..., DMA_BIT_MASK(32) >> shift, false), then the full mask.
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NIC);
    const domain = dev.domain!;
    const iovad = domain.iovad!;
    iovad.reserveIova(1, 0xf_fffd); // leave pfns 0xffffe and 0xfffff free below 4 GiB
    const a = iommuDmaAllocIova(dev, domain, 0x1000n);
    const b = iommuDmaAllocIova(dev, domain, 0x1000n);
    expect([a, b].every((x) => x < 1n << 32n)).toBe(true);
    domain.freeIova(a, 0x1000n);
    domain.freeIova(b, 0x1000n); // both wait in the order-0 rcache, still allocated in the tree
    const wide = iommuDmaAllocIova(dev, domain, 0x2000n);
    expect(wide >= 1n << 32n).toBe(true);
    expect(dev.pci32bitWorkaround).toBe(false);
    expect(iovad.cachedCounts()[0]).toBe(2);
  });
  it('a lazy domain unwinds a partly linked IOVA without an IOTLB flush: the IOVA waits in the queue', () => {
    // dma_iova_destroy → __iommu_dma_iova_unlink(free_iova): with a flush queue the gather is queued,
    // never synced, whatever the mapped length.
    const m = builtinMachine('two-socket-server', { strict: false, platform: { swiotlbBytes: 0x1000n } });
    const dev = m.device(NVME, { untrusted: true, maxSegmentSize: 1n << 32n, minAlignMask: NVME_MIN_ALIGN });
    const list = PhyrList.fromRanges([
      [5n * GiB + 0x400n, 0xc00n], // its head bounce takes both slots
      [6n * GiB, 0x400n], // its tail bounce finds none
    ]);
    const flushes = m.metrics.get(COUNTER.iotlbFlushes);
    expectErrno(() => dev.map(list, 'TO_DEVICE'), 'ENOMEM');
    expect(m.metrics.get(COUNTER.iotlbFlushes)).toBe(flushes);
    expect(dev.domain!.queuedIovas).toBe(1);
    expect(dev.domain!.pageTable!.countLeaves().size).toBe(0);
    expect(m.swiotlb!.usedSlots).toBe(0);
  });
});
