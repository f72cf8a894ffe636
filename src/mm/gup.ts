/**
 * pin_user_pages (mm/gup.c) in two forms:
 *  - the physr form: the pinned memory as a PhyrList built straight from the page table's folio
 *    extents, one range per physically contiguous run (adjacent folios merge), 16 bytes a range;
 *  - the legacy form: one struct page pointer (8 bytes) per 4K page, as pin_user_pages fills
 *    `struct page **pages` today.
 * Both take FOLL_PIN references on the folios: `refs` = pages pinned in the folio, as
 * try_grab_folio does, and unpin gives back exactly those (gup_put_folio).
 */
import {
  fail,
  fillPageArray,
  formatHex,
  PhyrList,
  PhyrListBuilder,
  type PhysAddr,
  pageArrayReader,
  U64_MAX,
} from '../core/index.ts';
import type { Folio } from '../platform/index.ts';
import type { MemorySystem } from './memory-system.ts';
import type { FaultHow, MmStruct } from './mm-struct.ts';
import { clip, type PageMapping } from './page-table.ts';
import {
  describeVmaFlags,
  isCowMapping,
  VM_IO,
  VM_PFNMAP,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
  type Vma,
  vmaIsAnonymous,
} from './vma.ts';

export interface GupFlags {
  /** FOLL_WRITE: the device will write the memory. */
  readonly write?: boolean;
  /** FOLL_LONGTERM: the pin may last indefinitely (RDMA MRs, VFIO/IOMMUFD maps). */
  readonly longterm?: boolean;
}

/** Bytes of one `struct page *` in the legacy page array. */
export const PAGE_POINTER_BYTES = 8;

/** What one pin holds; released once by the matching unpin. */
abstract class PinnedBase {
  readonly system: MemorySystem;
  readonly start: bigint;
  readonly length: bigint;
  /** 4K pages pinned (ib_umem_num_pages: the pages [start, start+length) touches). */
  readonly pageCount: number;
  readonly write: boolean;
  readonly longterm: boolean;
  private isReleased = false;

  constructor(system: MemorySystem, start: bigint, length: bigint, pageCount: number, flags: GupFlags) {
    this.system = system;
    this.start = start;
    this.length = length;
    this.pageCount = pageCount;
    this.write = flags.write ?? false;
    this.longterm = flags.longterm ?? false;
  }

  get released(): boolean {
    return this.isReleased;
  }

  /** @internal marks the pin given back; EINVAL on a second unpin. */
  release(): void {
    if (this.isReleased) fail('EINVAL', `pages at ${formatHex(this.start)} were already unpinned`);
    this.isReleased = true;
  }

  abstract get metadataBytes(): number;
}

/** The physr result of a pin. */
export class PinnedPhyrs extends PinnedBase {
  /** The pinned bytes [start, start+length) in VA order, as physical ranges. */
  readonly phyrs: PhyrList;

  constructor(
    system: MemorySystem,
    start: bigint,
    length: bigint,
    pageCount: number,
    flags: GupFlags,
    phyrs: PhyrList,
  ) {
    super(system, start, length, pageCount, flags);
    this.phyrs = phyrs;
  }

  get metadataBytes(): number {
    return this.phyrs.metadataBytes;
  }
}

/** The legacy result: one page frame per 4K page (the `struct page *` array). */
export class PinnedPageArray extends PinnedBase {
  /** pages[i] is the frame of the i-th page: pfns stand in for struct page pointers. */
  readonly pages: BigUint64Array;
  /** Offset of `start` in the first page. */
  readonly offset: number;

  constructor(system: MemorySystem, start: bigint, length: bigint, flags: GupFlags, pages: BigUint64Array) {
    super(system, start, length, pages.length, flags);
    this.pages = pages;
    this.offset = Number(start & 0xfffn);
  }

  get metadataBytes(): number {
    return this.pages.length * PAGE_POINTER_BYTES;
  }
}

/**
 * check_vma_flags (mm/gup.c): which VMAs GUP may pin from. FOLL_FORCE is not modelled (no caller
 * here uses it), nor fsdax/secretmem VMAs (no such kinds).
 */
export function checkVmaFlags(vma: Vma, flags: GupFlags): void {
  const where = `VMA ${formatHex(vma.start)}-${formatHex(vma.end)} (${describeVmaFlags(vma.flags)})`;
  if ((vma.flags & (VM_IO | VM_PFNMAP)) !== 0) {
    fail(
      'EFAULT',
      `${where} is VM_IO|VM_PFNMAP: MMIO has no struct pages, so GUP cannot pin it; export it as a dma-buf instead`,
    );
  }
  if (flags.write) {
    // writable_file_mapping_allowed: a longterm write pin of a shared file mapping whose filesystem
    // tracks dirtying would let the device write behind writeback's back.
    if (!vmaIsAnonymous(vma) && flags.longterm && needsDirtyTracking(vma)) {
      fail(
        'EFAULT',
        `${where} is a shared writable mapping of ${vma.file?.name ?? 'a file'} whose filesystem tracks dirty pages: FOLL_LONGTERM write pins are refused`,
      );
    }
    if ((vma.flags & VM_WRITE) === 0) fail('EFAULT', `${where} is not writable: write pin refused`);
  } else if ((vma.flags & VM_READ) === 0) {
    fail('EFAULT', `${where} is not readable`);
  }
}

/** vma_needs_dirty_tracking (mm/mmap.c): shared, writable, and the backing store writes back. */
function needsDirtyTracking(vma: Vma): boolean {
  if ((vma.flags & (VM_SHARED | VM_WRITE)) !== (VM_SHARED | VM_WRITE)) return false;
  return vma.kind === 'file' && (vma.file?.needsDirtyTracking ?? false);
}

/**
 * Checks the range as gup_fast_fallback does: EOVERFLOW when start + length wraps 2^64, EFAULT
 * beyond TASK_SIZE_MAX. Returns the page span.
 */
function pageSpan(mm: MmStruct, start: bigint, length: bigint): { from: number; to: number } {
  if (start < 0n || length < 0n) fail('EINVAL', `pin of ${formatHex(start)} + ${length} is negative`);
  if (start + length > U64_MAX + 1n) {
    fail('EOVERFLOW', `pin range ${formatHex(start)} + ${formatHex(length)} wraps past 2^64`);
  }
  const end = (start + length + 0xfffn) & -0x1000n;
  if (end > mm.taskSize) fail('EFAULT', `pin range ends at ${formatHex(end)}, beyond TASK_SIZE_MAX`);
  return { from: Number(start >> 12n), to: Number(end >> 12n) };
}

/**
 * How GUP faults a VMA's pages in (mm/gup.c, mm/memory.c):
 * - a short-term read-only pin of untouched anonymous memory gets the shared zero page, as the read
 *   fault maps it (do_anonymous_page) and try_grab_folio takes no pin on it;
 * - a long-term read-only pin in a private (COW) mapping must not keep a page the process would
 *   later replace on write: gup_must_unshare says unshare for a page that is not exclusively anon
 *   (a page-cache page of a MAP_PRIVATE file, the zero page), and the FAULT_FLAG_UNSHARE fault puts
 *   an anonymous copy in its place before the pin.
 */
function faultHow(vma: Vma, flags: GupFlags): FaultHow {
  if (flags.write === true) return {};
  if (flags.longterm !== true) return { zeroPage: vma.kind === 'anon' };
  return { unshare: isCowMapping(vma.flags) };
}

/**
 * Walks [from, to): checks each VMA, faults pages in, pins folio extents in VA order and calls
 * `visit` with each pinned extent (clipped). Returns the page number it reached: `to`, or, when a
 * later VMA fails after pages were pinned, where it stopped (__get_user_pages returns the pages
 * done, not the error). An error before any page is pinned is thrown.
 */
function pinWalk(
  mm: MmStruct,
  from: number,
  to: number,
  flags: GupFlags,
  visit: (m: PageMapping) => void,
): number {
  const allocator = mm.system.allocator;
  /** What was pinned, in order: a folio and its refs, or the first frame of a base-page run and its length. */
  const pinned: { folio: Folio | undefined; pfn: number; refs: number }[] = [];
  let vpn = from;
  try {
    while (vpn < to) {
      const vma = mm.findVma(BigInt(vpn) << 12n);
      if (vma === undefined) fail('EFAULT', `no VMA at ${formatHex(BigInt(vpn) << 12n)}: nothing to pin`);
      checkVmaFlags(vma, flags);
      const stop = Math.min(to, vma.endVpn);
      mm.faultIn(vma, vpn, stop, flags.write ?? false, faultHow(vma, flags));
      // __gup_longterm_locked → check_and_migrate_movable_folios: ZONE_MOVABLE and CMA folios are
      // migrated out before a long-term pin holds them (the kernel pins, unpins, migrates, retries).
      if (flags.longterm === true) mm.migrateUnpinnable(vpn, stop);
      for (const m of mm.pageTable.range(vpn, stop)) {
        const piece = clip(m, vpn, stop);
        if (piece.basePages === true) {
          // One order-0 folio a page: each gets one pin (GUP_PIN_COUNTING_BIAS references).
          allocator.pinBasePages(piece.pfn, piece.pages);
          pinned.push({ folio: undefined, pfn: piece.pfn, refs: piece.pages });
        } else if (!mm.system.isZeroPfn(piece.folio!.pfn)) {
          // try_grab_folio takes no pin on the zero page.
          allocator.pinFolio(piece.folio!, piece.pages);
          pinned.push({ folio: piece.folio!, pfn: 0, refs: piece.pages });
        }
        visit(piece);
      }
      vpn = stop;
    }
  } catch (error) {
    if (vpn === from) {
      for (const p of pinned) {
        if (p.folio === undefined) allocator.unpinBasePages(p.pfn, p.refs);
        else allocator.unpinFolio(p.folio, p.refs);
      }
      throw error;
    }
    mm.system.metrics?.add('mm.partial_pins');
  }
  mm.system.metrics?.add('mm.pins');
  mm.system.metrics?.add('mm.pinned_pages', vpn - from);
  return vpn;
}

/** The bytes of [start, start+length) that pages [.., reached) cover: the whole range or a prefix. */
function pinnedLength(start: bigint, length: bigint, reached: number): bigint {
  const reachedEnd = BigInt(reached) << 12n;
  return reachedEnd >= start + length ? length : reachedEnd - start;
}

/**
 * pin_user_pages returning a PhyrList: the bytes [start, start+length) as physical ranges in VA
 * order, one range per physically contiguous run. Length 0 pins nothing. Like the kernel's it may
 * pin only a prefix (`pageCount` and `length` say how much) when a later page cannot be pinned;
 * callers that need it all use pinUserPagesWhole.
 */
export function pinUserPages(mm: MmStruct, start: bigint, length: bigint, flags: GupFlags = {}): PinnedPhyrs {
  const { from, to } = pageSpan(mm, start, length);
  if (length === 0n) return new PinnedPhyrs(mm.system, start, 0n, 0, flags, PhyrList.empty());
  const builder = new PhyrListBuilder({ capacity: 4 });
  const headCut = start & 0xfffn;
  const end = start + length;
  const reached = pinWalk(mm, from, to, flags, (m) => {
    let phys = BigInt(m.pfn) << 12n;
    let bytes = BigInt(m.pages) << 12n;
    const vaStart = BigInt(m.vpn) << 12n;
    if (m.vpn === from && headCut !== 0n) {
      phys += headCut;
      bytes -= headCut;
    }
    const vaEnd = vaStart + (BigInt(m.pages) << 12n);
    if (vaEnd > end) bytes -= vaEnd - end;
    builder.append(phys, bytes);
  });
  const phyrs = builder.build();
  mm.system.metrics?.add('core.physr_ranges', phyrs.count);
  mm.system.metrics?.add('core.physr_metadata_bytes', phyrs.metadataBytes);
  return new PinnedPhyrs(
    mm.system,
    start,
    pinnedLength(start, length, reached),
    reached - from,
    flags,
    phyrs,
  );
}

/**
 * What ib_umem_get and iommufd's pfn_reader_user_pin do with a short count: pin the rest, which
 * fails at the page that stopped the first call; then everything is unpinned and that error
 * returned. So the caller gets the whole range or the error.
 */
function pinWhole<P extends PinnedBase>(
  pin: (start: bigint, length: bigint) => P,
  unpin: (pinned: P) => void,
  start: bigint,
  length: bigint,
): P {
  const pinned = pin(start, length);
  if (pinned.length === length) return pinned;
  try {
    unpin(pin(start + pinned.length, length - pinned.length));
  } finally {
    unpin(pinned);
  }
  // Unreachable: the rest starts at the page that failed and fails again.
  fail('EFAULT', `pin of ${formatHex(start)} + ${formatHex(length)} stopped short`);
}

/** pinUserPages for the whole range or an error (see pinWhole). */
export function pinUserPagesWhole(
  mm: MmStruct,
  start: bigint,
  length: bigint,
  flags: GupFlags = {},
): PinnedPhyrs {
  return pinWhole(
    (s, l) => pinUserPages(mm, s, l, flags),
    (p) => unpinUserPages(p),
    start,
    length,
  );
}

/** pinUserPagesLegacy for the whole range or an error (see pinWhole). */
export function pinUserPagesLegacyWhole(
  mm: MmStruct,
  start: bigint,
  length: bigint,
  flags: GupFlags = {},
): PinnedPageArray {
  return pinWhole(
    (s, l) => pinUserPagesLegacy(mm, s, l, flags),
    (p) => unpinUserPagesLegacy(p),
    start,
    length,
  );
}

/** The legacy pin_user_pages: one page frame per 4K page. */
export function pinUserPagesLegacy(
  mm: MmStruct,
  start: bigint,
  length: bigint,
  flags: GupFlags = {},
): PinnedPageArray {
  const { from, to: end } = pageSpan(mm, start, length);
  const to = length === 0n ? from : end;
  const all = new BigUint64Array(to - from);
  let k = 0;
  const reached = pinWalk(mm, from, to, flags, (m) => {
    fillPageArray(all, k, m.pfn, m.pages);
    k += m.pages;
  });
  const pages = reached === to ? all : all.slice(0, reached - from);
  mm.system.metrics?.add('mm.legacy_page_bytes', pages.length * PAGE_POINTER_BYTES);
  return new PinnedPageArray(mm.system, start, pinnedLength(start, length, reached), flags, pages);
}

/**
 * unpin_user_pages(_dirty_lock) for the physr form: walks each range folio by folio (the folio
 * containing a frame, and how many of its pages the range covers), marks folios dirty when asked,
 * and drops the pins. A folio whose mapping went away meanwhile is freed by its last unpin.
 */
export function unpinUserPages(pinned: PinnedPhyrs, options: { dirty?: boolean } = {}): void {
  pinned.release();
  const { system } = pinned;
  const dirty = options.dirty ?? false;
  pinned.phyrs.forEachRange((address, length) => {
    const endPfn = Number((address + length + 0xfffn) >> 12n);
    let pfn = Number(address >> 12n);
    while (pfn < endPfn) pfn = unpinFrom(system, pfn, endPfn, dirty);
  });
  system.metrics?.add('mm.unpins');
}

/**
 * Unpins the folio holding frame `pfn`, or the run of base pages from it, within [pfn, endPfn);
 * returns the frame after what it unpinned (gup_put_folio a folio at a time; a base-page run is
 * that many order-0 folios).
 */
function unpinFrom(system: MemorySystem, pfn: number, endPfn: number, dirty: boolean): number {
  if (system.isZeroPfn(pfn)) return pfn + 1; // the zero page was never pinned
  const { allocator } = system;
  const run = allocator.unpinBasePageRun(pfn, endPfn - pfn, dirty);
  if (run > 0) return pfn + run;
  const folio = folioOrFail(system, BigInt(pfn));
  const stop = Math.min(Number(folio.pfn) + 2 ** folio.order, endPfn);
  if (dirty) system.markDirty(folio);
  allocator.unpinFolio(folio, stop - pfn);
  return stop;
}

/**
 * unpin_user_pages(_dirty_lock) for the page array: consecutive entries that are pages of one
 * folio go together (gup_folio_next), and so do consecutive entries naming consecutive base pages.
 */
export function unpinUserPagesLegacy(pinned: PinnedPageArray, options: { dirty?: boolean } = {}): void {
  pinned.release();
  const { system, pages } = pinned;
  const dirty = options.dirty ?? false;
  const pfnAt = pageArrayReader(pages);
  let i = 0;
  while (i < pages.length) {
    const pfn = pfnAt(i);
    // How many following entries name the following frames.
    let n = 1;
    while (i + n < pages.length && pfnAt(i + n) === pfn + n) n++;
    let at = pfn;
    while (at < pfn + n) at = unpinFrom(system, at, pfn + n, dirty);
    i += n;
  }
  system.metrics?.add('mm.unpins');
}

/**
 * A page-array pin re-described by ranges once its array is dropped: dma_map_sg users and
 * ib_umem_get keep only the sg_table built from the array, whose entries name the same pages in
 * the same order, and unpin through it. The array pin is released (a second unpin of it is
 * EINVAL); unpinUserPages of the result gives back exactly what unpinUserPagesLegacy would have.
 */
export function pinnedPagesAsRanges(pinned: PinnedPageArray, phyrs: PhyrList): PinnedPhyrs {
  if (phyrs.totalLength !== pinned.length) {
    fail('EINVAL', `${phyrs.totalLength} bytes of ranges do not describe a pin of ${pinned.length}`);
  }
  pinned.release();
  const flags = { write: pinned.write, longterm: pinned.longterm };
  return new PinnedPhyrs(pinned.system, pinned.start, pinned.length, pinned.pageCount, flags, phyrs);
}

/** The folios a physr pin holds and the pins on each, in VA order (what unpin will give back). */
export function pinnedFolios(pinned: PinnedPhyrs): { folio: Folio; refs: number }[] {
  const out: { folio: Folio; refs: number }[] = [];
  pinned.phyrs.forEachRange((address: PhysAddr, length) => {
    let pfn = address >> 12n;
    const endPfn = (address + length + 0xfffn) >> 12n;
    while (pfn < endPfn) {
      if (pinned.system.isZeroPfn(pfn)) {
        pfn++;
        continue;
      }
      const folio = folioOrFail(pinned.system, pfn);
      const folioEnd = folio.pfn + (1n << BigInt(folio.order));
      const stop = folioEnd < endPfn ? folioEnd : endPfn;
      out.push({ folio, refs: Number(stop - pfn) });
      pfn = stop;
    }
  });
  return out;
}

function folioOrFail(system: MemorySystem, pfn: bigint): Folio {
  const folio = system.allocator.folioAt(pfn);
  if (folio === undefined)
    fail('EINVAL', `pfn ${formatHex(pfn)} is not in a live folio: unpin of memory never pinned`);
  return folio;
}
