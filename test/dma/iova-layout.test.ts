import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { COUNTER, type DmaRangeList, type PhyrList, PhyrListBuilder } from '../../src/core/index.ts';
import {
  builtinMachine,
  type DmaDevice,
  type DmaMapping,
  dmaSyncForCpu,
  largestUsablePageSize,
  linkedRunsOf,
  planAlignedLayout,
} from '../../src/dma/index.ts';
import { folioBytes, folioPhys } from '../../src/platform/index.ts';
import { propertyRuns } from '../thorough.ts';
import { cpuBytes, deviceBytes, deviceWrite, dmaToPhys, fillPattern, sameBytes } from './helpers.ts';

const GiB = 1n << 30n;
const MiB = 1n << 20n;
const SZ_2M = 2n * MiB;
const NIC = '0000:04:00.0';
const NVME = '0000:06:00.0';
const BIG_SEG = 0xffff_f000n;
const GPU_BAR1 = 0x200_0000_0000n;

/** The physical address of byte `offset` of a list (a simple reference walk). */
function physAt(list: PhyrList, offset: bigint): bigint {
  let at = 0n;
  let found = -1n;
  list.forEachRange((address, length) => {
    if (found < 0n && offset < at + length) found = address + (offset - at);
    at += length;
  });
  return found;
}

/** Every 4 KiB page (and last byte) of every DMA range translates to the list's byte at that offset. */
function expectSameTranslation(dev: DmaDevice, dma: DmaRangeList, list: PhyrList): void {
  // One assertion on the first page that translates wrongly (an expect per page is slow).
  let offset = 0n;
  let firstWrong: string | undefined;
  const check = (dmaAddress: bigint, at: bigint): void => {
    if (firstWrong !== undefined) return;
    const got = dmaToPhys(dev, dmaAddress);
    const want = physAt(list, at);
    if (got !== want)
      firstWrong = `dma ${dmaAddress.toString(16)} -> ${got.toString(16)}, want ${want.toString(16)}`;
  };
  dma.forEachRange((address, length) => {
    for (let k = 0n; k < length; k += 0x1000n) check(address + k, offset + k);
    check(address + length - 1n, offset + length - 1n);
    offset += length;
  });
  expect(firstWrong).toBeUndefined();
  expect(offset).toBe(list.totalLength);
}

function pteWritesOf(dev: DmaDevice, fn: () => DmaMapping): [DmaMapping, number] {
  const before = dev.machine.metrics.get(COUNTER.pteWrites);
  const mapping = fn();
  return [mapping, dev.machine.metrics.get(COUNTER.pteWrites) - before];
}

/** Leaf PTE writes of a map: all PTE writes less one table pointer per table page allocated. */
function leafWritesOf(dev: DmaDevice, fn: () => DmaMapping): [DmaMapping, number] {
  const metrics = dev.machine.metrics;
  const tables = metrics.get(COUNTER.tablePagesAllocated);
  const [mapping, writes] = pteWritesOf(dev, fn);
  return [mapping, writes - (metrics.get(COUNTER.tablePagesAllocated) - tables)];
}

/** A 4K folio first (so packing pushes everything after it off 2M alignment), then 2M folios. */
function listOf(ranges: readonly (readonly [bigint, bigint])[]): PhyrList {
  const b = new PhyrListBuilder({ merge: false });
  for (const [a, l] of ranges) b.append(a, l);
  return b.build();
}

const MIX = listOf([
  [5n * GiB + 0x3000n, 0x1000n],
  [5n * GiB + 4n * MiB, SZ_2M],
  [5n * GiB + 0x10_0000n, 0x4000n],
  [5n * GiB + 8n * MiB, SZ_2M],
  [5n * GiB + 12n * MiB, SZ_2M],
]);

describe('layout planning', () => {
  it('finds the largest page a range holds whole and aligned', () => {
    const sizes = [GiB, SZ_2M, 0x1000n];
    expect(largestUsablePageSize(SZ_2M, SZ_2M, sizes, 0x1000n)).toBe(SZ_2M);
    expect(largestUsablePageSize(SZ_2M + 0x1000n, SZ_2M, sizes, 0x1000n)).toBe(0x1000n);
    expect(largestUsablePageSize(0x1000n, 4n * MiB, sizes, 0x1000n)).toBe(SZ_2M);
    expect(largestUsablePageSize(0n, GiB, sizes, 0x1000n)).toBe(GiB);
  });

  it('keeps a mid-granule first range at offset 0 and aligns the rest', () => {
    const plan = planAlignedLayout(
      [
        { address: 0x1_0000_0200n, length: 0xe00n },
        { address: 0x2_0020_0000n, length: SZ_2M },
      ],
      0x200n,
      [GiB, SZ_2M, 0x1000n],
      0x1000n,
    );
    expect(plan.offsets).toEqual([0n, SZ_2M - 0x200n]);
    expect(plan.size).toBe(2n * SZ_2M - 0x200n);
  });

  it('merges linked stretches into gap-separated runs', () => {
    expect(
      linkedRunsOf([
        { offset: 0x3000n, size: 0x1000n },
        { offset: 0n, size: 0x1000n },
        { offset: 0x1000n, size: 0x1000n },
      ]),
    ).toEqual([
      { offset: 0n, size: 0x2000n },
      { offset: 0x3000n, size: 0x1000n },
    ]);
  });
});

describe('aligned IOVA layout', () => {
  it('maps the same bytes as packed, and the default is packed', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NIC, { maxSegmentSize: BIG_SEG });
    fillPattern(dev, MIX);
    const byDefault = dev.map(MIX, 'TO_DEVICE');
    const defaultDma = byDefault.dma.toArray();
    dev.unmap(byDefault);
    const packed = dev.map(MIX, 'TO_DEVICE', { layout: 'packed' });
    expect(packed.dma.toArray()).toEqual(defaultDma);
    expect(packed.dma.count).toBe(1);
    expectSameTranslation(dev, packed.dma, MIX);
    dev.unmap(packed);
    const aligned = dev.map(MIX, 'TO_DEVICE', { layout: 'aligned' });
    expect(aligned.path).toBe('iova');
    expect(aligned.dma.totalLength).toBe(MIX.totalLength);
    expectSameTranslation(dev, aligned.dma, MIX);
    expect(sameBytes(deviceBytes(dev, aligned.dma), cpuBytes(dev, MIX))).toBe(true);
    // The 2M folios sit 2M-aligned in the IOVA.
    for (const i of [1, 3, 4]) expect(aligned.pieces[i]!.dma % SZ_2M).toBe(0n);
    dev.unmap(aligned);
  });

  it('uses one 2M leaf per 2M-aligned folio (the minimum), packed needs 512 4K leaves each', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NIC, { maxSegmentSize: BIG_SEG });
    const list = listOf([
      [5n * GiB + 0x3000n, 0x1000n],
      [5n * GiB + 4n * MiB, SZ_2M],
      [5n * GiB + 8n * MiB, SZ_2M],
      [5n * GiB + 12n * MiB, SZ_2M],
    ]);
    const [packed, packedWrites] = leafWritesOf(dev, () => dev.map(list, 'BIDIRECTIONAL'));
    expect(packedWrites).toBe(1 + 3 * 512);
    dev.unmap(packed);
    const [aligned, alignedWrites] = leafWritesOf(dev, () =>
      dev.map(list, 'BIDIRECTIONAL', { layout: 'aligned' }),
    );
    expect(alignedWrites).toBe(1 + 3);
    expect(dev.domain!.pageTable!.countLeaves().get(SZ_2M)).toBe(3);
    // The trade-off: one gap after the 4K folio, so two DMA ranges instead of one.
    expect(aligned.dma.count).toBe(2);
    expect(aligned.dma.lengthAt(0)).toBe(0x1000n);
    expect(aligned.dma.lengthAt(1)).toBe(3n * SZ_2M);
    dev.unmap(aligned);
  });

  for (const strict of [true, false]) {
    it(`leaks nothing after unmap (${strict ? 'strict' : 'lazy'})`, () => {
      const m = builtinMachine('two-socket-server', { strict });
      const dev = m.device(NIC, { maxSegmentSize: BIG_SEG });
      const domain = dev.domain!;
      const iovas = domain.iovad!.ranges();
      // Tables the first round makes may stay (generic_pt frees only tables an unmap covers); later
      // rounds over the same IOVAs must not need more.
      let tables = 0;
      for (let round = 0; round < 3; round++) {
        const map = dev.map(MIX, 'FROM_DEVICE', { layout: 'aligned' });
        expect(map.dma.count).toBeGreaterThan(1);
        dev.unmap(map);
        if (round === 0) tables = domain.pageTable!.tablePages;
      }
      m.flushQueues();
      expect(domain.pageTable!.countLeaves().size).toBe(0);
      expect(domain.pageTable!.tablePages).toBe(tables);
      expect(domain.iovad!.ranges()).toEqual(iovas);
      expect(domain.queuedIovas).toBe(0);
      expect(m.metrics.get(COUNTER.dmaMaps)).toBe(m.metrics.get(COUNTER.dmaUnmaps));
    });
  }

  it('a link failing mid-run unlinks the runs already linked and frees the IOVA', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NIC, { untrusted: true, maxSegmentSize: BIG_SEG });
    const domain = dev.domain!;
    const iovas = domain.iovad!.ranges();
    // P2P through the host bridge is MMIO: the unaligned tail of the last range cannot be bounced.
    const list = listOf([
      [GPU_BAR1 + 0x1000n, 0x1000n],
      [GPU_BAR1 + 2n * SZ_2M, SZ_2M],
      [GPU_BAR1 + 4n * SZ_2M, 0x800n],
    ]);
    expect(() => dev.map(list, 'TO_DEVICE', { layout: 'aligned' })).toThrow(/cannot be bounced/);
    expect(domain.pageTable!.countLeaves().size).toBe(0);
    m.flushQueues();
    expect(domain.iovad!.ranges()).toEqual(iovas);
  });

  it('an untrusted device bounces the unaligned head, and sync copies it back across the gaps', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME, { untrusted: true, maxSegmentSize: BIG_SEG, minAlignMask: 0xfffn });
    const list = listOf([
      [5n * GiB + 0x3c00n, 0x400n],
      [5n * GiB + 4n * MiB, SZ_2M],
      [5n * GiB + 0x10_0000n, 0x1000n],
      [5n * GiB + 8n * MiB, SZ_2M],
    ]);
    const map = dev.map(list, 'FROM_DEVICE', { layout: 'aligned' });
    expect(map.segments[0]!.bouncedBytes).toBe(0x400n);
    expect(map.dma.count).toBe(3);
    const data = new Uint8Array(Number(list.totalLength));
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0xff;
    deviceWrite(dev, map, data);
    dmaSyncForCpu(map);
    expect(sameBytes(cpuBytes(dev, list), data)).toBe(true);
    dev.unmap(map);
    expect(m.swiotlb!.usedSlots).toBe(0);
    expect(dev.domain!.pageTable!.countLeaves().size).toBe(0);
  });

  // Each run fragments a 126 GiB platform (~0.1 s): more runs under PHYSR_THOROUGH=1.
  test.prop([fc.array(fc.constantFrom(0, 0, 2, 4, 9), { minLength: 1, maxLength: 10 }), fc.integer()], {
    numRuns: propertyRuns(20, 60),
  })('random folio mixes: aligned needs no more PTE writes, same bytes', (orders, seed) => {
    const m = builtinMachine('two-socket-server', { platform: { seed: seed >>> 0 } });
    const dev = m.device(NIC, { maxSegmentSize: BIG_SEG });
    const folios = m.platform.folios;
    folios.fragment(seed >>> 0, { fraction: 0.3 });
    const b = new PhyrListBuilder({ merge: true });
    for (const order of orders) {
      const folio = folios.allocFolio(order, { node: 1 });
      b.append(folioPhys(folio), folioBytes(folio));
    }
    const list = b.build();
    const [packed, packedWrites] = pteWritesOf(dev, () => dev.map(list, 'BIDIRECTIONAL'));
    expectSameTranslation(dev, packed.dma, list);
    dev.unmap(packed);
    const [aligned, alignedWrites] = pteWritesOf(dev, () =>
      dev.map(list, 'BIDIRECTIONAL', { layout: 'aligned' }),
    );
    expect(alignedWrites).toBeLessThanOrEqual(packedWrites);
    expect(aligned.dma.totalLength).toBe(list.totalLength);
    expectSameTranslation(dev, aligned.dma, list);
    dev.unmap(aligned);
    expect(dev.domain!.pageTable!.countLeaves().size).toBe(0);
  });
});
