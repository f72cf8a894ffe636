/**
 * dma_map_phys's argument checks (include/linux/dma-mapping.h, kernel/dma/mapping.c, Linux 7.1) and
 * the trace records of dma_map_phys / dma_map_sg (include/trace/events/dma.h).
 */
import { describe, expect, it } from 'vitest';
import { type DmaTraceRecord, PhyrList, phyrListToSgTable } from '../../src/core/index.ts';
import { builtinMachine, type DmaDevice, mapPhys, unmapPhys } from '../../src/dma/index.ts';
import { expectErrno } from '../errno.ts';

const GiB = 1n << 30n;
const NVME = '0000:06:00.0';
const NIC = '0000:04:00.0';
/** The two-socket server's 32-bit MMIO window (PCI BARs: no struct page). */
const MMIO32 = 0x8000_0000n;

function traced(dev: DmaDevice): DmaTraceRecord[] {
  const records: DmaTraceRecord[] = [];
  dev.machine.metrics.traceSink = (r) => records.push(r);
  return records;
}

describe('dma_map_phys checks', () => {
  it('an empty range is EINVAL naming the device and the size', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NVME);
    expectErrno(
      () => mapPhys(dev, 5n * GiB, 0n, 'TO_DEVICE'),
      'EINVAL',
      new RegExp(`${NVME}: dma_map_phys of 0 bytes`),
    );
  });

  it('memory without struct page needs DMA_ATTR_MMIO: a BAR or a hole is EINVAL, reserved RAM maps', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NVME);
    expectErrno(
      () => mapPhys(dev, MMIO32, 0x1000n, 'TO_DEVICE'),
      'EINVAL',
      /0x80000000 has no struct page; map it with DMA_ATTR_MMIO/,
    );
    // Past the end of node 1's RAM: no region at all.
    expectErrno(() => mapPhys(dev, 128n * GiB, 0x1000n, 'TO_DEVICE'), 'EINVAL', /has no struct page/);
    // The swiotlb pool is memblock-reserved RAM, which is not MMIO: it maps at its own address.
    const pool = m.swiotlb!.start;
    const map = mapPhys(dev, pool, 0x1000n, 'TO_DEVICE');
    expect(map.dma.toArray()).toEqual([{ address: pool, length: 0x1000n }]);
    unmapPhys(dev, pool, 0x1000n, 'TO_DEVICE');
  });

  it('RAM maps without DMA_ATTR_MMIO, and a BAR with it', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NIC);
    const ram = mapPhys(dev, 5n * GiB, 0x1000n, 'FROM_DEVICE');
    expect(ram.dma.addressAt(0)).toBe(5n * GiB);
    const bar = mapPhys(dev, MMIO32, 0x1000n, 'FROM_DEVICE', { mmio: true });
    expect(bar.dma.addressAt(0)).toBe(MMIO32);
    unmapPhys(dev, 5n * GiB, 0x1000n, 'FROM_DEVICE');
    unmapPhys(dev, MMIO32, 0x1000n, 'FROM_DEVICE');
  });
});

describe('trace points (include/trace/events/dma.h)', () => {
  it('dma_map_phys records the device, direction, addresses, size and whether it was MMIO', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NIC);
    const records = traced(dev);
    try {
      mapPhys(dev, 5n * GiB + 0x10n, 0x100n, 'TO_DEVICE');
      mapPhys(dev, MMIO32, 0x1000n, 'BIDIRECTIONAL', { mmio: true });
      unmapPhys(dev, MMIO32, 0x1000n, 'BIDIRECTIONAL');
    } finally {
      m.metrics.traceSink = undefined;
    }
    expect(records).toEqual([
      {
        kind: 'map_phys',
        device: NIC,
        dir: 'TO_DEVICE',
        dma: 5n * GiB + 0x10n,
        size: 0x100n,
        phys: 5n * GiB + 0x10n,
        mmio: false,
      },
      {
        kind: 'map_phys',
        device: NIC,
        dir: 'BIDIRECTIONAL',
        dma: MMIO32,
        size: 0x1000n,
        phys: MMIO32,
        mmio: true,
      },
      { kind: 'unmap_phys', device: NIC, dir: 'BIDIRECTIONAL', dma: MMIO32, size: 0x1000n },
    ]);
  });

  it('dma_map_sg records every CPU entry and every DMA segment after merging', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME, { maxSegmentSize: 0x10000n });
    const sgt = phyrListToSgTable(
      PhyrList.fromRanges([
        [5n * GiB, 0x1000n],
        [6n * GiB, 0x1000n],
        [7n * GiB + 0x200n, 0x100n],
      ]),
    );
    const records = traced(dev);
    try {
      expect(dev.mapSg(sgt, 'FROM_DEVICE')).toBe(2);
    } finally {
      m.metrics.traceSink = undefined;
    }
    const dma = sgt.toDmaRangeList().toArray();
    // (The IOMMU's own iommu_map records come alongside.)
    expect(records.filter((r) => r.kind === 'map_sg')).toEqual([
      {
        kind: 'map_sg',
        device: NVME,
        dir: 'FROM_DEVICE',
        phys: [5n * GiB, 6n * GiB, 7n * GiB + 0x200n],
        dma: dma.map((r) => r.address),
        lengths: [0x2000n, 0x100n],
      },
    ]);
    dev.unmapSg(sgt, 'FROM_DEVICE');
  });
});
