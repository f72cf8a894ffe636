/**
 * The physr list map's edges (src/dma/map.ts over drivers/iommu/dma-iommu.c, Linux 7.1): a partial
 * sync of linked bounces, the unwind of a failed list, P2P runs in an IOVA, the per-range bounce
 * (iommu_dma_map_phys → iommu_dma_map_swiotlb) and the sync_single trace record.
 */
import { describe, expect, it } from 'vitest';
import { COUNTER, PhyrList } from '../../src/core/index.ts';
import { builtinMachine, dmaSyncForCpu, dmaSyncForDevice, mapPhys, unmapPhys } from '../../src/dma/index.ts';
import { expectErrno } from '../errno.ts';
import { cpuBytes, deviceWrite, fillPattern, traceOf } from './helpers.ts';

const GiB = 1n << 30n;
const NVME = '0000:06:00.0';
const NIC = '0000:04:00.0';
const GPU_BAR1 = 0x200_0000_0000n;

describe('partial sync of an untrusted mapping (iommu_dma_sync_single_for_cpu → swiotlb)', () => {
  it('copies back only the window, inside the bounced head and across into the bounced tail', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME, { untrusted: true, minAlignMask: 0xfffn, maxSegmentSize: 1n << 20n });
    // Bytes [0, 0xf00) sit in the bounced head granule, [0xf00, 0x1f00) are linked in place,
    // [0x1f00, 0x2000) sit in the bounced tail granule.
    const list = PhyrList.fromRanges([[5n * GiB + 0x100n, 0x2000n]]);
    fillPattern(dev, list);
    const before = cpuBytes(dev, list);
    const map = dev.map(list, 'FROM_DEVICE');
    expect(map.segments[0]!.bouncedBytes).toBe(0x1000n);
    // A pattern that differs between offsets a granule apart, so bytes copied from the wrong place show.
    const data = Uint8Array.from({ length: 0x2000 }, (_, i) => (i * 7 + (i >> 8) * 13 + 3) & 0xff);
    deviceWrite(dev, map, data);
    dmaSyncForCpu(map, 0x200n, 0x400n);
    dmaSyncForCpu(map, 0x1e00n, 0x180n);
    const want = before.slice();
    want.set(data.subarray(0x200, 0x600), 0x200); // the head window
    want.set(data.subarray(0xf00, 0x1f00), 0xf00); // linked in place: the device wrote RAM itself
    want.set(data.subarray(0x1f00, 0x1f80), 0x1f00); // the tail window
    expect(cpuBytes(dev, list)).toEqual(want);
    dev.unmap(map);
    expect(m.swiotlb!.usedSlots).toBe(0);
  });
});

describe('a failed list map leaves nothing mapped', () => {
  it('the IOVA of an earlier host run is destroyed when a later run is refused', () => {
    const m = builtinMachine('two-socket-server');
    const nic = m.device(NIC, { untrusted: true });
    const frees = m.metrics.get(COUNTER.iovaFrees);
    // Host RAM first (linked into an IOVA), then unaligned peer MMIO through the host bridge, which
    // an untrusted device may not bounce: EPERM.
    const list = PhyrList.fromRanges([
      [5n * GiB, 0x2000n],
      [GPU_BAR1 + 0x10n, 0x100n],
    ]);
    expectErrno(() => nic.map(list, 'TO_DEVICE'), 'EPERM');
    expect(nic.domain!.pageTable!.countLeaves().size).toBe(0);
    m.flushQueues();
    expect(m.metrics.get(COUNTER.iovaFrees) - frees).toBe(m.metrics.get(COUNTER.iovaAllocations));
  });
});

describe('list layouts (src/dma/iova-layout.ts)', () => {
  const MiB = 1n << 20n;

  it("the default layout is packed: a 2 MiB folio after a page follows it with no gap; 'aligned' leaves one", () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME, { maxSegmentSize: 1n << 30n });
    const list = PhyrList.fromRanges([
      [5n * GiB, 0x1000n],
      [7n * GiB, 2n * MiB],
    ]);
    const packed = dev.map(list, 'TO_DEVICE');
    expect(packed.dma.count).toBe(1);
    dev.unmap(packed);
    const aligned = dev.map(list, 'TO_DEVICE', { layout: 'aligned' });
    expect(aligned.dma.count).toBe(2);
    expect(aligned.dma.addressAt(1) % (2n * MiB)).toBe(0n);
    dev.unmap(aligned);
  });

  it("'aligned' on ranges dma_iova_link cannot take (one starts mid-page) falls back range by range", () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME);
    const list = PhyrList.fromRanges([
      [5n * GiB, 0x1000n],
      [6n * GiB + 0x200n, 0x100n],
      [7n * GiB, 0x1000n],
    ]);
    const map = dev.map(list, 'TO_DEVICE', { layout: 'aligned' });
    expect(map.path).toBe('per-range');
    expect(map.fallbackReason).toBeDefined();
    expect(map.dma.lengthAt(1)).toBe(0x100n);
    dev.unmap(map);
  });

  it('a refused run after a gapped aligned run unlinks every stretch of it', () => {
    const m = builtinMachine('two-socket-server');
    const nic = m.device(NIC, { untrusted: true, maxSegmentSize: 1n << 30n });
    const list = PhyrList.fromRanges([
      [5n * GiB, 0x1000n],
      [7n * GiB, 2n * MiB],
      [GPU_BAR1 + 0x10n, 0x100n], // unaligned peer MMIO on an untrusted device: EPERM
    ]);
    expectErrno(() => nic.map(list, 'TO_DEVICE', { layout: 'aligned' }), 'EPERM');
    expect(nic.domain!.pageTable!.countLeaves().size).toBe(0);
  });
});

describe('a failed dma-direct list map', () => {
  it('unmaps the bounced ranges before the refused one (MMIO cannot bounce: EIO)', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NVME, { forceBounce: true });
    const list = PhyrList.fromRanges([
      [5n * GiB, 0x1000n],
      [6n * GiB, 0x1000n],
      [GPU_BAR1, 0x1000n], // through the host bridge: DMA_ATTR_MMIO
    ]);
    expectErrno(() => dev.map(list, 'TO_DEVICE'), 'EIO', /MMIO at 0x20000000000 cannot be bounced/);
    expect(m.swiotlb!.usedSlots).toBe(0);
  });
});

describe('P2P through the host bridge in an IOVA', () => {
  it('the linked run keeps its p2p decision on the segment, in the packed and the aligned layout', () => {
    const m = builtinMachine('two-socket-server');
    const nic = m.device(NIC, { maxSegmentSize: 1n << 30n });
    const list = PhyrList.fromRanges([
      [GPU_BAR1, 0x1000n],
      [GPU_BAR1 + 0x20_0000n, 0x1000n],
    ]);
    for (const layout of ['packed', 'aligned'] as const) {
      const map = nic.map(list, 'TO_DEVICE', { layout });
      expect(map.segments.map((s) => s.kind)).toEqual(['through-host-bridge']);
      expect(map.segments[0]!.p2p?.mapType).toBe('through-host-bridge');
      nic.unmap(map);
    }
    const host = nic.map(PhyrList.fromRanges([[5n * GiB, 0x1000n]]), 'TO_DEVICE');
    expect(host.segments[0]!.kind).toBe('iova');
    expect(host.segments[0]).not.toHaveProperty('p2p');
    nic.unmap(host);
  });
});

describe('dma_map_phys on an untrusted device (iommu_dma_map_swiotlb)', () => {
  it('an unaligned range is a bounce: its slot copies back at unmap and is freed', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME, { untrusted: true, minAlignMask: 0xfffn });
    const phys = 5n * GiB + 0x80n;
    const map = mapPhys(dev, phys, 0x100n, 'FROM_DEVICE');
    expect(map.segments.map((s) => [s.kind, s.bouncedBytes])).toEqual([['bounce', 0x100n]]);
    expect(m.swiotlb!.usedSlots).toBeGreaterThan(0);
    deviceWrite(dev, map, new Uint8Array(0x100).fill(0xc3));
    unmapPhys(dev, map.dma.addressAt(0), 0x100n, 'FROM_DEVICE');
    expect(m.platform.bytes.read(phys, 0x100)).toEqual(new Uint8Array(0x100).fill(0xc3));
    expect(m.swiotlb!.usedSlots).toBe(0);
  });
});

describe('list trace records', () => {
  it('a physr list map is reported as dma_map_sg of its ranges', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NVME);
    let map: ReturnType<typeof dev.map> | undefined;
    const records = traceOf(m, () => {
      map = dev.map(
        PhyrList.fromRanges([
          [5n * GiB + 0x40n, 0x100n],
          [6n * GiB, 0x2000n],
        ]),
        'FROM_DEVICE',
      );
    });
    expect(records).toEqual([
      {
        kind: 'map_sg',
        device: NVME,
        dir: 'FROM_DEVICE',
        phys: [5n * GiB + 0x40n, 6n * GiB],
        dma: [5n * GiB + 0x40n, 6n * GiB],
        lengths: [0x100n, 0x2000n],
      },
    ]);
    dev.unmap(map!);
  });
});

describe('sync_single trace records', () => {
  it("carry the driver's direction, or the mapping's when none is given, and which way the sync goes", () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NVME);
    const map = mapPhys(dev, 5n * GiB, 0x1000n, 'BIDIRECTIONAL');
    const records = traceOf(m, () => {
      dmaSyncForDevice(map, 0x100n, 0x200n);
      dmaSyncForDevice(map, 0n, 0x10n, 'TO_DEVICE');
      dmaSyncForCpu(map, 0x800n, 0x20n, 'FROM_DEVICE');
    });
    const base = { kind: 'sync_single', device: NVME };
    expect(records).toEqual([
      { ...base, dir: 'BIDIRECTIONAL', toCpu: false, dma: 5n * GiB + 0x100n, size: 0x200n },
      { ...base, dir: 'TO_DEVICE', toCpu: false, dma: 5n * GiB, size: 0x10n },
      { ...base, dir: 'FROM_DEVICE', toCpu: true, dma: 5n * GiB + 0x800n, size: 0x20n },
    ]);
    unmapPhys(dev, 5n * GiB, 0x1000n, 'BIDIRECTIONAL');
  });
});
