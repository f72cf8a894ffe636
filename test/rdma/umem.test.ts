import { describe, expect, it } from 'vitest';
import { fail, type PhyrList } from '../../src/core/index.ts';
import {
  IB_ACCESS_HUGETLB,
  IB_ACCESS_LOCAL_WRITE,
  IB_ACCESS_ON_DEMAND,
  IB_ACCESS_REMOTE_ATOMIC,
  IB_ACCESS_REMOTE_READ,
  IB_ACCESS_REMOTE_WRITE,
  ibAccessWritable,
  ibUmemGet,
  ibUmemGetLegacy,
  ibUmemMaxSegment,
  ibUmemOdpGet,
  ibUmemSgTable,
  type RdmaDevice,
} from '../../src/rdma/index.ts';
import { expectErrno } from '../errno.ts';
import { rdmaMachine } from './fixture.ts';

const RW = IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE | IB_ACCESS_REMOTE_READ;
const MiB = 1n << 20n;
const TOP = 1n << 64n;

describe('ib_umem_get range checks (drivers/infiniband/core/umem.c)', () => {
  it('EINVAL when addr + size wraps to exactly 0 or PAGE_ALIGN(addr + size) wraps', () => {
    const { mm, device } = rdmaMachine();
    // addr + size = 2^64: the u64 sum is 0 < addr.
    expectErrno(() => ibUmemGet(device, mm, TOP - 0x1000n, 0x1000n, RW), 'EINVAL', /empty or overflows/);
    // addr + size = 2^64 - 0x800: no wrap, but PAGE_ALIGN of it is 2^64 = 0 < addr + size.
    expectErrno(
      () => ibUmemGet(device, mm, TOP - 0x1800n, 0x1000n, RW),
      'EINVAL',
      /0xffffffffffffe800 \+ 0x1000 is empty or overflows/,
    );
    expectErrno(() => ibUmemGetLegacy(device, mm, TOP - 0x1800n, 0x1000n, RW), 'EINVAL');
    // One page lower nothing wraps: the range check passes and GUP refuses it (beyond TASK_SIZE).
    expectErrno(() => ibUmemGet(device, mm, TOP - 0x2000n, 0x1000n, RW), 'EFAULT');
  });
});

describe('the physr umem', () => {
  it('is EINVAL to use or release after release; a read-only umem does not dirty its folios', () => {
    const { mm, device, system, allocator } = rdmaMachine({ anonOrders: [] });
    const va = mm.mmap({ kind: 'anon', length: 0x4000n });
    mm.writeUser(va, new Uint8Array([1]));
    const ro = ibUmemGet(device, mm, va, 0x1000n, IB_ACCESS_REMOTE_READ);
    const folio = allocator.folioAt(mm.translate(va)!.phys >> 12n)!;
    system.clearDirty(folio);
    expect(ro.writable).toBe(false);
    expect(folio.pincount).toBe(1);
    ro.release();
    expect(folio.pincount).toBe(0);
    expect(system.isDirty(folio)).toBe(false);
    expectErrno(() => ro.mappedRanges(), 'EINVAL', /released/);
    expectErrno(() => ro.release(), 'EINVAL', /released twice/);
    expect(folio.pincount).toBe(0);
  });

  it('a writable umem dirties its folios at release (unpin_user_pages_dirty_lock)', () => {
    const { mm, device, system, allocator } = rdmaMachine({ anonOrders: [] });
    const va = mm.mmap({ kind: 'anon', length: 0x4000n });
    const umem = ibUmemGet(device, mm, va, 0x1000n, IB_ACCESS_LOCAL_WRITE);
    const folio = allocator.folioAt(mm.translate(va)!.phys >> 12n)!;
    // Writeback cleaned it while pinned; the device may have written it since.
    system.clearDirty(folio);
    umem.release();
    expect(system.isDirty(folio)).toBe(true);
  });

  it('pins FOLL_LONGTERM: a read-only pin of untouched anon memory gets real pages, not the zero page', () => {
    const { mm, device, system } = rdmaMachine({ anonOrders: [] });
    const va = mm.mmap({ kind: 'anon', length: 0x2000n });
    // A short-term read pin would map (and not pin) the shared zero page; a long-term one unshares
    // (mm/gup.c gup_must_unshare), so the umem holds anonymous pages of its own.
    const umem = ibUmemGet(device, mm, va, 0x2000n, IB_ACCESS_REMOTE_READ);
    const phys = mm.translate(va)!.phys;
    expect(system.isZeroPfn(phys >> 12n)).toBe(false);
    expect(umem.dma.addressAt(0)).toBe(phys);
    umem.release();
    const va2 = mm.mmap({ kind: 'anon', length: 0x2000n });
    const legacy = ibUmemGetLegacy(device, mm, va2, 0x2000n, IB_ACCESS_REMOTE_READ);
    expect(system.isZeroPfn(legacy.pinned.pages[0]!)).toBe(false);
    legacy.release();
  });

  it('maps RAM (mmio false), split at the device max segment size', () => {
    const { mm, device } = rdmaMachine();
    const seen: { mmio: boolean; list: PhyrList }[] = [];
    const small: RdmaDevice = {
      ...device,
      dma: {
        ...device.dma,
        maxSegmentSize: 0x10_0000n,
        mapPhyrs: (list, options) => {
          seen.push({ mmio: options.mmio, list });
          return device.dma.mapPhyrs(list, options);
        },
      },
    };
    // A 2M-aligned 2M THP: one physical range, split into two 1 MiB segments.
    const va = mm.mmap({ kind: 'anon', length: 2n * MiB, address: 0x10_0020_0000n });
    const umem = ibUmemGet(small, mm, va, 2n * MiB, RW);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.mmio).toBe(false);
    const phys = mm.translate(va)!.phys;
    expect(umem.dma.toArray()).toEqual([
      { address: phys, length: MiB },
      { address: phys + MiB, length: MiB },
    ]);
    umem.release();
  });
});

describe('the legacy umem', () => {
  it('reports the sg table as metadata and at most one page of pointers as scratch', () => {
    const { mm, device } = rdmaMachine({ anonOrders: [] });
    const va = mm.mmap({ kind: 'anon', length: 4n * MiB });
    // 4 pages: 4 pointers of 8 bytes; the pages merge into one entry in a one-slot table.
    const small = ibUmemGetLegacy(device, mm, va, 0x4000n, RW);
    expect(small.scratchPeakBytes).toBe(32);
    expect(small.metadataBytes).toBe(small.table.slotCount * 32 + 16);
    small.release();
    expectErrno(() => small.mappedRanges(), 'EINVAL', /released/);
    expectErrno(() => small.release(), 'EINVAL', /released twice/);
    // 1024 pages: 8 KiB of pointers, but ib_umem_get holds one 4 KiB page of them at a time.
    const big = ibUmemGetLegacy(device, mm, va, 4n * MiB, RW);
    expect(big.pageArrayBytes).toBe(8192);
    expect(big.scratchPeakBytes).toBe(4096);
    big.release();
  });

  it('a failed dma_map_sgtable unpins what was pinned; release dirties only when writable', () => {
    const { mm, device, allocator, system } = rdmaMachine({ anonOrders: [] });
    const va = mm.mmap({ kind: 'anon', length: 0x4000n });
    mm.readUser(va, 1);
    const failing: RdmaDevice = {
      ...device,
      dma: { ...device.dma, mapSgTable: () => fail('ENOMEM', 'no IOVA space') },
    };
    expectErrno(() => ibUmemGetLegacy(failing, mm, va, 0x4000n, RW), 'ENOMEM');
    for (const folio of allocator.liveFolios()) expect(folio.pincount).toBe(0);
    const rw = ibUmemGetLegacy(device, mm, va, 0x1000n, IB_ACCESS_LOCAL_WRITE);
    const folio = allocator.folioAt(rw.pinned.pages[0]!)!;
    system.clearDirty(folio);
    rw.release();
    expect(system.isDirty(folio)).toBe(true);
    const ro = ibUmemGetLegacy(device, mm, va, 0x1000n, IB_ACCESS_REMOTE_READ);
    system.clearDirty(folio);
    ro.release();
    expect(system.isDirty(folio)).toBe(false);
  });

  it('ibUmemSgTable: one page of pointers a round, each round told the pages still to come', () => {
    // 1024 contiguous pages: round 1 (512 pages) makes one entry but is told 512 more pages come, so
    // get_next_sg allocates min(1 + 512, 128) = 128 slots; round 2 folds into that entry.
    const contiguous = BigUint64Array.from({ length: 1024 }, (_, i) => 0x10_0000n + BigInt(i));
    const one = ibUmemSgTable(contiguous, 0xffff_f000);
    expect(one.origNents).toBe(1);
    expect(one.slotCount).toBe(128);
    expect(one.lengthAt(one.sgl)).toBe(4 * 1024 * 1024);
    // 600 scattered pages: round 1 (512, 88 to come) chains 128-slot chunks while 600, 473, 346 and
    // 219 entries are needed (127 entries each), then a 92-slot one for the last 4 + 88; round 2
    // (88 pages, nothing to come) fills slots 4..91 of it. 4 × 128 + 92 = 604 slots.
    const scattered = BigUint64Array.from({ length: 600 }, (_, i) => 0x10_0000n + 2n * BigInt(i));
    const many = ibUmemSgTable(scattered, 0xffff_f000);
    expect(many.origNents).toBe(600);
    expect(many.slotCount).toBe(604);
  });

  it('ibUmemMaxSegment: the device limit, capped at SCATTERLIST_MAX_SEGMENT', () => {
    expect(ibUmemMaxSegment(0x1_0000n)).toBe(0x1_0000);
    expect(ibUmemMaxSegment(1n << 32n)).toBe(0xffff_f000);
    expect(ibUmemMaxSegment(0xffff_f000n)).toBe(0xffff_f000);
  });
});

describe('ib_access_writable and the ODP umem', () => {
  it('write, remote write and atomic need a writable pin; remote read does not', () => {
    expect(ibAccessWritable(IB_ACCESS_REMOTE_READ)).toBe(false);
    expect(ibAccessWritable(0)).toBe(false);
    expect(ibAccessWritable(IB_ACCESS_LOCAL_WRITE)).toBe(true);
    expect(ibAccessWritable(IB_ACCESS_REMOTE_WRITE)).toBe(true);
    expect(ibAccessWritable(IB_ACCESS_REMOTE_ATOMIC)).toBe(true);
  });

  it('ib_umem_odp_get: needs IB_ACCESS_ON_DEMAND; 2M pages with IB_ACCESS_HUGETLB; maps nothing', () => {
    const { device } = rdmaMachine();
    expectErrno(() => ibUmemOdpGet(device, 0x10_0000n, MiB, RW), 'EINVAL', /ON_DEMAND/);
    const odp = ibUmemOdpGet(device, 0x10_0000n, MiB, IB_ACCESS_ON_DEMAND | IB_ACCESS_REMOTE_READ);
    expect(odp.pageShift).toBe(12);
    expect(odp.writable).toBe(false);
    expect(odp.metadataBytes).toBe(0);
    expectErrno(() => odp.mappedRanges(), 'EINVAL', /on fault/);
    odp.release();
    expectErrno(() => odp.release(), 'EINVAL', /released twice/);
    const huge = ibUmemOdpGet(device, 0n, MiB, IB_ACCESS_ON_DEMAND | IB_ACCESS_HUGETLB | RW);
    expect(huge.pageShift).toBe(21);
    expect(huge.writable).toBe(true);
    expect(huge.kind).toBe('odp');
  });
});
