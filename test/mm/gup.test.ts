import { describe, expect, it } from 'vitest';
import { PhyrList } from '../../src/core/index.ts';
import {
  MemorySystem,
  MmStruct,
  PAGE_POINTER_BYTES,
  pinnedFolios,
  pinnedPagesAsRanges,
  pinUserPages,
  pinUserPagesLegacy,
  pinUserPagesWhole,
  unpinUserPages,
  unpinUserPagesLegacy,
} from '../../src/mm/index.ts';
import { GUP_PIN_COUNTING_BIAS } from '../../src/platform/index.ts';
import { expectErrno } from '../errno.ts';
import { GiB, MiB, machine } from './helpers.ts';

describe('pinUserPages: ranges from folios', () => {
  it('pins 4 MiB of THP-backed anonymous memory as one range and two order-9 folios', () => {
    const { mm, allocator } = machine();
    const va = mm.mmap({ kind: 'anon', length: 4n * MiB });
    expect(va % (2n * MiB)).toBe(0n);
    const pin = pinUserPages(mm, va, 4n * MiB, { write: true, longterm: true });
    expect(pin.phyrs.totalLength).toBe(4n * MiB);
    expect(pin.pageCount).toBe(1024);
    const folios = pinnedFolios(pin);
    expect(folios.map((f) => f.folio.order)).toEqual([9, 9]);
    expect(folios.map((f) => f.refs)).toEqual([512, 512]);
    expect(folios.every((f) => f.folio.pincount === 512)).toBe(true);
    // The buddy hands out neighbouring blocks here: the two folios merge into one range.
    expect(pin.phyrs.count).toBe(1);
    expect(pin.metadataBytes).toBe(16);
    unpinUserPages(pin);
    expect(folios.every((f) => f.folio.pincount === 0)).toBe(true);
    expect(allocator.allocatedPages).toBe(1024);
  });

  it('gives mixed folio orders on a fragmented machine, and ranges follow physical contiguity', () => {
    const { mm, allocator } = machine({ ramGiB: 1, anonOrders: [9, 4, 2] });
    // 90% of the 2M pageblocks get a small unmovable allocation: ~51 free 2M blocks remain.
    allocator.fragment(7, { fraction: 0.9 });
    const va = mm.mmap({ kind: 'anon', length: 160n * MiB });
    const pin = pinUserPages(mm, va, 160n * MiB, { write: true });
    const orders = new Set(pinnedFolios(pin).map((f) => f.folio.order));
    expect(orders.has(9)).toBe(true);
    expect(orders.has(4)).toBe(true);
    // Each range is a physically contiguous run; consecutive ranges are not contiguous.
    const ranges = pin.phyrs.toArray();
    for (let i = 1; i < ranges.length; i++) {
      expect(ranges[i - 1]!.address + ranges[i - 1]!.length).not.toBe(ranges[i]!.address);
    }
    expect(pin.phyrs.totalLength).toBe(160n * MiB);
    unpinUserPages(pin);
  });

  it('pins 1 GiB of 1G hugetlb memory as 1 range against 262,144 legacy pages', () => {
    const { mm, system } = machine({ ramGiB: 3 });
    system.reserveHugetlb(18, 1);
    const va = mm.mmap({ kind: 'hugetlb', hugeOrder: 18, length: GiB });
    expect(va % GiB).toBe(0n);
    const pin = pinUserPages(mm, va, GiB, { write: true, longterm: true });
    expect(pin.phyrs.count).toBe(1);
    expect(pin.metadataBytes).toBe(16);
    const legacy = pinUserPagesLegacy(mm, va, GiB, { write: true, longterm: true });
    expect(legacy.pages.length).toBe(262_144);
    expect(legacy.metadataBytes).toBe(262_144 * PAGE_POINTER_BYTES);
    const folio = pinnedFolios(pin)[0]!.folio;
    expect(folio.order).toBe(18);
    expect(folio.pincount).toBe(2 * 262_144);
    // Both forms name the same frames.
    expect(legacy.pages[0]).toBe(pin.phyrs.addressAt(0) >> 12n);
    expect(legacy.pages[262_143]).toBe((pin.phyrs.addressAt(0) >> 12n) + 262_143n);
    unpinUserPagesLegacy(legacy);
    unpinUserPages(pin);
    expect(folio.pincount).toBe(0);
  });

  it('describes exactly the bytes asked for, sub-page start and end included', () => {
    const { mm } = machine({ anonOrders: [] });
    const va = mm.mmap({ kind: 'anon', length: 64n * 1024n });
    const pin = pinUserPages(mm, va + 0x123n, 0x3000n);
    expect(pin.pageCount).toBe(4);
    expect(pin.phyrs.totalLength).toBe(0x3000n);
    expect(pin.phyrs.addressAt(0)).toBe(mm.translate(va + 0x123n)!.phys);
    const last = pin.phyrs.lastAt(pin.phyrs.count - 1);
    expect(last).toBe(mm.translate(va + 0x3122n)!.phys);
    unpinUserPages(pin);
  });

  it('pins nothing for length 0', () => {
    const { mm } = machine();
    const pin = pinUserPages(mm, 0x1234n, 0n);
    expect(pin.phyrs.isEmpty).toBe(true);
    expect(pin.pageCount).toBe(0);
    unpinUserPages(pin);
  });

  it('faults in missing pages and counts pins per page (try_grab_folio refs)', () => {
    const { mm } = machine({ anonOrders: [] });
    const va = mm.mmap({ kind: 'anon', length: 0x4000n });
    expect(mm.translate(va)).toBeUndefined();
    const a = pinUserPages(mm, va, 0x2000n, { write: true });
    const b = pinUserPages(mm, va + 0x1000n, 0x2000n, { write: true });
    const f1 = mm.translate(va + 0x1000n)!.folio!;
    expect(f1.pincount).toBe(2);
    unpinUserPages(a);
    expect(f1.pincount).toBe(1);
    unpinUserPages(b);
    expect(f1.pincount).toBe(0);
  });
});

describe('a page-array pin unpinned through ranges (the sg_table kept, the array dropped)', () => {
  it('gives back exactly the pins of the array, once, and refuses ranges of another length', () => {
    const { mm } = machine({ anonOrders: [] });
    const va = mm.mmap({ kind: 'anon', length: 64n * 4096n });
    const legacy = pinUserPagesLegacy(mm, va + 0x10n, 64n * 4096n - 0x10n, { write: true });
    const physr = pinUserPages(mm, va + 0x10n, 64n * 4096n - 0x10n, { write: true });
    const ranges = physr.phyrs;
    const short = PhyrList.fromRanges([[ranges.addressAt(0), 0x1000n]]);
    expectErrno(() => pinnedPagesAsRanges(legacy, short), 'EINVAL');
    const held = pinnedPagesAsRanges(legacy, ranges);
    expectErrno(() => unpinUserPagesLegacy(legacy), 'EINVAL'); // the array pin is released
    unpinUserPages(held, { dirty: true });
    // The physr pin of the same pages is all that is left: one pin and one mapping reference each.
    const states = pinnedFolios(physr).map(({ folio }) => [folio.refcount, folio.pincount]);
    expect(states).toEqual(Array.from({ length: 64 }, () => [1 + GUP_PIN_COUNTING_BIAS, 1]));
  });
});

describe('pinUserPages: refusals as check_vma_flags and gup_fast_fallback', () => {
  it('refuses VM_IO|VM_PFNMAP (a BAR mmap) with EFAULT, pointing at dma-buf', () => {
    const { mm } = machine();
    const va = mm.mmap({ kind: 'pfnmap', length: MiB, phys: 0x3800_0000_0000n, shared: true });
    expect(mm.translate(va + 0x10n)!.phys).toBe(0x3800_0000_0010n);
    expectErrno(() => pinUserPages(mm, va, 0x1000n), 'EFAULT', /dma-buf/);
    expectErrno(() => pinUserPagesLegacy(mm, va, 0x1000n), 'EFAULT', /VM_PFNMAP/);
  });

  it('refuses unmapped addresses and write pins of read-only VMAs', () => {
    const { mm } = machine();
    expectErrno(() => pinUserPages(mm, 0x10_0000n, 0x1000n), 'EFAULT', /no VMA/);
    const ro = mm.mmap({ kind: 'anon', length: 0x2000n, write: false });
    expectErrno(() => pinUserPages(mm, ro, 0x1000n, { write: true }), 'EFAULT', /not writable/);
    unpinUserPages(pinUserPages(mm, ro, 0x1000n));
  });

  it('refuses FOLL_LONGTERM write pins of shared mappings of dirty-tracking files only', () => {
    const { mm, system } = machine();
    const ext4 = system.createFile('data.bin', MiB, { needsDirtyTracking: true });
    const shmem = system.createFile('shm', MiB, { needsDirtyTracking: false });
    const a = mm.mmap({ kind: 'file', file: ext4, length: MiB, shared: true });
    expectErrno(() => pinUserPages(mm, a, 0x1000n, { write: true, longterm: true }), 'EFAULT', /LONGTERM/);
    // Short-term write pins, longterm read pins and tmpfs are allowed.
    unpinUserPages(pinUserPages(mm, a, 0x1000n, { write: true }));
    unpinUserPages(pinUserPages(mm, a, 0x1000n, { longterm: true }));
    const b = mm.mmap({ kind: 'file', file: shmem, length: MiB, shared: true });
    unpinUserPages(pinUserPages(mm, b, 0x1000n, { write: true, longterm: true }));
    // A private mapping is written through a COW copy: allowed.
    const c = mm.mmap({ kind: 'file', file: ext4, length: MiB, shared: false });
    unpinUserPages(pinUserPages(mm, c, 0x1000n, { write: true, longterm: true }));
  });

  it('refuses a wrapping range with EOVERFLOW and one past TASK_SIZE with EFAULT', () => {
    const { mm } = machine();
    expectErrno(() => pinUserPages(mm, (1n << 64n) - 0x1000n, 0x2000n), 'EOVERFLOW');
    expectErrno(() => pinUserPages(mm, (1n << 47n) - 0x1000n, 0x2000n), 'EFAULT', /TASK_SIZE/);
  });

  it('a later VMA that refuses gives a partial count, not an error (__get_user_pages returns i ? i : ret)', () => {
    const { mm, allocator } = machine({ anonOrders: [] });
    const va = mm.mmap({ kind: 'anon', length: 0x4000n, address: 0x1000_0000n });
    mm.mmap({ kind: 'pfnmap', length: 0x1000n, address: 0x1000_4000n, phys: 0x3800_0000_0000n });
    const partial = pinUserPages(mm, va + 0x800n, 0x4800n, { write: true });
    // Pages 0..3 are pinned; the pfnmap page stops the walk.
    expect(partial.pageCount).toBe(4);
    expect(partial.length).toBe(0x3800n);
    expect(partial.phyrs.totalLength).toBe(0x3800n);
    expect([...allocator.liveFolios()].filter((f) => f.pincount === 1)).toHaveLength(4);
    unpinUserPages(partial);
    // The legacy form gives the same count.
    const legacy = pinUserPagesLegacy(mm, va, 0x5000n, { write: true });
    expect(legacy.pages).toHaveLength(4);
    unpinUserPagesLegacy(legacy);
    // An error at the very first page is the error.
    expectErrno(() => pinUserPages(mm, va + 0x4000n, 0x1000n, { write: true }), 'EFAULT', /VM_PFNMAP/);
  });

  it('callers that need the whole range (ib_umem_get, iommufd) pin the rest, get its error, unpin all', () => {
    const { mm, allocator } = machine({ anonOrders: [] });
    const va = mm.mmap({ kind: 'anon', length: 0x4000n, address: 0x1000_0000n });
    mm.mmap({ kind: 'pfnmap', length: 0x1000n, address: 0x1000_4000n, phys: 0x3800_0000_0000n });
    expectErrno(() => pinUserPagesWhole(mm, va, 0x5000n, { write: true }), 'EFAULT', /VM_PFNMAP/);
    for (const folio of allocator.liveFolios()) expect(folio.pincount).toBe(0);
    // The pages were faulted in (as GUP leaves them) but nothing stays pinned.
    expect(mm.translate(va + 0x3000n)).toBeDefined();
  });
});

describe('unpin and folio lifetime', () => {
  it('marks folios dirty when asked (unpin_user_pages_dirty_lock)', () => {
    const { mm, system } = machine({ anonOrders: [] });
    const va = mm.mmap({ kind: 'anon', length: 0x3000n });
    const pin = pinUserPages(mm, va, 0x2000n, { write: true });
    const folios = pinnedFolios(pin).map((f) => f.folio);
    expect(folios.some((f) => system.isDirty(f))).toBe(false);
    unpinUserPages(pin, { dirty: true });
    expect(folios.every((f) => system.isDirty(f))).toBe(true);
    expect(system.isDirty(mm.translate(va + 0x2000n)?.folio ?? folios[0]!)).toBe(true);
    expectErrno(() => unpinUserPages(pin), 'EINVAL', /already unpinned/);
  });

  it('keeps a pinned folio alive across munmap and frees it on the last unpin', () => {
    const { mm, allocator } = machine();
    const va = mm.mmap({ kind: 'anon', length: 2n * MiB });
    const pin = pinUserPages(mm, va, 2n * MiB, { write: true });
    const folio = pinnedFolios(pin)[0]!.folio;
    mm.munmap(va, 2n * MiB);
    expect(mm.translate(va)).toBeUndefined();
    expect(allocator.folioAt(folio.pfn)).toBe(folio);
    expect(allocator.allocatedPages).toBe(512);
    unpinUserPages(pin);
    expect(allocator.folioAt(folio.pfn)).toBeUndefined();
    expect(allocator.allocatedPages).toBe(0);
  });

  it('partial munmap of a THP keeps the rest mapped with the reference moved', () => {
    const { mm, allocator } = machine();
    const va = mm.mmap({ kind: 'anon', length: 2n * MiB });
    mm.touch(va, 2n * MiB, { write: true });
    const folio = mm.translate(va)!.folio!;
    mm.munmap(va + MiB, 0x1000n);
    expect(folio.refcount).toBe(2);
    expect(mm.translate(va + MiB)).toBeUndefined();
    expect(mm.translate(va + MiB + 0x1000n)!.folio).toBe(folio);
    mm.munmap(va, 2n * MiB);
    expect(allocator.allocatedPages).toBe(0);
  });

  it('a write pin of a private file mapping pins a COW copy, not the page cache', () => {
    const { mm, system, bytes } = machine();
    const file = system.createFile('lib.so', MiB);
    const shared = mm.mmap({ kind: 'file', file, length: MiB, shared: true, write: false });
    mm.touch(shared, 0x1000n);
    const cached = mm.translate(shared)!;
    bytes.write(cached.phys, new Uint8Array([1, 2, 3]));
    const priv = mm.mmap({ kind: 'file', file, length: MiB });
    const pin = pinUserPages(mm, priv, 0x1000n, { write: true });
    expect(pin.phyrs.addressAt(0)).not.toBe(cached.phys);
    expect([...bytes.read(pin.phyrs.addressAt(0), 3)]).toEqual([1, 2, 3]);
    expect(mm.readUser(priv, 3)).toEqual(new Uint8Array([1, 2, 3]));
    unpinUserPages(pin);
  });

  it('hugetlb: mmap reserves, munmap may not split a huge page, pool refills', () => {
    const { mm, system } = machine();
    system.reserveHugetlb(9, 2);
    expectErrno(() => mm.mmap({ kind: 'hugetlb', hugeOrder: 9, length: 6n * MiB }), 'ENOMEM');
    const va = mm.mmap({ kind: 'hugetlb', hugeOrder: 9, length: 3n * MiB });
    expect(system.hugetlbPool(9).reserved).toBe(2);
    expectErrno(() => mm.munmap(va + 0x1000n * 16n, 0x1000n), 'EINVAL', /hugetlb/);
    const pin = pinUserPages(mm, va, 4n * MiB, { write: true });
    expect(pin.phyrs.totalLength).toBe(4n * MiB);
    mm.munmap(va, 4n * MiB);
    expect(system.hugetlbPool(9).free).toBe(2);
    // A folio still pinned is not handed to a new mapping.
    const again = mm.mmap({ kind: 'hugetlb', hugeOrder: 9, length: 2n * MiB });
    expectErrno(() => mm.touch(again, 1n), 'ENOMEM');
    unpinUserPages(pin);
    mm.touch(again, 1n);
    expect(mm.translate(again)!.folio!.order).toBe(9);
  });
});

describe('what a read-only pin maps (mm/gup.c, mm/memory.c)', () => {
  it('a short-term read-only pin of untouched anonymous memory gets the zero page, unpinned and unshared', () => {
    const { mm, system, allocator } = machine({ anonOrders: [] });
    const va = mm.mmap({ kind: 'anon', length: 0x3000n });
    const pin = pinUserPages(mm, va, 0x3000n);
    // do_anonymous_page maps the one zero page at every page of a read fault.
    const zero = system.zeroFolio();
    expect(pin.phyrs.count).toBe(3);
    pin.phyrs.forEachRange((address, length) => {
      expect(address).toBe(zero.pfn << 12n);
      expect(length).toBe(0x1000n);
    });
    // try_grab_folio takes no pin on the zero page.
    expect(zero.pincount).toBe(0);
    expect(pinnedFolios(pin)).toEqual([]);
    expect(mm.readUser(va, 16)).toEqual(new Uint8Array(16));
    unpinUserPages(pin);
    expect(zero.pincount).toBe(0);
    // A write fault replaces the zero page by a private page; the zero page stays.
    mm.writeUser(va + 0x1000n, new Uint8Array([7]));
    expect(mm.translate(va + 0x1000n)!.phys >> 12n).not.toBe(zero.pfn);
    expect(mm.translate(va)!.phys >> 12n).toBe(zero.pfn);
    expect(allocator.folioAt(zero.pfn)).toBe(zero);
    mm.destroy();
    expect(allocator.folioAt(zero.pfn)).toBe(zero);
  });

  it('a long-term read-only pin of untouched anonymous memory gets real pages (gup_must_unshare of the zero page)', () => {
    const { mm, system } = machine({ anonOrders: [] });
    const va = mm.mmap({ kind: 'anon', length: 0x2000n });
    const pin = pinUserPages(mm, va, 0x2000n, { longterm: true });
    expect(system.isZeroPfn(pin.phyrs.addressAt(0) >> 12n)).toBe(false);
    expect(pinnedFolios(pin).map((f) => f.folio.pincount)).toEqual([1, 1]);
    unpinUserPages(pin);
  });

  it('a long-term read-only pin of a MAP_PRIVATE file page unshares it into an anonymous copy', () => {
    const { mm, system, bytes } = machine({ anonOrders: [] });
    const file = system.createFile('lib.so', MiB, { needsDirtyTracking: true });
    const va = mm.mmap({ kind: 'file', file, length: 0x2000n, shared: false, write: false });
    mm.touch(va, 0x2000n);
    const cachePfn = mm.translate(va)!.phys >> 12n;
    bytes.write(cachePfn << 12n, new Uint8Array([1, 2, 3]));
    // Short-term: the page-cache page itself is pinned (no unshare for short-term R/O pins).
    const short = pinUserPages(mm, va, 0x1000n);
    expect(short.phyrs.addressAt(0) >> 12n).toBe(cachePfn);
    unpinUserPages(short);
    // Long-term: FAULT_FLAG_UNSHARE puts a private copy with the same bytes in its place.
    const long = pinUserPages(mm, va, 0x1000n, { longterm: true });
    const copyPfn = long.phyrs.addressAt(0) >> 12n;
    expect(copyPfn).not.toBe(cachePfn);
    expect(mm.translate(va)!.phys >> 12n).toBe(copyPfn);
    expect(bytes.read(copyPfn << 12n, 3)).toEqual(new Uint8Array([1, 2, 3]));
    // The shared page cache keeps its page: a second private mapping still sees it.
    expect(file.cache.get(0)!.pfn).toBe(cachePfn);
    unpinUserPages(long);
  });
});

describe('long-term pins and ZONE_MOVABLE / CMA (mm/gup.c check_and_migrate_movable_folios)', () => {
  // RAM at 4 GiB; its first 16 MiB are declared movable (movablecore= or a CMA area).
  const MOVABLE_END = 4n * GiB + 16n * MiB;
  function movableMachine() {
    const base = machine({ anonOrders: [] });
    const system = new MemorySystem(base.allocator, {
      bytes: base.bytes,
      anonOrders: [],
      movablePfns: [{ startPfn: (4n * GiB) >> 12n, endPfn: MOVABLE_END >> 12n }],
    });
    return { ...base, system, mm: new MmStruct(system) };
  }

  it('a FOLL_LONGTERM pin migrates movable pages out first, bytes and all; a short-term pin does not', () => {
    const { mm, allocator } = movableMachine();
    const va = mm.mmap({ kind: 'anon', length: 0x3000n });
    mm.touch(va, 0x3000n, { write: true });
    mm.writeUser(va, new Uint8Array([1, 2, 3]));
    mm.writeUser(va + 0x2000n, new Uint8Array([9]));
    // The buddy hands out the lowest free memory first: these pages sit in the movable range.
    const before = [0n, 0x1000n, 0x2000n].map((o) => mm.translate(va + o)!.phys);
    expect(before.every((p) => p < MOVABLE_END)).toBe(true);
    const short = pinUserPages(mm, va, 0x3000n, { write: true });
    expect(short.phyrs.addressAt(0)).toBe(before[0]);
    unpinUserPages(short);
    const long = pinUserPages(mm, va, 0x3000n, { write: true, longterm: true });
    const after = [0n, 0x1000n, 0x2000n].map((o) => mm.translate(va + o)!.phys);
    expect(after.every((p) => p >= MOVABLE_END)).toBe(true);
    expect(long.phyrs.addressAt(0)).toBe(after[0]);
    expect(mm.readUser(va, 3)).toEqual(new Uint8Array([1, 2, 3]));
    expect(mm.readUser(va + 0x2000n, 1)).toEqual(new Uint8Array([9]));
    // The old frames went back to the allocator; the new ones hold the mapping and the pin.
    for (const p of before) expect(allocator.folioAt(p >> 12n)).toBeUndefined();
    expect(pinnedFolios(long).map((f) => [f.folio.refcount, f.folio.pincount])).toEqual([
      [1 + GUP_PIN_COUNTING_BIAS, 1],
      [1 + GUP_PIN_COUNTING_BIAS, 1],
      [1 + GUP_PIN_COUNTING_BIAS, 1],
    ]);
    unpinUserPages(long);
    mm.destroy();
  });
});
