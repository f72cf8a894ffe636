import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import {
  COUNTER,
  metricsDelta,
  type PhyrList,
  PhyrListBuilder,
  phyrListToSgTable,
} from '../../src/core/index.ts';
import { builtinMachine } from '../../src/dma/index.ts';
import { cpuBytes, deviceBytes, dmaToPhys, fillPattern, folioList, sameBytes } from './helpers.ts';

/** Booted so the PCIe switch routes GPU<->NIC peer traffic (Linux sets ACS redirect with an IOMMU). */
const SWITCH_P2P = 'pci=disable_acs_redir=0000:02:00.0;0000:02:01.0';

const NIC = '0000:04:00.0';
const GiB = 1n << 30n;

describe('the same workload through physr and through the legacy sg path', () => {
  it('gives identical DMA-visible bytes and costs that differ only in metadata', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NIC, { maxSegmentSize: 0xffff_f000n });
    // Fragment first so folios are not all contiguous.
    m.platform.folios.fragment(7, { fraction: 0.5 });
    const list = folioList(dev, [0, 9, 0, 3, 9, 0, 1, 9, 4, 0]);
    fillPattern(dev, list);
    const expected = cpuBytes(dev, list);

    // Table pages a map makes stay after its unmap unless the unmap covers them (generic_pt
    // iommu_pt.h __unmap_range), so one warm-up map lets both designs find the same tables.
    dev.unmap(dev.map(list, 'TO_DEVICE'));
    const before = m.metrics.snapshot();
    const map = dev.map(list, 'TO_DEVICE');
    expect(sameBytes(deviceBytes(dev, map.dma), expected)).toBe(true);
    dev.unmap(map);
    const physr = metricsDelta(before, m.metrics.snapshot());

    const sgt = phyrListToSgTable(list);
    const middle = m.metrics.snapshot();
    const nents = dev.mapSg(sgt, 'TO_DEVICE');
    const sgDma = sgt.toDmaRangeList();
    expect(sameBytes(deviceBytes(dev, sgDma), expected)).toBe(true);
    dev.unmapSg(sgt, 'TO_DEVICE');
    const legacy = metricsDelta(middle, m.metrics.snapshot());

    // Both merge into one contiguous IOVA: one DMA segment each.
    expect(map.dma.count).toBe(1);
    expect(nents).toBe(1);
    expect(physr[COUNTER.iovaAllocations]).toBe(1);
    expect(legacy[COUNTER.iovaAllocations]).toBe(1);
    expect(physr[COUNTER.pteWrites]).toBe(legacy[COUNTER.pteWrites]);
    expect(physr[COUNTER.iotlbFlushes]).toBe(legacy[COUNTER.iotlbFlushes]);
    expect(physr[COUNTER.bounceBytes] ?? 0).toBe(0);
    expect(legacy[COUNTER.bounceBytes] ?? 0).toBe(0);
    // Where the designs differ: the map counts the DmaRangeList it builds (16 B a range; the PhyrList
    // is counted by whoever built it) vs the whole table dma_map_sg fills (32 B a scatterlist + 16 B).
    const physrBytes = list.metadataBytes + physr[COUNTER.physrMetadataBytes]!;
    const sgBytes = legacy[COUNTER.sgMetadataBytes]!;
    expect(physr[COUNTER.physrMetadataBytes]).toBe(16 * map.dma.count);
    expect(sgBytes).toBe(32 * sgt.slotCount + 16);
    expect(physrBytes).toBeLessThan(sgBytes);
  });

  it('a 32-bit direct device bounces the same bytes both ways', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NIC, { dmaMask: 32 });
    const list = folioList(dev, [0, 1, 0, 2]);
    fillPattern(dev, list);
    const expected = cpuBytes(dev, list);
    // Table pages a map makes stay after its unmap unless the unmap covers them (generic_pt
    // iommu_pt.h __unmap_range), so one warm-up map lets both designs find the same tables.
    dev.unmap(dev.map(list, 'TO_DEVICE'));
    const before = m.metrics.snapshot();
    const map = dev.map(list, 'TO_DEVICE');
    expect(sameBytes(deviceBytes(dev, map.dma), expected)).toBe(true);
    dev.unmap(map);
    const mid = m.metrics.snapshot();
    const sgt = phyrListToSgTable(list);
    dev.mapSg(sgt, 'TO_DEVICE');
    expect(sameBytes(deviceBytes(dev, sgt.toDmaRangeList()), expected)).toBe(true);
    dev.unmapSg(sgt, 'TO_DEVICE');
    const after = m.metrics.snapshot();
    expect(metricsDelta(before, mid)[COUNTER.bounceBytes]).toBe(Number(list.totalLength));
    expect(metricsDelta(mid, after)[COUNTER.bounceBytes]).toBe(Number(list.totalLength));
  });

  it('P2P pages in an sg list: bus-address entries stay out of the IOVA', () => {
    const m = builtinMachine('two-socket-server', { platform: { cmdline: SWITCH_P2P } });
    const dev = m.device(NIC, { maxSegmentSize: 0xffff_f000n });
    const bar = 0x200_0000_0000n;
    const ram = folioList(dev, [0, 0]);
    const b = new PhyrListBuilder({ merge: false });
    b.appendList(ram);
    b.append(bar, 0x2000n);
    const list = b.build();
    const sgt = phyrListToSgTable(list);
    const nents = dev.mapSg(sgt, 'FROM_DEVICE');
    const dma = sgt.toDmaRangeList();
    expect(dma.addressAt(nents - 1)).toBe(bar);
    expect(sgt.dmaFlagsAt(sgt.entrySlots()[nents - 1]!)).toBe(1);
    dev.unmapSg(sgt, 'FROM_DEVICE');
  });
});

/** The physical address of byte `offset` of a list. */
function physAt(list: PhyrList, offset: bigint): bigint {
  let left = offset;
  for (const r of list) {
    if (left < r.length) return r.address + left;
    left -= r.length;
  }
  throw new Error('offset past the list');
}

const rangeArb = fc.record({
  gib: fc.integer({ min: 4, max: 60 }),
  page: fc.integer({ min: 0, max: 4000 }),
  offset: fc.integer({ min: 0, max: 4095 }),
  length: fc.integer({ min: 1, max: 5 * 4096 }),
});

describe('property: every DMA byte translates back to its physical byte', () => {
  test.prop([fc.array(rangeArb, { minLength: 1, maxLength: 8 }), fc.boolean(), fc.boolean()], {
    numRuns: 60,
  })('for random PhyrLists through the IOMMU (IOVA or per-range fallback)', (ranges, untrusted, aligned) => {
    const m = builtinMachine('two-socket-server');
    // An untrusted device bounced through the IOVA API needs a min_align_mask that keeps the granule
    // offset (dma-iommu links the bounce at the original's offset), as NVMe sets.
    const dev = m.device(NIC, {
      untrusted,
      maxSegmentSize: 0x3000n,
      ...(untrusted ? { minAlignMask: 0xfffn } : {}),
    });
    const b = new PhyrListBuilder({ merge: false });
    let i = 0;
    for (const r of ranges) {
      // Distinct 4 MiB slots so ranges never overlap.
      const base = BigInt(r.gib) * GiB + BigInt(r.page) * 0x40_0000n + BigInt(i++) * 0x10_0000n;
      b.append(
        aligned ? base : base + BigInt(r.offset),
        aligned ? BigInt(1 + (r.length % 8)) * 4096n : BigInt(r.length),
      );
    }
    const list = b.build();
    fillPattern(dev, list, 0x5a);
    const map = dev.map(list, 'BIDIRECTIONAL');
    expect(map.dma.totalLength).toBe(list.totalLength);
    let offset = 0n;
    map.dma.forEachRange((address, length) => {
      for (const k of [0n, length - 1n, length >> 1n]) {
        const phys = dmaToPhys(dev, address + k);
        const want = physAt(list, offset + k);
        const swiotlb = m.swiotlb!;
        if (swiotlb.contains(phys)) {
          // A bounce slot holds a copy of the same byte.
          expect(m.platform.bytes.read(phys, 1)).toEqual(m.platform.bytes.read(want, 1));
        } else {
          expect(phys).toBe(want);
        }
      }
      offset += length;
    });
    expect(sameBytes(deviceBytes(dev, map.dma), cpuBytes(dev, list))).toBe(true);
    dev.unmap(map);
    expect(m.swiotlb!.usedSlots).toBe(0);
    expect(dev.domain!.pageTable!.countLeaves().size).toBe(0);
  });
});
