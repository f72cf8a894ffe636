import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { COUNTER, isPhysrError, Metrics, PhyrList } from '../../src/core/index.ts';
import {
  builtinMachine,
  IO_TLB_SEGSIZE,
  IO_TLB_SIZE,
  Swiotlb,
  type SwiotlbBounce,
  swiotlbAreas,
  swiotlbSearchParams,
} from '../../src/dma/index.ts';
import { ByteStore } from '../../src/platform/index.ts';
import { expectErrno } from '../errno.ts';
import { cpuBytes, deviceBytes, deviceWrite, fillPattern } from './helpers.ts';

const GiB = 1n << 30n;
const NVME = '0000:06:00.0';
const POOL = 0x1000_0000n;

function pool(slots: number): { tlb: Swiotlb; bytes: ByteStore; metrics: Metrics } {
  const bytes = new ByteStore();
  const metrics = new Metrics();
  return { tlb: new Swiotlb(POOL, BigInt(slots) * IO_TLB_SIZE, bytes, metrics), bytes, metrics };
}

describe('swiotlb pool', () => {
  it('is carved from RAM below 4 GiB and registered as reserved', () => {
    const m = builtinMachine('two-socket-server');
    const region = m.platform.memoryMap.lookup(m.swiotlb!.start)!;
    expect(region.kind).toBe('reserved');
    expect(region.name).toBe('swiotlb');
    expect(m.swiotlb!.start + m.swiotlb!.size <= 4n * GiB).toBe(true);
    expect(m.swiotlb!.size).toBe(64n << 20n);
    const custom = builtinMachine('laptop', { platform: { swiotlbBytes: 4n << 20n } });
    expect(custom.swiotlb!.nslabs).toBe(2048);
  });

  it('aligns mappings of a page or more to a page, smaller ones to a slot', () => {
    const { tlb } = pool(256);
    const small = tlb.map(0x5000_0123n, 0x100n);
    expect(small.tlbAddr % IO_TLB_SIZE).toBe(0n);
    const big = tlb.map(0x5000_0000n, 0x1000n);
    expect(big.tlbAddr % 0x1000n).toBe(0n);
    expect(big.slots).toBe(2);
  });

  it('keeps the bits min_align_mask asks for', () => {
    const { tlb } = pool(256);
    const b = tlb.map(0x5000_0a10n, 0x100n, { minAlignMask: 0xfffn });
    expect(b.tlbAddr & 0xfffn).toBe(0xa10n);
  });

  it('never crosses a 128-slot segment; more than a segment is "swiotlb buffer is full" (ENOMEM)', () => {
    const { tlb, metrics } = pool(256);
    tlb.map(0x5000_0000n, 100n * IO_TLB_SIZE);
    const b = tlb.map(0x6000_0000n, 64n * IO_TLB_SIZE);
    expect(Math.floor(b.index / IO_TLB_SEGSIZE)).toBe(Math.floor((b.index + b.slots - 1) / IO_TLB_SEGSIZE));
    // swiotlb_tbl_map_single has no size check of its own: no free run inside a segment is ever
    // 129 slots long, so swiotlb_find_slots returns -1 and the map fails as a full pool does.
    expect(tlb.usedSlots).toBe(164);
    expectErrno(() => tlb.map(0x7000_0000n, 129n * IO_TLB_SIZE), 'ENOMEM', /swiotlb buffer is full/);
    expect(metrics.get('dma.swiotlb_full')).toBe(1);
    expect(tlb.usedSlots).toBe(164);
  });

  it('areas: num_possible_cpus rounded up to a power of two, at least a segment each (limit_nareas)', () => {
    expect(swiotlbAreas(8, 32768)).toBe(8);
    expect(swiotlbAreas(6, 32768)).toBe(8);
    expect(swiotlbAreas(0, 32768)).toBe(1);
    expect(swiotlbAreas(512, 32768)).toBe(256);
    expect(swiotlbAreas(8, 256)).toBe(2);
    const m = builtinMachine('two-socket-server');
    expect(m.swiotlb!.nareas).toBe(8);
    expect(m.swiotlb!.areaNslabs).toBe(4096);
  });

  it("an area's next-fit index wraps to the area's first slot (wrap_area_index), not on to the next segment", () => {
    const areas = (n: number) =>
      new Swiotlb(POOL, 512n * IO_TLB_SIZE, new ByteStore(), new Metrics(), { nareas: n });
    for (const [nareas, expected] of [
      // Four areas of 128 slots: after 100 slots the index is 100; the 60-slot search from there finds
      // only the 28 free slots at the end of area 0, wraps to slot 0 and takes it.
      [4, 0],
      // One area of 512 slots: the same search walks on into the next segment, slot 128.
      [1, 128],
    ] as const) {
      const tlb = areas(nareas);
      const first = tlb.map(0x5000_0000n, 100n * IO_TLB_SIZE);
      tlb.unmap(first, 'TO_DEVICE');
      const second = tlb.map(0x6000_0000n, 60n * IO_TLB_SIZE);
      expect(second.tlbAddr).toBe(POOL + BigInt(expected) * IO_TLB_SIZE);
    }
  });

  it('a CPU searches its own area first, then the next areas in turn (swiotlb_pool_find_slots)', () => {
    const tlb = new Swiotlb(POOL, 512n * IO_TLB_SIZE, new ByteStore(), new Metrics(), { nareas: 4 });
    expect(tlb.map(0x5000_0000n, IO_TLB_SIZE, { cpu: 2 }).index).toBe(256);
    expect(tlb.map(0x5000_0000n, IO_TLB_SIZE, { cpu: 7 }).index).toBe(384); // 7 & (4 - 1) = area 3
    // Area 0 full: CPU 0's next mapping goes to area 1.
    tlb.map(0x6000_0000n, 128n * IO_TLB_SIZE, { cpu: 0 });
    expect(tlb.map(0x7000_0000n, IO_TLB_SIZE, { cpu: 0 }).index).toBe(128);
  });

  it('exhaustion is ENOMEM, and freeing makes room again', () => {
    const { tlb, metrics } = pool(256);
    const a = tlb.map(0x5000_0000n, 128n * IO_TLB_SIZE);
    tlb.map(0x6000_0000n, 128n * IO_TLB_SIZE);
    try {
      tlb.map(0x7000_0000n, IO_TLB_SIZE);
      throw new Error('mapped');
    } catch (error) {
      expect(isPhysrError(error, 'ENOMEM')).toBe(true);
    }
    expect(metrics.get('dma.swiotlb_full')).toBe(1);
    tlb.unmap(a, 'TO_DEVICE');
    expect(tlb.map(0x7000_0000n, IO_TLB_SIZE).index).toBe(0);
  });

  it('a 32-bit device exhausting the pool gets ENOMEM from map, not a crash', () => {
    const m = builtinMachine('two-socket-server', { iommu: false, platform: { swiotlbBytes: 0x4_0000n } });
    const dev = m.device(NVME, { dmaMask: 32 });
    const first = dev.map(PhyrList.fromRanges([[5n * GiB, 0x4_0000n]]), 'TO_DEVICE');
    expect(() => dev.map(PhyrList.fromRanges([[6n * GiB, 0x1000n]]), 'TO_DEVICE')).toThrow(
      /swiotlb buffer is full/,
    );
    dev.unmap(first);
  });

  test.prop([fc.array(fc.tuple(fc.integer({ min: 1, max: 40 * 2048 }), fc.boolean()), { maxLength: 60 })])(
    'slot accounting matches a reference count and no two live bounces overlap',
    (ops) => {
      const { tlb } = pool(512);
      const live: SwiotlbBounce[] = [];
      let used = 0;
      for (const [size, free] of ops) {
        if (free && live.length > 0) {
          const b = live.shift()!;
          tlb.unmap(b, 'TO_DEVICE', true);
          used -= b.slots;
        } else {
          try {
            const b = tlb.map(0x5000_0000n, BigInt(size));
            live.push(b);
            used += b.slots;
          } catch (error) {
            expect(isPhysrError(error, 'ENOMEM')).toBe(true);
          }
        }
        expect(tlb.usedSlots).toBe(used);
      }
      const sorted = [...live].sort((a, b) => a.index - b.index);
      for (let i = 1; i < sorted.length; i++) {
        expect(sorted[i]!.index >= sorted[i - 1]!.index + sorted[i - 1]!.slots).toBe(true);
      }
    },
  );
});

describe('swiotlb slot search (swiotlb_search_pool_area, 6.9+)', () => {
  it('starts at the rotating index itself and skips to the next slot on the allocation alignment', () => {
    const { tlb } = pool(256);
    // One slot leaves the next-fit index at slot 1; freeing it leaves slot 0 free below the index.
    tlb.unmap(tlb.map(0x5000_0000n, 0x100n), 'TO_DEVICE', true);
    const page = tlb.map(0x5000_0000n, 0x1000n);
    expect(page.index).toBe(2);
    expect(page.tlbAddr % 0x1000n).toBe(0n);
  });

  it('checks alloc_align_mask per candidate slot, also when min_align_mask moves the walk by one', () => {
    const { tlb } = pool(256);
    tlb.map(0x5000_0000n, 0x100n);
    // 64 KiB alloc alignment with a 4 KiB min_align_mask: the slot is 64 KiB aligned and the offset
    // carries the original's low 12 bits.
    const b = tlb.map(0x5000_0a10n, 0x100n, { allocAlignMask: 0xffffn, minAlignMask: 0xfffn });
    expect((b.tlbAddr - (b.tlbAddr & 0xfffn)) % 0x1_0000n).toBe(0n);
    expect(b.tlbAddr & 0xfffn).toBe(0xa10n);
  });

  it('allocates whole alloc_align_mask + 1 units, so a bounced IOMMU granule holds nothing else', () => {
    const { tlb } = pool(256);
    const a = tlb.map(0x5000_0100n, 0x100n, { allocAlignMask: 0xfffn });
    expect(a.slots).toBe(2);
    const b = tlb.map(0x6000_0100n, 0x100n, { allocAlignMask: 0xfffn });
    expect(b.tlbAddr - a.tlbAddr >= 0x1000n).toBe(true);
    expect(tlb.usedSlots).toBe(4);
  });

  it('stride is get_max_slots of the larger mask, also for masks that are not 2^k - 1', () => {
    // NVMe's 4 KiB min_align_mask without alloc alignment: bit 11 is matched, stride 2.
    expect(swiotlbSearchParams(0xfffn, 0n, 0x100n)).toEqual({
      allocAlignMask: 0x7ffn,
      iotlbAlignMask: 0x800n,
      stride: 2,
    });
    expect(swiotlbSearchParams(0xffffn, 0n, 0x100n).stride).toBe(32);
    // A page-sized streaming mapping with no masks is page aligned.
    expect(swiotlbSearchParams(0n, 0n, 0x1000n)).toEqual({
      allocAlignMask: 0xfffn,
      iotlbAlignMask: 0n,
      stride: 2,
    });
    // min_align_mask bits under alloc_align_mask are carried by the offset, not matched.
    expect(swiotlbSearchParams(0xfffn, 0xffffn, 0x100n)).toEqual({
      allocAlignMask: 0xffffn,
      iotlbAlignMask: 0n,
      stride: 32,
    });
  });

  it('swiotlb_max_mapping_size rounds min_align_mask up to a slot (roundup, not + one slot)', () => {
    const { tlb } = pool(256);
    expect(tlb.maxMappingSize(0xfffn)).toBe(0x4_0000n - 0x1000n);
    expect(tlb.maxMappingSize(0x800n)).toBe(0x4_0000n - 0x800n);
  });

  test.prop([
    fc.array(
      fc.record({
        orig: fc.bigInt({ min: 1n, max: (1n << 40n) - 1n }),
        size: fc.integer({ min: 1, max: 12 * 2048 }),
        minAlign: fc.constantFrom(0n, 0x7ffn, 0xfffn, 0x1fffn, 0xffffn),
        allocAlign: fc.constantFrom(0n, 0xfffn, 0x3fffn, 0xffffn),
        free: fc.boolean(),
      }),
      { maxLength: 50 },
    ),
  ])('every bounce is aligned as asked, keeps the min_align_mask bits and never overlaps another', (ops) => {
    const { tlb } = pool(1024);
    const live: SwiotlbBounce[] = [];
    for (const op of ops) {
      if (op.free && live.length > 0) {
        tlb.unmap(live.shift()!, 'TO_DEVICE', true);
        continue;
      }
      let b: SwiotlbBounce;
      try {
        b = tlb.map(op.orig, BigInt(op.size), { minAlignMask: op.minAlign, allocAlignMask: op.allocAlign });
      } catch (error) {
        expect(isPhysrError(error, 'ENOMEM')).toBe(true);
        continue;
      }
      live.push(b);
      const allocStart = POOL + BigInt(b.index) * IO_TLB_SIZE;
      // alloc_size is the mapping plus its alignment offset, not rounded to slots (swiotlb_tbl_map_single).
      const allocSize = b.size + (b.tlbAddr - allocStart);
      const search = swiotlbSearchParams(op.minAlign, op.allocAlign, allocSize);
      expect(allocStart & search.allocAlignMask).toBe(0n);
      expect(b.tlbAddr & op.minAlign).toBe(op.orig & op.minAlign);
      expect(b.tlbAddr + b.size <= allocStart + BigInt(b.slots) * IO_TLB_SIZE).toBe(true);
      expect((BigInt(b.slots) * IO_TLB_SIZE) & op.allocAlign).toBe(0n);
    }
    const sorted = [...live].sort((x, y) => x.index - y.index);
    for (let i = 1; i < sorted.length; i++) {
      expect(sorted[i]!.index >= sorted[i - 1]!.index + sorted[i - 1]!.slots).toBe(true);
    }
  });
});

describe('bounce copies by direction', () => {
  function setup(dir: 'TO_DEVICE' | 'FROM_DEVICE' | 'BIDIRECTIONAL') {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NVME, { dmaMask: 32 });
    const list = PhyrList.fromRanges([[5n * GiB + 0x100n, 0x300n]]);
    fillPattern(dev, list);
    const map = dev.map(list, dir);
    return { m, dev, list, map };
  }

  it('TO_DEVICE: CPU writes reach the device only after sync_for_device', () => {
    const { dev, list, map } = setup('TO_DEVICE');
    const original = cpuBytes(dev, list);
    dev.machine.platform.bytes.write(list.addressAt(0), new Uint8Array(0x300).fill(7));
    expect(deviceBytes(dev, map.dma)).toEqual(original);
    dev.syncForDevice(map);
    expect(deviceBytes(dev, map.dma).every((b) => b === 7)).toBe(true);
    // sync_for_cpu of a TO_DEVICE mapping copies nothing back.
    const before = dev.machine.metrics.get(COUNTER.bounceBytes);
    dev.syncForCpu(map, 0n, 0x300n);
    expect(dev.machine.metrics.get(COUNTER.bounceBytes)).toBe(before);
    dev.unmap(map);
  });

  it('FROM_DEVICE: device writes reach the CPU at sync_for_cpu and at unmap, partially by window', () => {
    const { dev, list, map } = setup('FROM_DEVICE');
    const original = cpuBytes(dev, list);
    deviceWrite(dev, map, new Uint8Array(0x300).fill(0xab));
    expect(cpuBytes(dev, list)).toEqual(original);
    dev.syncForCpu(map, 0x100n, 0x10n);
    const seen = cpuBytes(dev, list);
    expect(seen.slice(0x100, 0x110).every((b) => b === 0xab)).toBe(true);
    expect(seen.slice(0, 0x100)).toEqual(original.slice(0, 0x100));
    expect(seen.slice(0x110)).toEqual(original.slice(0x110));
    dev.unmap(map);
    expect(cpuBytes(dev, list).every((b) => b === 0xab)).toBe(true);
  });

  it('FROM_DEVICE: bytes the device did not write come back unchanged (bounce filled at map)', () => {
    const { dev, list, map } = setup('FROM_DEVICE');
    const original = cpuBytes(dev, list);
    dev.unmap(map);
    expect(cpuBytes(dev, list)).toEqual(original);
  });

  it('BIDIRECTIONAL: both ways', () => {
    const { dev, list, map } = setup('BIDIRECTIONAL');
    expect(deviceBytes(dev, map.dma)).toEqual(cpuBytes(dev, list));
    deviceWrite(dev, map, new Uint8Array(0x300).fill(1));
    dev.syncForCpu(map);
    expect(cpuBytes(dev, list).every((b) => b === 1)).toBe(true);
    dev.unmap(map);
  });
});
