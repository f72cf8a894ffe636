/**
 * The legacy baseline: `struct scatterlist` / `struct sg_table` as lib/scatterlist.c and
 * include/linux/scatterlist.h build them on a 64-bit kernel, so physr can be compared with today's
 * path in bytes and entry counts.
 *
 * Kernel layout modelled (include/linux/scatterlist.h, 64-bit, CONFIG_NEED_SG_DMA_LENGTH and
 * CONFIG_NEED_SG_DMA_FLAGS):
 *   struct scatterlist { unsigned long page_link; unsigned int offset; unsigned int length;
 *                        dma_addr_t dma_address; unsigned int dma_length; unsigned int dma_flags; }
 *     = 8 + 4 + 4 + 8 + 4 + 4 = 32 bytes
 *   struct sg_table { struct scatterlist *sgl; unsigned int nents; unsigned int orig_nents; } = 16 bytes
 *   SG_MAX_SINGLE_ALLOC = PAGE_SIZE / sizeof(struct scatterlist) = 128
 *
 * Model: every struct scatterlist ever allocated for a table is a "slot" in typed-array columns
 * (structure of arrays). A slot index plays the role of a `struct scatterlist *`; -1 is NULL.
 * `page_link` is split into the pfn (or, for a chain entry, the slot the chain points at) and the two
 * low flag bits SG_CHAIN / SG_END. Slots are allocated in chunks exactly as the kernel allocates
 * arrays: a full chunk holds SG_MAX_SINGLE_ALLOC slots and its last slot becomes the chain entry
 * to the next chunk; sg_init_table marks the last slot of each new chunk as the end.
 *
 * Invariants: `origNents` counts data entries (never chain slots), `nents` is what dma_map_sg
 * wrote (<= origNents); `slotCount` counts every allocated slot including chain slots, so
 * `metadataBytes = 32 × slotCount + 16` is the kernel memory the table takes. Lengths are u32, as in
 * the kernel: a range longer than 4 GiB - 4 KiB needs several entries.
 */
import { type DmaAddr, formatHex, type PhysAddr, U64_MAX } from './address.ts';
import { fail } from './errors.ts';
import type { DmaRangeList, PhyrList } from './range-list.ts';
import { DmaRangeListBuilder, PhyrListBuilder } from './range-list-builder.ts';

export const SG_PAGE_SHIFT = 12;
export const SG_PAGE_SIZE = 1 << SG_PAGE_SHIFT;
const PAGE_SHIFT_N = 12n;
const PAGE_OFFSET_MASK = 0xfffn;
/** sizeof(struct scatterlist) on 64-bit with dma_length and dma_flags. */
export const SCATTERLIST_BYTES = 32;
/** sizeof(struct sg_table): sgl pointer + nents + orig_nents. */
export const SG_TABLE_BYTES = 16;
/** sizeof(struct sg_append_table): sg_table + prv pointer + total_nents, padded to 8. */
export const SG_APPEND_TABLE_BYTES = 32;
/** Entries one allocation holds before chaining (include/linux/scatterlist.h). */
export const SG_MAX_SINGLE_ALLOC = SG_PAGE_SIZE / SCATTERLIST_BYTES;
export const UINT_MAX = 0xffff_ffff;
/** UINT_MAX rounded down to a page (include/linux/scatterlist.h SCATTERLIST_MAX_SEGMENT). */
export const SCATTERLIST_MAX_SEGMENT = UINT_MAX - (SG_PAGE_SIZE - 1);
/** page_link low bits (include/linux/scatterlist.h). */
export const SG_CHAIN = 0x1;
export const SG_END = 0x2;
/** dma_flags bits: the DMA address is a PCI bus address (P2P), the entry was bounced. */
export const SG_DMA_BUS_ADDRESS = 0x1;
export const SG_DMA_SWIOTLB = 0x2;

/** A `struct scatterlist *` in the model: a slot index, or -1 for NULL. */
export type SgSlot = number;
export const SG_NULL: SgSlot = -1;

/** One data entry as iteration hands it out. */
export interface SgEntry {
  readonly slot: SgSlot;
  readonly pfn: bigint;
  readonly offset: number;
  readonly length: number;
  /** sg_phys: pfn << PAGE_SHIFT + offset. */
  readonly address: PhysAddr;
}

/** kmalloc size classes (mm/slab_common.c kmalloc_info), used for the slab-rounded byte count. */
const KMALLOC_SIZES = [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192] as const;

function kmallocBytes(bytes: number): number {
  for (const size of KMALLOC_SIZES) if (bytes <= size) return size;
  // Larger requests go to the page allocator in power-of-two pages.
  let pages = SG_PAGE_SIZE;
  while (pages < bytes) pages *= 2;
  return pages;
}

function checkU32(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > UINT_MAX) {
    fail('EINVAL', `${what} ${value} is not an unsigned int (0..${UINT_MAX})`);
  }
}

/**
 * An sg_table with its chunks of struct scatterlist. Built by {@link sgAllocTable},
 * {@link sgAllocTableFromPagesSegment}, {@link SgAppendTable} or {@link phyrListToSgTable}.
 */
export class SgTable {
  /** sgt->sgl: the first slot, or SG_NULL before any allocation. */
  sgl: SgSlot = SG_NULL;
  /** sgt->nents: entries dma_map_sg produced (equal to origNents until mapped). */
  nents = 0;
  /** sgt->orig_nents: data entries the CPU side described. */
  origNents = 0;

  // Slot columns (one element per allocated struct scatterlist).
  private link = new BigUint64Array(16); // pfn, or the target slot of a chain entry
  private flags = new Uint8Array(16); // SG_CHAIN | SG_END
  private offsets = new Uint32Array(16);
  private lengths = new Uint32Array(16);
  private dmaAddresses = new BigUint64Array(16);
  private dmaLengths = new Uint32Array(16);
  private dmaFlagBits = new Uint32Array(16);
  private slots = 0;
  /** Size (in slots) of each allocation, in order: for byte counts and chain accounting. */
  private readonly chunkSizes: number[] = [];

  /** Every struct scatterlist allocated, chain slots included. */
  get slotCount(): number {
    return this.slots;
  }

  /** Allocations made (kmalloc'd arrays or whole pages). */
  get chunkCount(): number {
    return this.chunkSizes.length;
  }

  /** Kernel bytes: 32 × every allocated struct scatterlist (chain slots too) + the 16-byte sg_table. */
  get metadataBytes(): number {
    return this.slots * SCATTERLIST_BYTES + SG_TABLE_BYTES;
  }

  /**
   * The same with the allocator's rounding: a full chunk is one page (sg_kmalloc uses
   * __get_free_page), smaller ones round up to a kmalloc size class. The sg_table itself is
   * usually embedded in a larger object, so it counts its 16 bytes.
   */
  get allocatedBytes(): number {
    let bytes = SG_TABLE_BYTES;
    for (const n of this.chunkSizes) {
      bytes += n === SG_MAX_SINGLE_ALLOC ? SG_PAGE_SIZE : kmallocBytes(n * SCATTERLIST_BYTES);
    }
    return bytes;
  }

  /**
   * Allocates and initialises an array of `n` slots (sg_kmalloc + sg_init_table: zeroed, last slot
   * marked as the end). Returns the first slot.
   */
  allocChunk(n: number): SgSlot {
    if (!Number.isInteger(n) || n <= 0 || n > SG_MAX_SINGLE_ALLOC) {
      fail('EINVAL', `an sg chunk holds 1..${SG_MAX_SINGLE_ALLOC} entries, not ${n}`);
    }
    const first = this.slots;
    this.reserve(first + n);
    // Fresh typed-array room is zero already, but slots are never reused, so zeroing is implicit.
    this.slots = first + n;
    this.flags[first + n - 1] = SG_END;
    this.chunkSizes.push(n);
    return first;
  }

  private reserve(slots: number): void {
    if (slots <= this.link.length) return;
    let size = this.link.length * 2;
    while (size < slots) size *= 2;
    this.link = grow(this.link, new BigUint64Array(size));
    this.flags = grow(this.flags, new Uint8Array(size));
    this.offsets = grow(this.offsets, new Uint32Array(size));
    this.lengths = grow(this.lengths, new Uint32Array(size));
    this.dmaAddresses = grow(this.dmaAddresses, new BigUint64Array(size));
    this.dmaLengths = grow(this.dmaLengths, new Uint32Array(size));
    this.dmaFlagBits = grow(this.dmaFlagBits, new Uint32Array(size));
  }

  private checkSlot(slot: SgSlot): SgSlot {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.slots) {
      fail('EINVAL', `scatterlist slot ${slot} was not allocated (0..${this.slots - 1})`);
    }
    return slot;
  }

  // --- include/linux/scatterlist.h accessors -------------------------------------------------

  isChain(slot: SgSlot): boolean {
    return (this.flags[this.checkSlot(slot)]! & SG_CHAIN) !== 0;
  }

  isLast(slot: SgSlot): boolean {
    return (this.flags[this.checkSlot(slot)]! & SG_END) !== 0;
  }

  /** sg_next: the following entry, hopping over a chain slot; SG_NULL after the end marker. */
  next(slot: SgSlot): SgSlot {
    if ((this.flags[this.checkSlot(slot)]! & SG_END) !== 0) return SG_NULL;
    let s = slot + 1;
    if (s >= this.slots) fail('EINVAL', `sg_next ran off allocation at slot ${slot} (no end marker)`);
    if ((this.flags[s]! & SG_CHAIN) !== 0) s = Number(this.link[s]!);
    return s;
  }

  /** sg_set_page: page frame, length (u32) and offset; keeps the slot's chain/end bits. */
  setPage(slot: SgSlot, pfn: bigint, length: number, offset: number): void {
    this.checkSlot(slot);
    if (pfn < 0n || pfn > U64_MAX >> PAGE_SHIFT_N) fail('EINVAL', `pfn ${formatHex(pfn)} is out of range`);
    checkU32(length, 'sg length');
    checkU32(offset, 'sg offset');
    this.link[slot] = pfn;
    this.lengths[slot] = length;
    this.offsets[slot] = offset;
  }

  /** sg->length += bytes (the append path grows the previous entry in place). */
  growLength(slot: SgSlot, bytes: number): void {
    const length = this.lengths[this.checkSlot(slot)]! + bytes;
    checkU32(length, 'sg length');
    this.lengths[slot] = length;
  }

  /**
   * __sg_chain: turn `chainSlot` into a link to `target` (offset and length cleared, end bit
   * cleared, chain bit set).
   */
  chain(chainSlot: SgSlot, target: SgSlot): void {
    this.checkSlot(chainSlot);
    this.checkSlot(target);
    this.link[chainSlot] = BigInt(target);
    this.offsets[chainSlot] = 0;
    this.lengths[chainSlot] = 0;
    this.flags[chainSlot] = SG_CHAIN;
  }

  /** sg_mark_end: set the end bit, clear a chain bit. */
  markEnd(slot: SgSlot): void {
    this.flags[this.checkSlot(slot)] = SG_END;
  }

  /** sg_unmark_end. */
  unmarkEnd(slot: SgSlot): void {
    this.flags[this.checkSlot(slot)]! &= ~SG_END;
  }

  pfnAt(slot: SgSlot): bigint {
    return this.link[this.checkSlot(slot)]!;
  }

  offsetAt(slot: SgSlot): number {
    return this.offsets[this.checkSlot(slot)]!;
  }

  lengthAt(slot: SgSlot): number {
    return this.lengths[this.checkSlot(slot)]!;
  }

  /** sg_phys: page_to_phys(sg_page(sg)) + sg->offset. */
  physAt(slot: SgSlot): PhysAddr {
    return ((this.link[this.checkSlot(slot)]! << PAGE_SHIFT_N) + BigInt(this.offsets[slot]!)) as PhysAddr;
  }

  // --- what dma_map_sg writes -----------------------------------------------------------------

  /** sg_dma_address(sg) = dmaAddress, sg_dma_len(sg) = dmaLength, sg->dma_flags = flags. */
  setDma(slot: SgSlot, dmaAddress: bigint, dmaLength: number, dmaFlags = 0): void {
    this.checkSlot(slot);
    if (dmaAddress < 0n || dmaAddress > U64_MAX)
      fail('EINVAL', `DMA address ${formatHex(dmaAddress)} is not u64`);
    checkU32(dmaLength, 'sg dma_length');
    checkU32(dmaFlags, 'sg dma_flags');
    this.dmaAddresses[slot] = dmaAddress;
    this.dmaLengths[slot] = dmaLength;
    this.dmaFlagBits[slot] = dmaFlags;
  }

  dmaAddressAt(slot: SgSlot): DmaAddr {
    return this.dmaAddresses[this.checkSlot(slot)]! as DmaAddr;
  }

  dmaLengthAt(slot: SgSlot): number {
    return this.dmaLengths[this.checkSlot(slot)]!;
  }

  dmaFlagsAt(slot: SgSlot): number {
    return this.dmaFlagBits[this.checkSlot(slot)]!;
  }

  /** sgt->nents after mapping: how many DMA segments dma_map_sg produced (0..origNents). */
  setMappedNents(count: number): void {
    if (!Number.isInteger(count) || count < 0 || count > this.origNents) {
      fail('EINVAL', `mapped entry count ${count} is outside 0..${this.origNents} (orig_nents)`);
    }
    this.nents = count;
  }

  // --- iteration ------------------------------------------------------------------------------

  /** for_each_sg over the first `count` entries (default orig_nents): calls fn(slot, index). */
  forEachSlot(fn: (slot: SgSlot, index: number) => void, count = this.origNents): void {
    let s = this.sgl;
    for (let i = 0; i < count; i++) {
      if (s === SG_NULL) fail('EINVAL', `sg list ended after ${i} of ${count} entries`);
      fn(s, i);
      if (i + 1 < count) s = this.next(s);
    }
  }

  /** The slots of the first `count` entries, in order (a random-access index for callers). */
  entrySlots(count = this.origNents): Int32Array {
    const out = new Int32Array(count);
    this.forEachSlot((slot, i) => {
      out[i] = slot;
    }, count);
    return out;
  }

  /** for_each_sgtable_sg: every CPU-side entry. */
  *entries(): IterableIterator<SgEntry> {
    let s = this.sgl;
    for (let i = 0; i < this.origNents; i++) {
      const pfn = this.link[s]!;
      const offset = this.offsets[s]!;
      yield {
        slot: s,
        pfn,
        offset,
        length: this.lengths[s]!,
        address: ((pfn << PAGE_SHIFT_N) + BigInt(offset)) as PhysAddr,
      };
      if (i + 1 < this.origNents) s = this.next(s);
    }
  }

  /** The CPU side as a PhyrList (each entry one range; `merge` joins contiguous entries). */
  toPhyrList(options: { merge?: boolean } = {}): PhyrList {
    const builder = new PhyrListBuilder({ merge: options.merge ?? false, capacity: this.origNents });
    this.forEachSlot((s) => {
      const length = this.lengths[s]!;
      if (length === 0) fail('EINVAL', `sg entry at slot ${s} has length 0`);
      builder.append((this.link[s]! << PAGE_SHIFT_N) + BigInt(this.offsets[s]!), BigInt(length));
    });
    return builder.build();
  }

  /** for_each_sgtable_dma_sg: the first `nents` (dma_address, dma_length) pairs as a DmaRangeList. */
  toDmaRangeList(options: { merge?: boolean } = {}): DmaRangeList {
    const builder = new DmaRangeListBuilder({ merge: options.merge ?? false, capacity: this.nents });
    this.forEachSlot((s) => {
      builder.append(this.dmaAddresses[s]!, BigInt(this.dmaLengths[s]!));
    }, this.nents);
    return builder.build();
  }

  toString(): string {
    return `SgTable(orig_nents ${this.origNents}, nents ${this.nents}, ${this.slots} slots in ${this.chunkSizes.length} chunks, ${this.metadataBytes} B)`;
  }
}

function grow<T extends { set(source: T): void }>(old: T, bigger: T): T {
  bigger.set(old);
  return bigger;
}

/**
 * __sg_alloc_table (lib/scatterlist.c): a table of `nents` entries in chunks of at most `maxEnts`
 * slots; when more remain than fit, the chunk's last slot becomes the chain entry, so a full chunk
 * carries maxEnts - 1 data entries. `nentsFirstChunk` models a preallocated first chunk of another
 * size (0: none). EINVAL when nents is 0.
 */
export function sgAllocTable(
  nents: number,
  maxEnts: number = SG_MAX_SINGLE_ALLOC,
  nentsFirstChunk = 0,
): SgTable {
  checkU32(nents, 'nents');
  if (nents === 0) fail('EINVAL', 'sg_alloc_table: nents is 0');
  if (!Number.isInteger(maxEnts) || maxEnts < 2 || maxEnts > SG_MAX_SINGLE_ALLOC) {
    fail('EINVAL', `max_ents ${maxEnts} is outside 2..${SG_MAX_SINGLE_ALLOC}`);
  }
  const table = new SgTable();
  let left = nents;
  let prev = SG_NULL;
  let prevMax = 0;
  let currentMax = nentsFirstChunk !== 0 ? nentsFirstChunk : maxEnts;
  do {
    let allocSize = left;
    let sgSize: number;
    if (allocSize > currentMax) {
      allocSize = currentMax;
      sgSize = allocSize - 1;
    } else {
      sgSize = allocSize;
    }
    left -= sgSize;
    const sg = table.allocChunk(allocSize);
    table.origNents += sgSize;
    table.nents = table.origNents;
    if (prev !== SG_NULL) table.chain(prev + prevMax - 1, sg);
    else table.sgl = sg;
    if (left === 0) table.markEnd(sg + sgSize - 1);
    prev = sg;
    prevMax = currentMax;
    currentMax = maxEnts;
  } while (left > 0);
  return table;
}

/** The page-contiguity rule of pages_are_mergeable (lib/scatterlist.c): pfn(a) === pfn(b) + 1. */
function pagesAreMergeable(next: bigint, previous: bigint): boolean {
  // zone_device_pages_have_same_pgmap is not modelled: a pfn list carries no pgmap.
  return next === previous + 1n;
}

/**
 * An sg_append_table (lib/scatterlist.c): a table built by successive
 * sg_alloc_append_table_from_pages calls. `prv` is the last entry written; `totalNents` counts
 * every allocated slot that can carry data.
 */
export class SgAppendTable {
  readonly sgt = new SgTable();
  prv: SgSlot = SG_NULL;
  totalNents = 0;

  /**
   * get_next_sg: the slot for the next entry. Uses the following slot of the current chunk unless
   * that is the chunk's last slot and more than one entry is still needed, in which case a new chunk
   * of min(needed, SG_MAX_SINGLE_ALLOC) slots is allocated and that last slot becomes the chain.
   */
  private nextSlot(current: SgSlot, needed: number): SgSlot {
    const t = this.sgt;
    let nextSg = SG_NULL;
    if (current !== SG_NULL) {
      nextSg = t.next(current);
      if (nextSg === SG_NULL) fail('EINVAL', 'sg append after the table was ended (left_pages was 0)');
      if (!t.isLast(nextSg) || needed === 1) return nextSg;
    }
    const allocSize = Math.min(needed, SG_MAX_SINGLE_ALLOC);
    const fresh = t.allocChunk(allocSize);
    if (current !== SG_NULL) {
      this.totalNents += allocSize - 1;
      t.chain(nextSg, fresh);
    } else {
      t.sgl = fresh;
      this.totalNents = allocSize;
    }
    return fresh;
  }

  /**
   * sg_alloc_append_table_from_pages: appends the pages `pfns` (buffer starting `offset` bytes into
   * the first page, `size` bytes long), merging physically contiguous pages into entries of at most
   * `maxSegment` (rounded down to a page; EINVAL below one page). `leftPages` is how many pages
   * later calls will still append (0 marks the end). With a previous entry, a non-zero offset is
   * EINVAL and pages contiguous with that entry are folded into it first.
   */
  appendFromPages(
    pfns: ArrayLike<bigint>,
    offset: number,
    size: bigint | number,
    maxSegment: number,
    leftPages = 0,
  ): void {
    checkU32(offset, 'offset');
    checkU32(maxSegment, 'max_segment');
    checkU32(leftPages, 'left_pages');
    let remaining = BigInt(size);
    if (remaining < 0n || remaining > U64_MAX) fail('EINVAL', `size ${remaining} is not an unsigned long`);
    const maxSeg = maxSegment - (maxSegment % SG_PAGE_SIZE);
    if (maxSeg < SG_PAGE_SIZE) {
      fail('EINVAL', `max_segment ${maxSegment} rounds down below one page (${SG_PAGE_SIZE})`);
    }
    const t = this.sgt;
    let first = 0;
    let nPages = pfns.length;
    if (this.prv !== SG_NULL) {
      const prv = this.prv;
      if (offset !== 0) fail('EINVAL', `appending with offset ${offset}: only the first call may have one`);
      const prvEnd = (t.pfnAt(prv) << PAGE_SHIFT_N) + BigInt(t.offsetAt(prv) + t.lengthAt(prv));
      const nextPfn = prvEnd >> PAGE_SHIFT_N;
      if (nPages > 0 && pfns[0] === nextPfn) {
        let lastPfn = nextPfn - 1n;
        while (nPages > 0 && pagesAreMergeable(pfns[first]!, lastPfn)) {
          if (t.lengthAt(prv) + SG_PAGE_SIZE > maxSeg) break;
          t.growLength(prv, SG_PAGE_SIZE);
          lastPfn = pfns[first]!;
          first++;
          nPages--;
        }
        if (nPages === 0) {
          if (leftPages === 0) t.markEnd(prv);
          return;
        }
      }
    }
    if (nPages === 0) {
      // The kernel would read pages[0] here; refuse instead of modelling an out-of-bounds read.
      fail('EINVAL', 'no pages to append');
    }

    // Count the chunks: a new one starts at a discontinuity or once max_segment is reached.
    let chunks = 1;
    let segLen = 0;
    for (let i = 1; i < nPages; i++) {
      segLen += SG_PAGE_SIZE;
      if (segLen >= maxSeg || !pagesAreMergeable(pfns[first + i]!, pfns[first + i - 1]!)) {
        chunks++;
        segLen = 0;
      }
    }

    let s = this.prv;
    let cur = 0;
    let off = offset;
    for (let c = 0; c < chunks; c++) {
      let j = cur + 1;
      segLen = 0;
      for (; j < nPages; j++) {
        segLen += SG_PAGE_SIZE;
        if (segLen >= maxSeg || !pagesAreMergeable(pfns[first + j]!, pfns[first + j - 1]!)) break;
      }
      s = this.nextSlot(s, chunks - c + leftPages);
      // chunk_size is an unsigned int: (pages << PAGE_SHIFT) - offset, wrapping like C.
      const chunkSize = ((j - cur) * SG_PAGE_SIZE - off) >>> 0;
      const length = remaining < BigInt(chunkSize) ? Number(remaining) : chunkSize;
      t.setPage(s, pfns[first + cur]!, length, off);
      // size is an unsigned long: it wraps when the pages hold more than `size` bytes.
      remaining = BigInt.asUintN(64, remaining - BigInt(chunkSize));
      off = 0;
      cur = j;
    }
    t.nents += chunks;
    t.origNents = t.nents;
    this.prv = s;
    if (leftPages === 0) t.markEnd(s);
  }

  /** Kernel bytes of the table plus the append header (an sg_append_table is usually on the stack). */
  get metadataBytes(): number {
    return this.sgt.metadataBytes;
  }
}

/**
 * sg_alloc_table_from_pages_segment: one append call with no previous entry and left_pages 0.
 * Page i of the buffer is `pfns[i]`; the buffer starts `offset` bytes into the first page and is
 * `size` bytes long. EINVAL as the kernel (max_segment below one page).
 */
export function sgAllocTableFromPagesSegment(
  pfns: ArrayLike<bigint>,
  offset: number,
  size: bigint | number,
  maxSegment: number,
): SgTable {
  const append = new SgAppendTable();
  append.appendFromPages(pfns, offset, size, maxSegment, 0);
  return append.sgt;
}

/** sg_alloc_table_from_pages: the same with SCATTERLIST_MAX_SEGMENT. */
export function sgAllocTableFromPages(
  pfns: ArrayLike<bigint>,
  offset: number,
  size: bigint | number,
): SgTable {
  return sgAllocTableFromPagesSegment(pfns, offset, size, SCATTERLIST_MAX_SEGMENT);
}

/**
 * A PhyrList as a driver would describe it with a scatterlist: ranges longer than `maxSegment`
 * (default SCATTERLIST_MAX_SEGMENT, since sg->length is 32-bit) are cut, one entry a piece, in a
 * table from sg_alloc_table (chained every SG_MAX_SINGLE_ALLOC). Each entry is the range's page frame
 * plus its offset in that page. EINVAL for an empty list (sg_alloc_table refuses 0 entries).
 */
export function phyrListToSgTable(list: PhyrList, options: { maxSegment?: number } = {}): SgTable {
  const maxSegment = options.maxSegment ?? SCATTERLIST_MAX_SEGMENT;
  checkU32(maxSegment, 'max segment');
  if (maxSegment === 0) fail('EINVAL', 'max segment must be positive');
  if (list.isEmpty)
    fail('EINVAL', 'an empty PhyrList has no scatterlist form (sg_alloc_table with 0 entries)');
  const pieces = list.split({ maxSegmentSize: BigInt(maxSegment) });
  const table = sgAllocTable(pieces.count);
  let s = table.sgl;
  pieces.forEachRange((address, length, i) => {
    table.setPage(s, address >> PAGE_SHIFT_N, Number(length), Number(address & PAGE_OFFSET_MASK));
    if (i + 1 < pieces.count) s = table.next(s);
  });
  return table;
}

/** The CPU side of a table as a PhyrList, one range an entry (no merging: the exact inverse). */
export function sgTableToPhyrList(table: SgTable, options: { merge?: boolean } = {}): PhyrList {
  return table.toPhyrList(options);
}
