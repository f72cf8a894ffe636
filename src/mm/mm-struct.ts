/**
 * A process address space (struct mm_struct): VMAs, the page table, mmap/munmap and the fault
 * handler that fills the page table on first touch.
 *
 * Faults follow mm/memory.c and mm/huge_memory.c in outline: an anonymous fault maps the largest
 * enabled folio order whose naturally aligned block lies inside the VMA and is wholly unmapped, and
 * falls back to smaller orders when the allocator has no block that large (thp_fault_fallback);
 * hugetlb faults take a pre-reserved huge folio; file faults map page-cache folios, and a write to
 * a private file mapping copies the page (COW). PFN-mapped VMAs are filled at mmap time, as
 * remap_pfn_range does, and never fault.
 */
import { fail, formatHex } from '../core/index.ts';
import type { ByteSource, Folio } from '../platform/index.ts';
import type { MemorySystem } from './memory-system.ts';
import { clip, cut, type PageMapping, PageTable } from './page-table.ts';
import {
  type PageCacheFile,
  TASK_SIZE_MAX_4LEVEL,
  VM_DONTEXPAND,
  VM_HUGETLB,
  VM_IO,
  VM_MAYREAD,
  VM_MAYWRITE,
  VM_PFNMAP,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
  type Vma,
  type VmaKind,
  vmaSlice,
} from './vma.ts';

export interface MmapOptions {
  readonly length: bigint;
  readonly kind: VmaKind;
  /** PROT_READ / PROT_WRITE (default read and write). */
  readonly read?: boolean;
  readonly write?: boolean;
  /** MAP_FIXED address; otherwise chosen top-down below the mmap base. */
  readonly address?: bigint;
  /** MAP_SHARED (file and pfnmap mappings); anonymous and hugetlb mappings here are private. */
  readonly shared?: boolean;
  /** hugetlb: 9 (2M) or 18 (1G). */
  readonly hugeOrder?: number;
  readonly file?: PageCacheFile;
  /** File offset in bytes (page aligned). */
  readonly offset?: bigint;
  /** pfnmap: the physical address mapped (a BAR, as vfio-pci's mmap of a region does). */
  readonly phys?: bigint;
}

/** Default mmap_base: mappings are placed top-down below it (arch_pick_mmap_layout). */
export const MMAP_BASE = 0x7f00_0000_0000n;
const PAGE = 4096n;

/** How GUP faults pages in (FOLL_* decisions made in mm/gup.c). */
export interface FaultHow {
  /** A read fault of untouched anonymous memory maps the shared zero page (do_anonymous_page). */
  readonly zeroPage?: boolean;
  /** FAULT_FLAG_UNSHARE: replace pages the mapping does not own by anonymous copies. */
  readonly unshare?: boolean;
}

export interface UserTranslation {
  readonly phys: bigint;
  readonly folio: Folio | undefined;
  readonly vma: Vma;
}

export class MmStruct {
  readonly system: MemorySystem;
  readonly taskSize: bigint;
  readonly pageTable = new PageTable();
  private vmaList: Vma[] = [];

  constructor(system: MemorySystem, options: { taskSize?: bigint } = {}) {
    this.system = system;
    this.taskSize = options.taskSize ?? TASK_SIZE_MAX_4LEVEL;
  }

  vmas(): readonly Vma[] {
    return this.vmaList;
  }

  /** vma_lookup: the VMA containing `address`, if any. */
  findVma(address: bigint): Vma | undefined {
    if (address < 0n || address >= this.taskSize) return undefined;
    const vpn = Number(address >> 12n);
    const v = this.vmaList;
    let lo = 0;
    let hi = v.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (v[mid]!.endVpn <= vpn) lo = mid + 1;
      else hi = mid;
    }
    const vma = v[lo];
    return vma !== undefined && vma.startVpn <= vpn ? vma : undefined;
  }

  /** do_mmap: EINVAL on bad sizes or alignment, ENOMEM when no room or no huge pages. */
  mmap(options: MmapOptions): bigint {
    const { kind } = options;
    const hugeOrder = kind === 'hugetlb' ? (options.hugeOrder ?? 9) : 0;
    const granule = PAGE << BigInt(hugeOrder);
    if (options.length <= 0n) fail('EINVAL', `mmap length ${options.length} must be positive`);
    // hugetlbfs rounds the length up to the huge page size (hugetlb_get_unmapped_area).
    const length = (options.length + granule - 1n) & -granule;
    if (length > this.taskSize) fail('ENOMEM', `mmap of ${formatHex(length)} bytes exceeds TASK_SIZE`);
    const read = options.read ?? true;
    const write = options.write ?? true;
    const shared = options.shared ?? false;
    let flags = (read ? VM_READ : 0) | (write ? VM_WRITE : 0) | VM_MAYREAD;
    // A private mapping may always be made writable later (VM_MAYWRITE); a shared one here too.
    flags |= VM_MAYWRITE;
    if (shared) flags |= VM_SHARED;
    let file: PageCacheFile | undefined;
    let pgoff = 0;
    let pfnBase = 0;
    switch (kind) {
      case 'anon':
        if (shared) fail('EINVAL', 'shared anonymous memory is shmem: map a file instead');
        break;
      case 'hugetlb':
        if (hugeOrder !== 9 && hugeOrder !== 18) fail('EINVAL', `hugetlb order ${hugeOrder} is not 2M or 1G`);
        flags |= VM_HUGETLB;
        break;
      case 'file': {
        file = options.file;
        if (file === undefined) fail('EINVAL', 'a file mapping needs a file');
        const offset = options.offset ?? 0n;
        if (offset < 0n || offset % PAGE !== 0n)
          fail('EINVAL', `file offset ${formatHex(offset)} is not page aligned`);
        pgoff = Number(offset >> 12n);
        break;
      }
      case 'pfnmap': {
        const phys = options.phys;
        if (phys === undefined || phys < 0n || phys % PAGE !== 0n) {
          fail('EINVAL', `a PFN mapping needs a page-aligned physical address, not ${phys}`);
        }
        pfnBase = Number(phys >> 12n);
        // vfio_pci_mmap / io_remap_pfn_range set these: no struct pages behind the mapping.
        flags |= VM_IO | VM_PFNMAP | VM_DONTEXPAND;
        break;
      }
    }
    const start = options.address === undefined ? this.unmappedArea(length, granule, kind) : options.address;
    if (start % granule !== 0n)
      fail('EINVAL', `address ${formatHex(start)} is not aligned to ${formatHex(granule)}`);
    if (start < 0n || start + length > this.taskSize)
      fail('ENOMEM', `${formatHex(start)} + ${formatHex(length)} is outside user space`);
    if (kind === 'hugetlb') this.system.reserveHugePages(hugeOrder, Number(length / granule));
    // MAP_FIXED replaces what was there.
    if (options.address !== undefined) this.munmap(start, length);
    const startVpn = Number(start >> 12n);
    const endVpn = Number((start + length) >> 12n);
    const vma: Vma = {
      start,
      end: start + length,
      startVpn,
      endVpn,
      flags,
      kind,
      hugeOrder,
      file,
      pgoff,
      pfnBase,
    };
    this.insertVma(vma);
    if (kind === 'pfnmap') {
      this.pageTable.insertAt(this.pageTable.firstEndingAfter(startVpn), [
        {
          vpn: startVpn,
          pages: endVpn - startVpn,
          pfn: pfnBase,
          folio: undefined,
          folioPage: 0,
          anon: false,
        },
      ]);
    }
    this.system.metrics?.add('mm.mmaps');
    return start;
  }

  /** do_munmap: unmaps [start, start+length) (length rounded up to pages); folios lose the mapping's reference. */
  munmap(start: bigint, length: bigint): void {
    if (start % PAGE !== 0n) fail('EINVAL', `munmap address ${formatHex(start)} is not page aligned`);
    if (length <= 0n) fail('EINVAL', `munmap length ${length} must be positive`);
    const end = (start + length + PAGE - 1n) & -PAGE;
    if (end > this.taskSize) fail('EINVAL', `munmap range ends at ${formatHex(end)}, beyond TASK_SIZE`);
    const from = Number(start >> 12n);
    const to = Number(end >> 12n);
    // hugetlb VMAs may only be cut at huge page boundaries (hugetlb_vm_op_split).
    for (const vma of this.vmaList) {
      if (vma.kind !== 'hugetlb' || vma.endVpn <= from || vma.startVpn >= to) continue;
      const size = 2 ** vma.hugeOrder;
      if ((from > vma.startVpn && from % size !== 0) || (to < vma.endVpn && to % size !== 0)) {
        fail('EINVAL', `munmap would split a hugetlb page of ${formatHex(BigInt(size) << 12n)} bytes`);
      }
    }
    for (const { original, keptPieces } of this.pageTable.remove(from, to)) {
      if (original.basePages === true) {
        // Each page of the run is its own folio: the pages unmapped lose their reference, in VA order.
        const { pfn, pages } = clip(original, from, to);
        this.system.allocator.putBasePages(pfn, pages);
        continue;
      }
      const folio = original.folio;
      if (folio === undefined) continue;
      if (keptPieces === 2) this.system.allocator.getFolio(folio);
      else if (keptPieces === 0) this.dropMapping(folio);
    }
    const kept: Vma[] = [];
    for (const vma of this.vmaList) {
      if (vma.endVpn <= from || vma.startVpn >= to) {
        kept.push(vma);
        continue;
      }
      if (vma.kind === 'hugetlb') {
        // Give back the reservations of huge pages never faulted in.
        const size = 2 ** vma.hugeOrder;
        const lo = Math.max(from, vma.startVpn);
        const hi = Math.min(to, vma.endVpn);
        this.system.unreserveHugePages(vma.hugeOrder, (hi - lo) / size);
      }
      if (vma.startVpn < from) kept.push(vmaSlice(vma, vma.startVpn, from));
      if (vma.endVpn > to) kept.push(vmaSlice(vma, to, vma.endVpn));
    }
    this.vmaList = kept;
    this.system.metrics?.add('mm.munmaps');
  }

  /**
   * Faults in every page of [start, start+length) (as touching each page would): EFAULT where no
   * VMA covers an address or the VMA does not allow the access.
   */
  touch(start: bigint, length: bigint, options: { write?: boolean } = {}): void {
    if (length <= 0n) return;
    const write = options.write ?? false;
    const from = Number(start >> 12n);
    const to = Number((start + length + PAGE - 1n) >> 12n);
    let vpn = from;
    while (vpn < to) {
      const vma = this.findVma(BigInt(vpn) << 12n);
      if (vma === undefined) fail('EFAULT', `no mapping at ${formatHex(BigInt(vpn) << 12n)}`);
      if (write ? (vma.flags & VM_WRITE) === 0 : (vma.flags & VM_READ) === 0) {
        fail(
          'EFAULT',
          `${write ? 'write' : 'read'} fault at ${formatHex(BigInt(vpn) << 12n)} in a VMA without that permission`,
        );
      }
      const stop = Math.min(to, vma.endVpn);
      this.faultIn(vma, vpn, stop, write);
      vpn = stop;
    }
  }

  /**
   * Makes pages [from, to) of `vma` present (and, for a write to a private file mapping, private
   * copies). The caller has checked permissions. Used by touch() and by GUP.
   */
  faultIn(vma: Vma, from: number, to: number, write: boolean, how: FaultHow = {}): void {
    if (vma.kind === 'pfnmap') return;
    const pt = this.pageTable;
    let idx = pt.firstEndingAfter(from);
    let vpn = from;
    while (vpn < to) {
      const m = pt.at(idx);
      if (m !== undefined && m.vpn <= vpn) {
        vpn = m.vpn + m.pages;
        idx++;
        continue;
      }
      const prev = pt.at(idx - 1);
      const holeStart = Math.max(vma.startVpn, prev === undefined ? 0 : prev.vpn + prev.pages);
      const holeEnd = Math.min(vma.endVpn, m === undefined ? Number.MAX_SAFE_INTEGER : m.vpn);
      const added =
        how.zeroPage === true && vma.kind === 'anon'
          ? this.zeroPages(vpn, Math.min(to, holeEnd))
          : this.fillHole(vma, vpn, Math.min(to, holeEnd), holeStart, holeEnd);
      pt.insertAt(idx, added);
      idx += added.length;
      vpn = Math.min(to, holeEnd);
      const last = added[added.length - 1];
      if (last !== undefined) vpn = Math.max(vpn, last.vpn + last.pages);
    }
    // A write (or a FAULT_FLAG_UNSHARE fault) in a private mapping replaces every page it does not
    // own, page-cache pages and the zero page alike, with a private anonymous copy (wp_page_copy).
    const private_ = (vma.flags & VM_SHARED) === 0 && (vma.kind === 'file' || vma.kind === 'anon');
    if ((write || how.unshare === true) && private_) this.breakCow(from, to);
    if (write && (vma.flags & VM_SHARED) !== 0) {
      // A write through a shared file mapping dirties the page-cache folio (set_page_dirty).
      for (const m of pt.range(from, to)) {
        if (m.folio !== undefined) this.system.markDirty(m.folio);
        else if (m.basePages === true) {
          const { pfn, pages } = clip(m, from, to);
          this.system.allocator.markBasePagesDirty(pfn, pages);
        }
      }
    }
  }

  /** Maps pages [from, to) inside the hole [holeStart, holeEnd) of `vma`; returns the new extents in order. */
  private fillHole(vma: Vma, from: number, to: number, holeStart: number, holeEnd: number): PageMapping[] {
    const out: PageMapping[] = [];
    let vpn = from;
    while (vpn < to) {
      if (vma.kind === 'hugetlb') {
        const size = 2 ** vma.hugeOrder;
        const block = vpn - (vpn % size);
        const folio = this.system.takeHugeFolio(vma.hugeOrder);
        out.push({ vpn: block, pages: size, pfn: Number(folio.pfn), folio, folioPage: 0, anon: true });
        vpn = block + size;
        this.system.metrics?.add('mm.faults');
        continue;
      }
      if (vma.kind === 'file') {
        const index = vma.pgoff + (vpn - vma.startVpn);
        const { folio, first } = this.system.pageCacheFolio(vma.file!, index);
        // Map the part of the folio that lies in this hole; the page cache keeps its own reference.
        const folioVpn = vpn - (index - first);
        const lo = Math.max(folioVpn, holeStart);
        const hi = Math.min(folioVpn + 2 ** folio.order, holeEnd);
        this.system.allocator.getFolio(folio);
        out.push({
          vpn: lo,
          pages: hi - lo,
          pfn: Number(folio.pfn) + (lo - folioVpn),
          folio,
          folioPage: lo - folioVpn,
          anon: false,
        });
        vpn = hi;
        this.system.metrics?.add('mm.faults');
        continue;
      }
      // Anonymous: the largest enabled order whose aligned block fits the hole and the VMA.
      let mapped = false;
      let tried = false;
      for (const order of this.system.anonOrders) {
        const size = 2 ** order;
        const block = vpn - (vpn % size);
        if (block < holeStart || block + size > holeEnd) continue;
        tried = true;
        const folio = this.system.tryAlloc(order);
        if (folio === undefined) continue;
        out.push({ vpn: block, pages: size, pfn: Number(folio.pfn), folio, folioPage: 0, anon: true });
        vpn = block + size;
        mapped = true;
        this.system.metrics?.add(order >= 9 ? 'mm.thp_faults' : 'mm.mthp_faults');
        break;
      }
      if (mapped) continue;
      // Base pages (do_anonymous_page in mm/memory.c: one order-0 folio a fault). Where no larger order was even
      // tried, none can be until the next place one fits: those faults are taken in one go, as
      // runs of consecutive frames (allocBasePages gives the frames one-by-one faults would get).
      const count = tried ? 1 : this.basePagesUntil(vpn, to, holeEnd);
      let at = vpn;
      for (const run of this.system.allocator.allocBasePages(count)) {
        const last = out[out.length - 1];
        if (last?.basePages === true && last.vpn + last.pages === at && last.pfn + last.pages === run.pfn) {
          // The frames continue the run before (a THP fallback a page at a time): one extent.
          out[out.length - 1] = { ...last, pages: last.pages + run.pages };
        } else {
          out.push({
            vpn: at,
            pages: run.pages,
            pfn: run.pfn,
            folio: undefined,
            folioPage: 0,
            anon: true,
            basePages: true,
          });
        }
        at += run.pages;
      }
      vpn += count;
      this.system.metrics?.add('mm.faults', count);
    }
    return out;
  }

  /**
   * How many pages from `vpn` (where no enabled order's aligned block fits the hole) fault in as
   * base pages before `to` or the first page whose aligned block of some enabled order fits.
   */
  private basePagesUntil(vpn: number, to: number, holeEnd: number): number {
    let stop = to;
    for (const order of this.system.anonOrders) {
      const size = 2 ** order;
      // The pages up to the next aligned start share this page's block, which does not fit.
      const next = vpn - (vpn % size) + size;
      if (next + size <= holeEnd) stop = Math.min(stop, next);
    }
    return Math.max(1, stop - vpn);
  }

  /** do_anonymous_page for a read fault: the shared zero page at each page of [from, to). */
  private zeroPages(from: number, to: number): PageMapping[] {
    const zero = this.system.zeroFolio();
    const out: PageMapping[] = [];
    for (let vpn = from; vpn < to; vpn++) {
      out.push({ vpn, pages: 1, pfn: Number(zero.pfn), folio: zero, folioPage: 0, anon: false });
    }
    this.system.metrics?.add('mm.zero_page_faults', to - from);
    return out;
  }

  /** wp_page_copy for each page a private mapping does not own in [from, to): a private anon copy. */
  private breakCow(from: number, to: number): void {
    const pt = this.pageTable;
    const shared = [...pt.range(from, to)].filter((m) => !m.anon);
    for (const m of shared) {
      const lo = Math.max(m.vpn, from);
      const hi = Math.min(m.vpn + m.pages, to);
      const copies: PageMapping[] = [];
      for (let vpn = lo; vpn < hi; vpn++) {
        const folio = this.system.allocator.allocFolio(0);
        const srcPfn = m.pfn + (vpn - m.vpn);
        this.system.bytes?.copy(BigInt(srcPfn) << 12n, folio.pfn << 12n, 4096);
        copies.push({ vpn, pages: 1, pfn: Number(folio.pfn), folio, folioPage: 0, anon: true });
      }
      // Take the copied pages out of the page-cache extent (moving its reference), then put the copies in.
      for (const { original, keptPieces } of pt.remove(lo, hi)) {
        if (keptPieces === 2) this.system.allocator.getFolio(original.folio!);
        else if (keptPieces === 0) this.dropMapping(original.folio!);
      }
      pt.insertAt(pt.firstEndingAfter(lo), copies);
      this.system.metrics?.add('mm.cow_copies', copies.length);
    }
  }

  /**
   * migrate_pages of the anonymous folios mapped in [from, to) that are not long-term pinnable
   * (ZONE_MOVABLE, CMA) to folios outside those ranges, as check_and_migrate_movable_folios does
   * before a FOLL_LONGTERM pin completes: bytes copied, every extent of this mm moved to the new
   * folio with its reference, the old folio's references dropped. Returns the folios migrated.
   * A base-page run is its pages' folios: those in [from, to) move one by one.
   */
  migrateUnpinnable(from: number, to: number): number {
    const pt = this.pageTable;
    const { allocator } = this.system;
    const moved = new Map<Folio, Folio>();
    /** Base pages moved: old frame → new folio. */
    const movedPages = new Map<number, Folio>();
    const copy = (fromPfn: bigint, toPfn: bigint, pages: number) =>
      this.system.bytes?.copy(fromPfn << 12n, toPfn << 12n, 4096 * pages);
    for (const m of pt.range(from, to)) {
      if (m.basePages === true) {
        const { pfn: first, pages } = clip(m, from, to);
        if (this.system.pinnableFrames(BigInt(first), BigInt(pages))) continue;
        for (let pfn = first; pfn < first + pages; pfn++) {
          if (this.system.pinnableFrames(BigInt(pfn), 1n)) continue;
          const target = this.system.allocPinnable(0);
          copy(BigInt(pfn), target.pfn, 1);
          movedPages.set(pfn, target);
        }
        continue;
      }
      const folio = m.folio;
      if (folio === undefined || !m.anon || moved.has(folio)) continue;
      if (this.isHugetlbFolio(folio) || this.system.isLongtermPinnable(folio)) continue;
      const target = this.system.allocPinnable(folio.order);
      copy(folio.pfn, target.pfn, 2 ** folio.order);
      moved.set(folio, target);
    }
    if (moved.size === 0 && movedPages.size === 0) return 0;
    const movedPfns = [...movedPages.keys()].sort((x, y) => x - y);
    // Every extent of a moved folio, anywhere in this address space, follows it with its reference;
    // the old references go afterwards, in the order the extents come.
    const extents = new Map<Folio, number>();
    const puts: (Folio | number)[] = [];
    for (let i = 0; i < pt.extentCount; i++) {
      const m = pt.at(i)!;
      if (m.basePages === true) {
        const pieces = this.splitMovedPages(m, movedPfns, movedPages, puts);
        if (pieces === undefined) continue;
        pt.replace(m.vpn, m.vpn + m.pages, pieces);
        i += pieces.length - 1;
        continue;
      }
      const target = m.folio === undefined ? undefined : moved.get(m.folio);
      if (target === undefined) continue;
      pt.replace(m.vpn, m.vpn + m.pages, [{ ...m, folio: target, pfn: Number(target.pfn) + m.folioPage }]);
      if (!extents.has(m.folio!)) puts.push(m.folio!);
      extents.set(m.folio!, (extents.get(m.folio!) ?? 0) + 1);
    }
    for (const old of puts) {
      if (typeof old === 'number') {
        allocator.putBasePages(old, 1);
        continue;
      }
      const count = extents.get(old)!;
      // allocFolio gave the target its first reference; each further extent takes one.
      for (let k = 1; k < count; k++) allocator.getFolio(moved.get(old)!);
      for (let k = 0; k < count; k++) allocator.putFolio(old);
    }
    this.system.metrics?.add('mm.longterm_migrations', moved.size + movedPages.size);
    return moved.size + movedPages.size;
  }

  /**
   * The extents replacing base-page run `m` when some of its pages moved (undefined if none did):
   * the pages left in place stay runs, each moved page maps its new folio. The old frames are
   * queued on `puts` in VA order. `movedPfns` is sorted.
   */
  private splitMovedPages(
    m: PageMapping,
    movedPfns: readonly number[],
    targets: Map<number, Folio>,
    puts: (Folio | number)[],
  ): PageMapping[] | undefined {
    let k = lowerBound(movedPfns, m.pfn);
    if (k === movedPfns.length || movedPfns[k]! >= m.pfn + m.pages) return undefined;
    const pieces: PageMapping[] = [];
    let next = m.vpn;
    for (; k < movedPfns.length && movedPfns[k]! < m.pfn + m.pages; k++) {
      const pfn = movedPfns[k]!;
      const vpn = m.vpn + (pfn - m.pfn);
      if (vpn > next) pieces.push(cut(m, next, vpn));
      const target = targets.get(pfn)!;
      pieces.push({ vpn, pages: 1, pfn: Number(target.pfn), folio: target, folioPage: 0, anon: m.anon });
      puts.push(pfn);
      next = vpn + 1;
    }
    if (next < m.vpn + m.pages) pieces.push(cut(m, next, m.vpn + m.pages));
    return pieces;
  }

  /** The physical address `va` maps to now (no fault), or undefined. */
  translate(va: bigint): UserTranslation | undefined {
    const vma = this.findVma(va);
    if (vma === undefined) return undefined;
    const m = this.pageTable.lookup(Number(va >> 12n));
    if (m === undefined) return undefined;
    const vpn = Number(va >> 12n);
    const pfn = m.pfn + (vpn - m.vpn);
    const folio = m.basePages === true ? this.system.allocator.folioAt(BigInt(pfn)) : m.folio;
    return { phys: (BigInt(pfn) << 12n) | (va & 0xfffn), folio, vma };
  }

  /** The page-table extents over [start, start+length), clipped to it (for inspection and tests). */
  mappings(start: bigint, length: bigint): PageMapping[] {
    const from = Number(start >> 12n);
    const to = Number((start + length + PAGE - 1n) >> 12n);
    return [...this.pageTable.range(from, to)].map((m) => clip(m, from, to));
  }

  /** copy_to_user: writes through the page table into the byte store (faulting pages in). */
  writeUser(va: bigint, data: Uint8Array): void {
    this.copyUser(va, data.length, true, (phys, offset, take) => {
      this.bytesOrFail().write(phys, data.subarray(offset, offset + take));
    });
  }

  /**
   * copy_to_user of bytes described by `source` (a pattern): each physically contiguous piece of the
   * range is stored as a description, so a 4 GiB pattern costs a few extents, not 4 GiB.
   */
  writeUserSource(va: bigint, length: bigint, source: ByteSource, sourceOffset: bigint): void {
    const bytes = this.bytesOrFail();
    this.forEachPhys(va, length, true, (phys, offset, take) => {
      bytes.writeSource(phys, take, source, sourceOffset + offset);
    });
  }

  /** copy_from_user. */
  readUser(va: bigint, length: number): Uint8Array {
    const out = new Uint8Array(length);
    this.copyUser(va, length, false, (phys, offset, take) => {
      out.set(this.bytesOrFail().read(phys, take), offset);
    });
    return out;
  }

  /** Unmaps everything (exit_mmap). */
  destroy(): void {
    for (const vma of [...this.vmaList]) this.munmap(vma.start, vma.end - vma.start);
  }

  private copyUser(
    va: bigint,
    length: number,
    write: boolean,
    fn: (phys: bigint, offset: number, take: number) => void,
  ): void {
    this.forEachPhys(va, BigInt(length), write, (phys, offset, take) =>
      fn(phys, Number(offset), Number(take)),
    );
  }

  /**
   * Faults [va, va + length) in, then hands each physically contiguous piece (one page-table extent,
   * clipped to the range) to `fn` with its offset in the range: one call per extent, not per page.
   */
  private forEachPhys(
    va: bigint,
    length: bigint,
    write: boolean,
    fn: (phys: bigint, offset: bigint, take: bigint) => void,
  ): void {
    if (length === 0n) return;
    this.touch(va, length, { write });
    const end = va + length;
    let covered = va;
    for (const m of this.mappings(va, length)) {
      const mapStart = BigInt(m.vpn) << 12n;
      const from = mapStart > va ? mapStart : va;
      const mapEnd = BigInt(m.vpn + m.pages) << 12n;
      const to = mapEnd < end ? mapEnd : end;
      if (from !== covered) break;
      fn((BigInt(m.pfn) << 12n) + (from - mapStart), from - va, to - from);
      covered = to;
    }
    if (covered !== end) fail('EFAULT', `no page at ${formatHex(covered)}`);
  }

  private bytesOrFail() {
    const bytes = this.system.bytes;
    if (bytes === undefined) fail('EINVAL', 'this memory system has no byte store');
    return bytes;
  }

  /** The mapping's reference on a folio goes (hugetlb folios go back to their pool). */
  private dropMapping(folio: Folio): void {
    if (this.system.isZeroPfn(folio.pfn)) return; // the zero page is never counted
    if (this.isHugetlbFolio(folio)) this.system.returnHugeFolio(folio);
    else this.system.allocator.putFolio(folio);
  }

  private isHugetlbFolio(folio: Folio): boolean {
    return this.system.ownsHugeFolio(folio);
  }

  private insertVma(vma: Vma): void {
    const at = this.vmaList.findIndex((v) => v.startVpn >= vma.endVpn);
    if (at < 0) this.vmaList.push(vma);
    else this.vmaList.splice(at, 0, vma);
  }

  /** get_unmapped_area, top-down below MMAP_BASE, aligned to `align` (THP-aligned for large anon). */
  private unmappedArea(length: bigint, granule: bigint, kind: VmaKind): bigint {
    let align = granule;
    // thp_get_unmapped_area: anonymous mappings of at least PMD size are PMD aligned.
    if (kind === 'anon' && length >= 0x20_0000n) align = 0x20_0000n;
    let top = MMAP_BASE < this.taskSize ? MMAP_BASE : this.taskSize;
    for (let i = this.vmaList.length - 1; i >= -1; i--) {
      const vma = this.vmaList[i];
      if (vma !== undefined && vma.start >= top) continue;
      const floor = vma === undefined ? PAGE : vma.end;
      const candidate = (top - length) & -align;
      if (top >= length && candidate >= floor) return candidate;
      if (vma !== undefined) top = vma.start;
    }
    fail('ENOMEM', `no gap of ${formatHex(length)} bytes in the address space`);
  }
}

/** The first index of sorted `values` whose value is at least `x`. */
function lowerBound(values: readonly number[], x: number): number {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (values[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
