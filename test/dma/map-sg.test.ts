import { describe, expect, it } from 'vitest';
import {
  COUNTER,
  PhyrList,
  phyrListToSgTable,
  SG_DMA_BUS_ADDRESS,
  SG_DMA_SWIOTLB,
} from '../../src/core/index.ts';
import { builtinMachine, dmaMappingError, dmaSyncSg, mapPhys, sgMappedBy } from '../../src/dma/index.ts';
import { expectErrno } from '../errno.ts';
import { cpuBytes, deviceBytes, fillPattern, sameBytes } from './helpers.ts';

/** Booted so the PCIe switch routes GPU<->NIC peer traffic (Linux sets ACS redirect with an IOMMU). */
const SWITCH_P2P = 'pci=disable_acs_redir=0000:02:00.0;0000:02:01.0';

const GiB = 1n << 30n;
const NVME = '0000:06:00.0';

describe('legacy dma_map_sg', () => {
  it('__finalise_sg merges page-aligned entries up to max_segment_size and writes nents', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME, { maxSegmentSize: 0x3000n });
    const list = PhyrList.fromRanges([
      [5n * GiB, 0x1000n],
      [6n * GiB, 0x1000n],
      [7n * GiB, 0x1000n],
      [8n * GiB, 0x1000n],
      [9n * GiB + 0x200n, 0x100n], // starts mid-page: a new segment
    ]);
    const sgt = phyrListToSgTable(list);
    expect(dev.mapSg(sgt, 'TO_DEVICE')).toBe(3);
    expect(sgt.nents).toBe(3);
    expect(
      sgt
        .toDmaRangeList()
        .toArray()
        .map((r) => r.length),
    ).toEqual([0x3000n, 0x1000n, 0x100n]);
    expect(m.metrics.get(COUNTER.iovaAllocations)).toBe(1);
    expect(sgMappedBy(sgt)).toBe(dev);
    fillPattern(dev, list);
    expect(sameBytes(deviceBytes(dev, sgt.toDmaRangeList()), cpuBytes(dev, list))).toBe(true);
    dev.unmapSg(sgt, 'TO_DEVICE');
    expect(sgMappedBy(sgt)).toBeUndefined();
    expect(dev.domain!.pageTable!.countLeaves().size).toBe(0);
    expect(m.debug.findings).toEqual([]);
  });

  it('a direction other than TO_DEVICE, FROM_DEVICE or BIDIRECTIONAL is refused before anything is mapped (kernel/dma/mapping.c valid_dma_direction)', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME);
    const sgt = phyrListToSgTable(PhyrList.fromRanges([[5n * GiB, 0x1000n]]));
    expectErrno(() => dev.mapSg(sgt, 'NONE' as 'TO_DEVICE'), 'EINVAL', /DMA direction NONE is not/);
    expect(sgMappedBy(sgt)).toBeUndefined();
    expect(m.metrics.get(COUNTER.iovaAllocations)).toBe(0);
  });

  it('an untrusted device maps entry by entry and bounces the unaligned ones', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME, { untrusted: true });
    const list = PhyrList.fromRanges([
      [5n * GiB, 0x1000n],
      [6n * GiB + 0x80n, 0x100n],
    ]);
    fillPattern(dev, list);
    const sgt = phyrListToSgTable(list);
    expect(dev.mapSg(sgt, 'BIDIRECTIONAL')).toBe(2);
    const slots = sgt.entrySlots();
    expect(sgt.dmaFlagsAt(slots[0]!)).toBe(0);
    expect(sgt.dmaFlagsAt(slots[1]!)).toBe(SG_DMA_SWIOTLB);
    expect(m.metrics.get(COUNTER.iovaAllocations)).toBe(2);
    expect(m.metrics.get(COUNTER.bounceBytes)).toBe(0x100);
    expect(sameBytes(deviceBytes(dev, sgt.toDmaRangeList()), cpuBytes(dev, list))).toBe(true);
    dmaSyncSg(dev, sgt, 'BIDIRECTIONAL', true);
    dev.unmapSg(sgt, 'BIDIRECTIONAL');
    expect(m.swiotlb!.usedSlots).toBe(0);
  });

  it('refuses BAR memory without struct pages and unsupported P2P', () => {
    const m = builtinMachine('laptop');
    const dev = m.device('0000:01:00.0');
    // The iGPU's BAR0 is not prefetchable: not published, no struct pages.
    expect(() =>
      dev.mapSg(phyrListToSgTable(PhyrList.fromRanges([[0x8000_0000n, 0x1000n]])), 'TO_DEVICE'),
    ).toThrow(/without struct pages/);
    expect(() =>
      dev.mapSg(phyrListToSgTable(PhyrList.fromRanges([[0x200_0000_0000n, 0x1000n]])), 'TO_DEVICE'),
    ).toThrow(/P2PDMA whitelist/);
    expect(m.metrics.get(COUNTER.iovaAllocations)).toBe(0);
  });

  it('a non-coherent device counts cache maintenance on both paths', () => {
    const m = builtinMachine('arm-server', { iommu: false });
    const dev = m.device('0000:01:00.0', { coherent: false });
    const list = PhyrList.fromRanges([[0x80_0000_0000n, 0x2000n]]);
    const map = dev.map(list, 'FROM_DEVICE');
    dev.unmap(map);
    const physr = m.metrics.get('dma.cache_sync_bytes');
    expect(physr).toBe(0x4000); // for_device at map, for_cpu at unmap
    const sgt = phyrListToSgTable(list);
    dev.mapSg(sgt, 'FROM_DEVICE');
    dev.unmapSg(sgt, 'FROM_DEVICE');
    expect(m.metrics.get('dma.cache_sync_bytes')).toBe(2 * physr);
    // MMIO is never cache-maintained.
    const bar = mapPhys(dev, 0x200_0000_0000n, 0x1000n, 'TO_DEVICE', { mmio: true });
    dmaMappingError(bar);
    dev.unmap(bar);
    expect(m.metrics.get('dma.cache_sync_bytes')).toBe(2 * physr);
  });

  it('dma-iommu map_sg cache maintenance covers the entries, not their granule padding', () => {
    // iommu_dma_sync_sg_for_device / _for_cpu run over each entry's own sg_phys and length.
    const m = builtinMachine('arm-server');
    const dev = m.device('0000:01:00.0', { coherent: false });
    expect(dev.usesIommu).toBe(true);
    const sgt = phyrListToSgTable(
      PhyrList.fromRanges([
        [0x80_0000_0200n, 0x100n],
        [0x80_1000_0000n, 0x1800n],
      ]),
    );
    dev.mapSg(sgt, 'FROM_DEVICE');
    expect(m.metrics.get('dma.cache_sync_bytes')).toBe(0x1900);
    dev.unmapSg(sgt, 'FROM_DEVICE');
    expect(m.metrics.get('dma.cache_sync_bytes')).toBe(2 * 0x1900);
  });

  it('iommu_map_sg does not coalesce host entries across a bus-address entry', () => {
    // iommu.c iommu_map_sg: the contiguity test runs before a bus-address entry is skipped, so the
    // run before it is mapped on its own; here two 1 MiB runs of 4K leaves, not one 2M leaf.
    const m = builtinMachine('two-socket-server', { platform: { cmdline: SWITCH_P2P } });
    const dev = m.device('0000:04:00.0', { maxSegmentSize: 0xffff_f000n });
    const MiB = 1n << 20n;
    const sgt = phyrListToSgTable(
      PhyrList.fromRanges([
        [5n * GiB, MiB],
        [0x200_0000_0000n, 0x1000n],
        [5n * GiB + MiB, MiB],
      ]),
    );
    const leaves = m.metrics.get('iommu.leaf_pte_writes');
    dev.mapSg(sgt, 'TO_DEVICE');
    expect(m.metrics.get('iommu.leaf_pte_writes') - leaves).toBe(512);
    expect(dev.domain!.pageTable!.countLeaves().get(0x1000n)).toBe(512);
    dev.unmapSg(sgt, 'TO_DEVICE');
  });

  it("a bus-address entry's DMA length is the FIRST entry's sg->length (iommu_dma_map_sg: sg_dma_len(s) = sg->length)", () => {
    // dma-iommu.c iommu_dma_map_sg, case PCI_P2PDMA_MAP_BUS_ADDR, reads `sg` (the list head), not
    // `s`. By then a host head entry's length is its granule-aligned IOVA length. The switch's
    // redirect is cleared as a user would (pci=disable_acs_redir=), so the BAR is a bus address.
    const m = builtinMachine('two-socket-server', { platform: { cmdline: SWITCH_P2P } });
    const dev = m.device('0000:04:00.0');
    const BAR = 0x200_0000_0000n;
    const hostFirst = phyrListToSgTable(
      PhyrList.fromRanges([
        [5n * GiB + 0x10n, 0x100n],
        [BAR, 0x2000n],
      ]),
    );
    dev.mapSg(hostFirst, 'TO_DEVICE');
    const slots = hostFirst.entrySlots();
    expect(hostFirst.nents).toBe(2);
    expect(hostFirst.dmaLengthAt(slots[0]!)).toBe(0x100);
    expect(hostFirst.dmaAddressAt(slots[1]!)).toBe(BAR); // bus offset 0 on this host bridge
    expect(hostFirst.dmaLengthAt(slots[1]!)).toBe(0x1000); // iova_align(0x100 + 0x10), not 0x2000
    dev.unmapSg(hostFirst, 'TO_DEVICE');
    // A bus-address head keeps its own length, and a later bus-address entry copies it.
    const busFirst = phyrListToSgTable(
      PhyrList.fromRanges([
        [BAR, 0x3000n],
        [BAR + 0x10_0000n, 0x1000n],
      ]),
    );
    dev.mapSg(busFirst, 'TO_DEVICE');
    const busSlots = busFirst.entrySlots();
    expect(busFirst.dmaLengthAt(busSlots[0]!)).toBe(0x3000);
    expect(busFirst.dmaAddressAt(busSlots[1]!)).toBe(BAR + 0x10_0000n);
    expect(busFirst.dmaLengthAt(busSlots[1]!)).toBe(0x3000);
    dev.unmapSg(busFirst, 'TO_DEVICE');
  });

  it('an untrusted device maps every entry, peer memory too, through iommu_dma_map_phys (iommu_dma_map_sg_swiotlb)', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device('0000:04:00.0', { untrusted: true });
    const BAR = 0x200_0000_0000n;
    const sgt = phyrListToSgTable(
      PhyrList.fromRanges([
        [5n * GiB, 0x1000n],
        [BAR, 0x1000n],
      ]),
    );
    dev.mapSg(sgt, 'TO_DEVICE');
    const slots = sgt.entrySlots();
    // No bus address: the BAR page got its own IOVA, and the IOMMU translates it to the BAR.
    expect(sgt.dmaFlagsAt(slots[1]!) & SG_DMA_BUS_ADDRESS).toBe(0);
    expect(sgt.dmaAddressAt(slots[1]!)).not.toBe(BAR);
    expect(dev.iommu!.translate(dev.id, sgt.dmaAddressAt(slots[1]!), 'read')).toBe(BAR);
    // One IOVA per entry: two allocations, not the merged path's one.
    expect(sgt.nents).toBe(2);
    expect(dev.domain!.pageTable!.countLeaves().get(0x1000n)).toBe(2);
    dev.unmapSg(sgt, 'TO_DEVICE');
  });

  it('iommu_dma_map_sg_swiotlb: a failing entry unmaps the earlier ones and the call is EIO', () => {
    const m = builtinMachine('two-socket-server', { platform: { swiotlbBytes: 0n } });
    const dev = m.device(NVME, { untrusted: true });
    // The second entry is unaligned and there is no swiotlb pool to bounce it.
    const sgt = phyrListToSgTable(
      PhyrList.fromRanges([
        [5n * GiB, 0x1000n],
        [6n * GiB + 0x10n, 0x100n],
      ]),
    );
    expectErrno(() => dev.mapSg(sgt, 'TO_DEVICE'), 'EIO', /sg entry 1/);
    expect(dev.domain!.pageTable!.countLeaves().size).toBe(0);
  });

  it('lazy mode: unmap_sg queues the IOVA and defers the flush', () => {
    const m = builtinMachine('two-socket-server', { strict: false });
    const dev = m.device(NVME);
    const sgt = phyrListToSgTable(PhyrList.fromRanges([[5n * GiB, 0x1000n]]));
    dev.mapSg(sgt, 'TO_DEVICE');
    const flushes = m.metrics.get(COUNTER.iotlbFlushes);
    dev.unmapSg(sgt, 'TO_DEVICE');
    expect(m.metrics.get(COUNTER.iotlbFlushes)).toBe(flushes);
    expect(dev.domain!.queuedIovas).toBe(1);
    m.advanceClock(10);
    expect(dev.domain!.queuedIovas).toBe(0);
    expect(m.metrics.get(COUNTER.iotlbFlushes)).toBe(flushes + 1);
  });
});
