/**
 * An IO page table: a real multi-level radix tree kept in typed arrays.
 *
 * Storage: every table page is `E = 2^bitsPerLevel` 64-bit PTEs. Pages live in chunks of 32: each
 * chunk holds its pages' PTE words (a BigUint64Array, also seen as 32-bit halves so runs of leaves
 * are written with Numbers), a one-byte shadow kind per entry (empty/table/leaf, so hot loops test a
 * small integer instead of decoding a bigint), and per page the count of live entries, its parent
 * page and slot, and its level. Last-level (level 0) pages live in chunks of their own with no
 * kind bytes: an entry there is empty or a leaf, and a leaf word is never 0 (it carries the read or
 * write bit, or the valid bit), so the word itself tells. That makes 2^28 4K leaves (1 TiB) cost
 * 2.01 GiB, their 8 B PTE words plus 0.6%, instead of 2.26 GiB with a kind byte each. Storage grows
 * a chunk at a time (nothing is copied), pages are taken lowest first in a chunk of their class, and
 * a chunk left empty is given back once more than a few empty ones are kept. The PTE words are the
 * truth for translation: `lookup`/`iovaToPhys` decode them with the format's encoding. A table
 * page's "physical address" is `(t + 1) << granuleShift`.
 *
 * Rules (each from the kernel, cited where used):
 *  - map: iommu_map's checks and loop (drivers/iommu/iommu.c), page size by iommu_pgsize, batches of
 *    pgcount leaves per map_pages call; on failure partway what was mapped is unmapped again. A leaf
 *    in the way is EEXIST (io-pgtable-arm's -EEXIST; generic_pt says -EADDRINUSE). A table where a
 *    larger leaf goes is replaced: generic_pt (iommu_pt.h clear_contig) frees it when nothing below
 *    it is mapped and refuses otherwise; io-pgtable-arm (arm_lpae_init_pte) unmaps it at block size,
 *    freeing it with whatever it holds.
 *  - mapList: the same leaves for a whole list of ranges laid back to back in IOVA, in one walk that
 *    keeps its place between ranges (the bulk driver op the physr design asks for; generic_pt's
 *    map_range fills a range the same way, table by table).
 *  - unmap: never splits a large leaf. generic_pt (iommu_pt.h __unmap_range): a leaf starting at or
 *    after the request's start is removed whole even if the request ends inside it (and the larger
 *    size is reported); starting inside a leaf or reaching an empty entry stops the unmap there. A
 *    table page is freed only when the request covers all of it. io-pgtable-arm (__arm_lpae_unmap,
 *    6.13+): iommu_unmap's iommu_pgsize steps; a step at a level holding a table frees that table
 *    and everything below it; a step inside a larger block unmaps nothing. Neither frees a table just
 *    because its last leaf went: empty tables stay until a covering unmap or the domain's end.
 */
import { COUNTER, type Counter, fail, formatHex, formatSize, Metrics, type PhyrList } from '../core/index.ts';
import { levelOfPageSize, levelShift, type PageTableFormat } from './format.ts';
import type { IotlbGather } from './gather.ts';
import { iommuPgsize, minPageSize } from './pgsize.ts';
import { IOMMU_READ, IOMMU_WRITE, type Prot } from './prot.ts';

const KIND_EMPTY = 0;
const KIND_TABLE = 1;
const KIND_LEAF = 2;

/** Table pages per storage chunk (2^5). */
const CHUNK_SHIFT = 5;
const CHUNK_PAGES = 1 << CHUNK_SHIFT;
const CHUNK_MASK = CHUNK_PAGES - 1;
/** Empty chunks kept for reuse before more are given back (bounds churn in map/unmap loops). */
const SPARE_CHUNKS = 8;

/** Which 32-bit half of a 64-bit word comes first in memory (typed arrays use the host's order). */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const LO = LITTLE_ENDIAN ? 0 : 1;
const HI = 1 - LO;

/**
 * Entries base+1..base+n-1 of a run whose entry `base` is written: each the one before plus
 * 2^shift, stored as 32-bit halves (no bigint per entry).
 */
function fillLeaves(w: Uint32Array, base: number, n: number, shift: number): void {
  // Word32 arithmetic throughout (every sum truncated with >>> 0) so the optimizer keeps the
  // halves in registers; the low half's wrap is the carry into the high half.
  let k = base * 2;
  let lo = w[k + LO]! >>> 0;
  let hi = w[k + HI]! >>> 0;
  const stepLo = shift >= 32 ? 0 : (1 << shift) >>> 0;
  const stepHi = shift >= 32 ? (1 << (shift - 32)) >>> 0 : 0;
  for (let j = 1; j < n; j++) {
    const next = (lo + stepLo) >>> 0;
    hi = (hi + stepHi + (next < lo ? 1 : 0)) >>> 0;
    lo = next;
    k += 2;
    w[k + LO] = lo;
    w[k + HI] = hi;
  }
}

function addTo(cell: Counter, n: number): void {
  if (n === 0) return;
  cell.value += n;
  cell.touched = true;
}

/** A translation found by a table walk. */
export interface Translation {
  /** Physical address of the byte asked for. */
  readonly phys: bigint;
  /** IOVA where the leaf starts. */
  readonly leafIova: bigint;
  readonly pageSize: bigint;
  readonly prot: Prot;
}

export interface IoPageTableOptions {
  readonly metrics?: Metrics;
  /** Restrict the format's page sizes (the domain's pgsize_bitmap may be a subset). */
  readonly pgsizeBitmap?: bigint;
  /** Table pages the table may hold at once; beyond it map fails with ENOMEM. */
  readonly maxTablePages?: number;
}

/** 32 table pages and their bookkeeping. */
interface Chunk {
  readonly entries: BigUint64Array;
  /** The same bytes as 32-bit halves (LO/HI), for writing runs of leaves without bigints. */
  readonly halves: Uint32Array;
  /** Shadow kind per entry; none in a chunk of last-level pages (see kindOf). */
  readonly kind: Uint8Array | undefined;
  readonly live: Int32Array;
  readonly parent: Int32Array;
  readonly parentSlot: Int32Array;
  readonly level: Int8Array;
  /** Free page numbers within the chunk (a stack, lowest on top). */
  readonly free: Int32Array;
  freeCount: number;
}

/** Bytes of a chunk's per-page bookkeeping: live, parent, parentSlot, free (Int32), level (Int8). */
const CHUNK_BOOKKEEPING_BYTES = CHUNK_PAGES * (4 * 4 + 1);

/** A chunk for table pages of level 0 (`lastLevel`: no kind bytes) or of the levels above. */
function newChunk(E: number, lastLevel: boolean): Chunk {
  const entries = new BigUint64Array(CHUNK_PAGES * E);
  const free = new Int32Array(CHUNK_PAGES);
  for (let i = 0; i < CHUNK_PAGES; i++) free[i] = CHUNK_PAGES - 1 - i;
  return {
    entries,
    halves: new Uint32Array(entries.buffer),
    kind: lastLevel ? undefined : new Uint8Array(CHUNK_PAGES * E),
    live: new Int32Array(CHUNK_PAGES),
    parent: new Int32Array(CHUNK_PAGES),
    parentSlot: new Int32Array(CHUNK_PAGES),
    level: new Int8Array(CHUNK_PAGES),
    free,
    freeCount: CHUNK_PAGES,
  };
}

/** The kind of entry `slot` of a chunk: its shadow byte, or in a last-level chunk its word (0: empty). */
function kindOf(ch: Chunk, slot: number): number {
  const kind = ch.kind;
  if (kind !== undefined) return kind[slot]!;
  return (ch.halves[slot * 2]! | ch.halves[slot * 2 + 1]!) !== 0 ? KIND_LEAF : KIND_EMPTY;
}

/** Sets the shadow kind of entries from..to-1 (nothing to do in a last-level chunk). */
function setKinds(ch: Chunk, kind: number, from: number, to: number): void {
  ch.kind?.fill(kind, from, to);
}

export class IoPageTable {
  readonly format: PageTableFormat;
  readonly metrics: Metrics;
  readonly pgsizeBitmap: bigint;
  /** Last IOVA of the aperture (2^ias - 1). */
  readonly apertureLast: bigint;
  /** Last physical address the output field can hold (2^oas - 1). */
  readonly oasLast: bigint;
  readonly minPageSize: bigint;

  private readonly E: number;
  private readonly maxTablePages: number;
  private readonly topLevel: number;
  private readonly shifts: bigint[];
  private readonly shiftsN: number[];
  private readonly indexMasks: bigint[];
  /** Bytes a table page at each level spans. */
  private readonly spans: bigint[];
  private readonly granuleShiftN: bigint;
  /** The next page size above the smallest (0n when there is none): the constant-time check. */
  private readonly secondPageSize: bigint;
  private readonly minLevel: number;

  private readonly chunks: (Chunk | undefined)[] = [];
  private emptyChunks = 0;
  /** Lowest chunk that may have a free page, for pages above level 0 [0] and at level 0 [1]. */
  private readonly freeHint = [0, 0];
  private readonly top: number;
  private liveTables = 0;

  // Counter cells, and what the call in progress adds to them (added once per call).
  private readonly cPteWrites: Counter;
  private readonly cLeafWrites: Counter;
  private readonly cLeafBySize: Counter[];
  private readonly cMapPages: Counter;
  private readonly cPteClears: Counter;
  private readonly cTablesAllocated: Counter;
  private readonly cTablesFreed: Counter;
  private nPteWrites = 0;
  private readonly nLeafBySize: number[];
  private nMapPages = 0;
  private nPteClears = 0;
  private nTablesAllocated = 0;
  private nTablesFreed = 0;

  /** Bytes written by the map call in progress (for unwinding a failure partway). */
  private progress = 0n;
  /** Bytes the generic_pt unmap in progress has cleared. */
  private unmapped = 0n;
  /** Where the last run of leaves ended: its table page, next index and level (-1: no place). */
  private curTable = -1;
  private curIndex = 0;
  private curLevel = -1;
  /** Whether the cursor's table held nothing when this call first wrote to it. */
  private curFresh = false;
  /** Leaf PTE flags per level for `flagsProt` (leaf(paddr) = flags + paddr, format.ts invariant). */
  private flagsProt = -1;
  private readonly flags: bigint[];

  constructor(format: PageTableFormat, options: IoPageTableOptions = {}) {
    this.format = format;
    this.metrics = options.metrics ?? new Metrics();
    this.pgsizeBitmap = options.pgsizeBitmap === undefined ? format.pgsizeBitmap : options.pgsizeBitmap;
    if (this.pgsizeBitmap === 0n || (this.pgsizeBitmap & format.pgsizeBitmap) !== this.pgsizeBitmap) {
      fail(
        'EINVAL',
        `page sizes ${formatHex(this.pgsizeBitmap)} are not a non-empty subset of ${format.name}'s ${formatHex(format.pgsizeBitmap)}`,
      );
    }
    this.apertureLast = (1n << BigInt(format.iasBits)) - 1n;
    this.oasLast = (1n << BigInt(format.oasBits)) - 1n;
    this.minPageSize = minPageSize(this.pgsizeBitmap);
    const above = this.pgsizeBitmap & ~((this.minPageSize << 1n) - 1n);
    this.secondPageSize = above === 0n ? 0n : above & -above;
    this.minLevel = levelOfPageSize(format, this.minPageSize);
    this.E = 1 << format.bitsPerLevel;
    this.maxTablePages = options.maxTablePages ?? Number.MAX_SAFE_INTEGER;
    this.granuleShiftN = BigInt(format.granuleShift);
    this.topLevel = format.levels - 1;
    this.shifts = [];
    this.shiftsN = [];
    this.indexMasks = [];
    this.spans = [];
    this.cLeafBySize = [];
    this.nLeafBySize = [];
    this.flags = [];
    for (let level = 0; level < format.levels; level++) {
      const shift = levelShift(format, level);
      const bits = level === this.topLevel ? format.topLevelBits : format.bitsPerLevel;
      this.shifts.push(BigInt(shift));
      this.shiftsN.push(shift);
      this.indexMasks.push((1n << BigInt(bits)) - 1n);
      this.spans.push(1n << BigInt(shift + bits));
      this.cLeafBySize.push(this.metrics.counter(`iommu.leaf_pte_writes.${formatSize(1n << BigInt(shift))}`));
      this.nLeafBySize.push(0);
      this.flags.push(0n);
    }
    this.cPteWrites = this.metrics.counter(COUNTER.pteWrites);
    this.cLeafWrites = this.metrics.counter('iommu.leaf_pte_writes');
    this.cMapPages = this.metrics.counter('iommu.map_pages_calls');
    this.cPteClears = this.metrics.counter(COUNTER.pteClears);
    this.cTablesAllocated = this.metrics.counter(COUNTER.tablePagesAllocated);
    this.cTablesFreed = this.metrics.counter(COUNTER.tablePagesFreed);
    this.top = this.allocTable(this.topLevel, -1, -1);
    this.flushCounters();
  }

  /** Table pages in use, the top one included. */
  get tablePages(): number {
    return this.liveTables;
  }

  /** Bytes of typed-array storage the table holds now (PTE words, kinds, per-page bookkeeping). */
  get storageBytes(): number {
    let n = 0;
    for (const c of this.chunks) {
      if (c !== undefined) n += c.entries.byteLength + (c.kind?.byteLength ?? 0) + CHUNK_BOOKKEEPING_BYTES;
    }
    return n;
  }

  // --- map -------------------------------------------------------------------------------------

  /**
   * Maps `[iova, iova + size)` to `[paddr, paddr + size)` (iommu_map). EINVAL for a zero size, an
   * alignment below the smallest page, or a prot without READ or WRITE (generic_pt map_pages);
   * ERANGE outside the aperture or the output address width; EEXIST over an existing mapping;
   * ENOMEM when the table-page limit is reached. On failure nothing stays mapped. Table pages that a
   * larger leaf replaced go into `gather` (the caller syncs it).
   */
  map(iova: bigint, paddr: bigint, size: bigint, prot: Prot, gather?: IotlbGather): void {
    const min = this.minPageSize;
    if (size <= 0n) fail('EINVAL', `map of ${formatHex(iova)}: size ${size} must be positive`);
    if (((iova | paddr | size) & (min - 1n)) !== 0n) {
      fail(
        'EINVAL',
        `map iova ${formatHex(iova)} paddr ${formatHex(paddr)} size ${formatHex(size)} is not aligned to the minimum page size ${formatSize(min)}`,
      );
    }
    this.checkProt(iova, prot);
    this.checkAperture(iova, size);
    this.checkOutput(paddr, size);
    this.curTable = -1;
    this.progress = 0n;
    try {
      this.mapRange(iova, paddr, size, prot, gather);
    } catch (error) {
      // iommu_map: undo the part already mapped, so a failed map leaves no trace.
      if (this.progress > 0n) this.unmap(iova, this.progress);
      throw error;
    } finally {
      this.flushCounters();
    }
  }

  /**
   * Maps ranges `from..to-1` of a packed range list back to back from `iova`, the
   * IOVA of range `from`'s first byte: what a map call per range (each rounded out to the smallest
   * page) would do, in one walk that keeps its place, with the checks done once for the list and
   * the counters added once. Every range but the first must start on the smallest page, every range
   * but the last end on one, and the first must share its in-page offset with `iova` (EINVAL). The
   * other errors and the unwinding are map's. Returns the IOVA bytes mapped (page multiples).
   */
  mapList(iova: bigint, list: PhyrList, from: number, to: number, prot: Prot, gather?: IotlbGather): bigint {
    if (!(Number.isInteger(from) && Number.isInteger(to) && from >= 0 && to <= list.count)) {
      fail('EINVAL', `mapList ranges ${from}..${to} are outside the list of ${list.count}`);
    }
    if (from >= to) fail('EINVAL', `mapList of no ranges at ${formatHex(iova)}`);
    this.checkProt(iova, prot);
    const mask = this.minPageSize - 1n;
    const first = list.addressAt(from);
    if (((iova ^ first) & mask) !== 0n) {
      fail(
        'EINVAL',
        `mapList iova ${formatHex(iova)} and paddr ${formatHex(first)} differ in their ${formatSize(this.minPageSize)} page offset`,
      );
    }
    const start = iova - (first & mask);
    let total = 0n;
    const cur = list.cursor(from);
    for (let i = from; i < to; i++, cur.next()) {
      const a = cur.address;
      const len = cur.length;
      if ((i > from && (a & mask) !== 0n) || (i < to - 1 && ((a + len) & mask) !== 0n)) {
        fail(
          'EINVAL',
          `mapList range ${i} ${formatHex(a)}+${formatSize(len)} breaks the ${formatSize(this.minPageSize)} alignment a list needs (only the first may start, and the last end, inside a page)`,
        );
      }
      total += len;
    }
    const size = (total + (first & mask) + mask) & ~mask;
    this.checkAperture(start, size);
    this.curTable = -1;
    this.progress = 0n;
    try {
      let va = start;
      const at = list.cursor(from);
      for (let i = from; i < to; i++, at.next()) {
        const a = at.address;
        const pad = a & mask;
        const pa = a - pad;
        const sz = (at.length + pad + mask) & ~mask;
        this.checkOutput(pa, sz);
        this.mapRange(va, pa, sz, prot, gather);
        va += sz;
      }
    } catch (error) {
      if (this.progress > 0n) this.unmap(start, this.progress);
      throw error;
    } finally {
      this.flushCounters();
    }
    return size;
  }

  /**
   * The driver's map_pages: `count` leaves of `pgsize` starting at `iova`, written run by run (a
   * run is the part inside one table page, stored by one typed-array loop).
   */
  mapPages(iova: bigint, paddr: bigint, pgsize: bigint, count: bigint, prot: Prot): void {
    const level = levelOfPageSize(this.format, pgsize);
    if (level < 0 || (this.pgsizeBitmap & pgsize) === 0n) {
      fail('EINVAL', `page size ${formatSize(pgsize)} is not supported by ${this.format.name}`);
    }
    this.curTable = -1;
    try {
      this.writeLeaves(iova, paddr, level, Number(count), prot, undefined);
    } finally {
      this.flushCounters();
    }
  }

  /** iommu_map's loop over iommu_pgsize steps for one checked range (no re-validation). */
  private mapRange(
    iova: bigint,
    paddr: bigint,
    size: bigint,
    prot: Prot,
    gather: IotlbGather | undefined,
  ): void {
    const second = this.secondPageSize;
    // Constant time: when no larger page can ever be used along the range (iova and paddr differ
    // modulo it, or no whole aligned one fits), iommu_pgsize gives one step of smallest pages.
    if (
      second === 0n ||
      ((iova ^ paddr) & (second - 1n)) !== 0n ||
      ((iova + second - 1n) & -second) + second > iova + size
    ) {
      this.writeLeaves(iova, paddr, this.minLevel, Number(size >> this.shifts[this.minLevel]!), prot, gather);
      return;
    }
    let mapped = 0n;
    while (mapped < size) {
      const step = iommuPgsize(this.pgsizeBitmap, iova + mapped, paddr + mapped, size - mapped);
      const level = levelOfPageSize(this.format, step.pgsize);
      this.writeLeaves(iova + mapped, paddr + mapped, level, Number(step.count), prot, gather);
      mapped += step.pgsize * step.count;
    }
  }

  /** The leaf PTE for `paddr` at `level` (flags cached per prot: leaf(p) = leaf(0) + p). */
  private leafPte(paddr: bigint, prot: Prot, level: number): bigint {
    if (prot !== this.flagsProt) {
      for (let l = 0; l < this.flags.length; l++) this.flags[l] = this.format.pte.leaf(0n, prot, l);
      // Last-level chunks tell a leaf from an empty entry by a word that is not 0 (kindOf).
      if (this.flags[0] === 0n) fail('EINVAL', `${this.format.name} encodes a leaf with prot ${prot} as 0`);
      this.flagsProt = prot;
    }
    return this.flags[level]! + paddr;
  }

  /**
   * One map_pages call: `count` leaves at `level`, continuing at the cursor when the previous run
   * ended exactly here at the same level, else walking down from the top.
   */
  private writeLeaves(
    iova: bigint,
    paddr: bigint,
    level: number,
    count: number,
    prot: Prot,
    gather: IotlbGather | undefined,
  ): void {
    this.nMapPages++;
    const E = this.E;
    const shift = this.shifts[level]!;
    let pte = this.leafPte(paddr, prot, level);
    let cur = iova;
    let left = count;
    while (left > 0) {
      if (this.curTable < 0 || this.curLevel !== level) {
        this.curTable = this.descend(cur, level);
        this.curIndex = Number((cur >> shift) & this.indexMasks[level]!);
        this.curLevel = level;
        this.curFresh = this.chunks[this.curTable >>> CHUNK_SHIFT]!.live[this.curTable & CHUNK_MASK] === 0;
      }
      const t = this.curTable;
      const idx = this.curIndex;
      const n = Math.min(left, E - idx);
      this.writeRun(t, idx, n, pte, level, cur, gather);
      if (idx + n === E) this.curTable = -1;
      else this.curIndex = idx + n;
      const bytes = BigInt(n) << shift;
      pte += bytes;
      cur += bytes;
      this.progress += bytes;
      left -= n;
    }
  }

  /** Stores `n` consecutive leaves from `pte` at entries idx.. of table page t. */
  private writeRun(
    t: number,
    idx: number,
    n: number,
    pte: bigint,
    level: number,
    iova: bigint,
    gather: IotlbGather | undefined,
  ): void {
    const ch = this.chunks[t >>> CHUNK_SHIFT]!;
    const local = t & CHUNK_MASK;
    const base = local * this.E + idx;
    // A table empty when this call first reached it cannot hold anything in this run's way.
    if (!this.curFresh) {
      for (let j = 0; j < n; j++) {
        const k = kindOf(ch, base + j);
        if (k === KIND_EMPTY) continue;
        const at = iova + (BigInt(j) << this.shifts[level]!);
        if (k === KIND_LEAF) {
          fail(
            'EEXIST',
            `iova ${formatHex(at)} is already mapped (a leaf is present where a ${formatSize(1n << this.shifts[level]!)} leaf would go)`,
          );
        }
        this.replaceTable(t, idx + j, level, at, gather);
      }
    }
    const entries = ch.entries;
    entries[base] = pte;
    // The rest of the run with Numbers: each leaf is the previous plus the page size.
    if (n > 1) fillLeaves(ch.halves, base, n, this.shiftsN[level]!);
    setKinds(ch, KIND_LEAF, base, base + n);
    ch.live[local]! += n;
    this.nPteWrites += n;
    this.nLeafBySize[level]! += n;
  }

  /**
   * A larger leaf goes where a table is. generic_pt (iommu_pt.h clear_contig): only when nothing
   * below is mapped, else EEXIST (the kernel's -EADDRINUSE). io-pgtable-arm (arm_lpae_init_pte): the
   * table is unmapped at block size, freed with whatever it holds.
   */
  private replaceTable(
    t: number,
    idx: number,
    level: number,
    iova: bigint,
    gather: IotlbGather | undefined,
  ): void {
    const ch = this.chunks[t >>> CHUNK_SHIFT]!;
    const slot = (t & CHUNK_MASK) * this.E + idx;
    const child = this.childOf(ch.entries[slot]!);
    if (this.format.walker === 'generic_pt' && this.subtreeHasLeaf(child)) {
      fail(
        'EEXIST',
        `iova ${formatHex(iova)} is already mapped (a table of smaller pages is present where a ${formatSize(1n << this.shifts[level]!)} leaf would go)`,
      );
    }
    this.clearTableEntry(t, idx, child, gather);
    gather?.addRange(iova, 1n << this.shifts[level]!, 1n << this.shifts[level]!);
  }

  /** Walks from the top to the table page that holds `level` entries for `iova`, creating tables. */
  private descend(iova: bigint, level: number): number {
    let t = this.top;
    const E = this.E;
    for (let l = this.topLevel; l > level; l--) {
      const ch = this.chunks[t >>> CHUNK_SHIFT]!;
      const slot = (t & CHUNK_MASK) * E + Number((iova >> this.shifts[l]!) & this.indexMasks[l]!);
      const k = ch.kind![slot];
      if (k === KIND_TABLE) {
        t = this.childOf(ch.entries[slot]!);
      } else if (k === KIND_EMPTY) {
        const child = this.allocTable(l - 1, t, slot - (t & CHUNK_MASK) * E);
        // allocTable may have made a chunk; `ch` is still this page's chunk (chunks never move).
        ch.entries[slot] = this.format.pte.table(this.tablePhys(child));
        ch.kind![slot] = KIND_TABLE;
        ch.live[t & CHUNK_MASK]! += 1;
        this.nPteWrites++;
        t = child;
      } else {
        const size = 1n << this.shifts[l]!;
        const leafIova = (iova >> this.shifts[l]!) << this.shifts[l]!;
        fail(
          'EEXIST',
          `iova ${formatHex(iova)} lies inside the ${formatSize(size)} leaf at ${formatHex(leafIova)}`,
        );
      }
    }
    return t;
  }

  // --- unmap -----------------------------------------------------------------------------------

  /**
   * Unmaps from `iova` for `size` bytes and returns the bytes unmapped (iommu_unmap). Returns 0 for
   * a request not aligned to the smallest page or outside the aperture (the kernel WARNs and returns
   * 0). See the file comment for large leaves and freed tables. Cleared ranges and freed tables go
   * into `gather`.
   */
  unmap(iova: bigint, size: bigint, gather?: IotlbGather): bigint {
    if (size <= 0n || ((iova | size) & (this.minPageSize - 1n)) !== 0n) return 0n;
    if (iova > this.apertureLast || iova + size - 1n > this.apertureLast) return 0n;
    this.curTable = -1;
    try {
      if (this.format.walker === 'generic_pt') {
        this.unmapped = 0n;
        this.unmapTable(this.top, this.topLevel, 0n, iova, iova + size, gather);
        return this.unmapped;
      }
      return this.unmapArm(iova, size, gather);
    } finally {
      this.flushCounters();
    }
  }

  /**
   * generic_pt __unmap_range over one table page: leaves cleared whole, tables descended and freed
   * when the request covers them and everything below was cleared. False when the walk stopped (a
   * leaf starting before the request, or an empty entry).
   */
  private unmapTable(
    t: number,
    level: number,
    tableIova: bigint,
    iova: bigint,
    end: bigint,
    gather: IotlbGather | undefined,
  ): boolean {
    const shift = this.shifts[level]!;
    const itemSize = 1n << shift;
    const lo = iova > tableIova ? iova : tableIova;
    const spanEnd = tableIova + this.spans[level]!;
    const hi = end < spanEnd ? end : spanEnd;
    let idx = Number((lo - tableIova) >> shift);
    const endIdx = Number((hi - 1n - tableIova) >> shift) + 1;
    const ch = this.chunks[t >>> CHUNK_SHIFT]!;
    const local = t & CHUNK_MASK;
    const base = local * this.E;
    while (idx < endIdx) {
      const k = kindOf(ch, base + idx);
      const entryIova = tableIova + (BigInt(idx) << shift);
      if (k === KIND_LEAF) {
        if (entryIova < iova) return false; // starts inside a large leaf: no split
        let n = 1;
        const kind = ch.kind;
        if (kind !== undefined) {
          while (idx + n < endIdx && kind[base + idx + n] === KIND_LEAF) n++;
        } else {
          // A last-level page: every word not 0 is a leaf (kindOf), tested as two 32-bit halves.
          const h = ch.halves;
          for (let w = (base + idx + 1) * 2; idx + n < endIdx && (h[w]! | h[w + 1]!) !== 0; w += 2) n++;
        }
        ch.entries.fill(0n, base + idx, base + idx + n);
        setKinds(ch, KIND_EMPTY, base + idx, base + idx + n);
        ch.live[local]! -= n;
        this.nPteClears += n;
        const bytes = BigInt(n) << shift;
        gather?.addRange(entryIova, bytes, itemSize);
        this.unmapped += bytes;
        idx += n;
      } else if (k === KIND_TABLE) {
        const child = this.childOf(ch.entries[base + idx]!);
        const covered = entryIova >= iova && entryIova + itemSize <= end;
        if (!this.unmapTable(child, level - 1, entryIova, iova, end, gather)) return false;
        if (covered) this.clearTableEntry(t, idx, child, gather);
        idx++;
      } else {
        return false;
      }
    }
    return true;
  }

  /** iommu_unmap's loop for io-pgtable-arm: iommu_pgsize steps, each one unmap_pages call. */
  private unmapArm(iova: bigint, size: bigint, gather: IotlbGather | undefined): bigint {
    let unmapped = 0n;
    while (unmapped < size) {
      const at = iova + unmapped;
      const step = iommuPgsize(this.pgsizeBitmap, at, at, size - unmapped);
      const done = this.armUnmapPages(at, step.pgsize, Number(step.count), gather);
      if (done === 0n) break;
      unmapped += done;
    }
    return unmapped;
  }

  /**
   * __arm_lpae_unmap (io-pgtable-arm.c): at the level of `pgsize`, up to `count` entries in one table
   * page, a table there freed with everything below it; 0 at an empty entry or inside a larger block
   * (no split since 6.13).
   */
  private armUnmapPages(
    iova: bigint,
    pgsize: bigint,
    count: number,
    gather: IotlbGather | undefined,
  ): bigint {
    const target = levelOfPageSize(this.format, pgsize);
    let t = this.top;
    for (let l = this.topLevel; l >= target; l--) {
      const ch = this.chunks[t >>> CHUNK_SHIFT]!;
      const local = t & CHUNK_MASK;
      const idx = Number((iova >> this.shifts[l]!) & this.indexMasks[l]!);
      const slot = local * this.E + idx;
      const k = kindOf(ch, slot);
      if (k === KIND_EMPTY) return 0n;
      if (l === target) {
        const num = Math.min(count, this.E - idx);
        let i = 0;
        for (; i < num; i++) {
          const ki = kindOf(ch, slot + i);
          if (ki === KIND_EMPTY) break;
          if (ki === KIND_TABLE) {
            this.clearTableEntry(t, idx + i, this.childOf(ch.entries[slot + i]!), gather);
          } else {
            ch.entries[slot + i] = 0n;
            setKinds(ch, KIND_EMPTY, slot + i, slot + i + 1);
            ch.live[local]! -= 1;
            this.nPteClears++;
          }
        }
        const bytes = BigInt(i) * pgsize;
        if (i > 0) gather?.addRange(iova, bytes, pgsize);
        return bytes;
      }
      if (k === KIND_LEAF) return 0n;
      t = this.childOf(ch.entries[slot]!);
    }
    return 0n;
  }

  /** Clears the table entry at (t, idx) and frees the table below it with all its descendants. */
  private clearTableEntry(t: number, idx: number, child: number, gather: IotlbGather | undefined): void {
    const ch = this.chunks[t >>> CHUNK_SHIFT]!;
    const slot = (t & CHUNK_MASK) * this.E + idx;
    ch.entries[slot] = 0n;
    ch.kind![slot] = KIND_EMPTY;
    ch.live[t & CHUNK_MASK]! -= 1;
    this.nPteClears++;
    this.freeSubtree(child, gather);
  }

  /** Frees a table page and every table below it (their entries go with them, uncleared). */
  private freeSubtree(t: number, gather: IotlbGather | undefined): void {
    const ch = this.chunks[t >>> CHUNK_SHIFT]!;
    const local = t & CHUNK_MASK;
    if (ch.live[local]! > 0 && ch.level[local]! > 0) {
      const base = local * this.E;
      for (let j = 0; j < this.E; j++) {
        if (ch.kind![base + j] === KIND_TABLE) this.freeSubtree(this.childOf(ch.entries[base + j]!), gather);
      }
    }
    this.releaseTable(t);
    if (gather !== undefined) gather.freedTablePages++;
  }

  private subtreeHasLeaf(t: number): boolean {
    const ch = this.chunks[t >>> CHUNK_SHIFT]!;
    const local = t & CHUNK_MASK;
    if (ch.live[local] === 0) return false;
    // A live last-level page holds a leaf.
    if (ch.kind === undefined) return true;
    const base = local * this.E;
    for (let j = 0; j < this.E; j++) {
      const k = ch.kind[base + j];
      if (k === KIND_LEAF) return true;
      if (k === KIND_TABLE && this.subtreeHasLeaf(this.childOf(ch.entries[base + j]!))) return true;
    }
    return false;
  }

  // --- lookups ---------------------------------------------------------------------------------

  /** Walks the table decoding PTE words; undefined when nothing is mapped at `iova`. */
  lookup(iova: bigint): Translation | undefined {
    if (iova < 0n || iova > this.apertureLast) return undefined;
    let t = this.top;
    for (let l = this.topLevel; l >= 0; l--) {
      const shift = this.shifts[l]!;
      const ch = this.chunks[t >>> CHUNK_SHIFT]!;
      const slot = (t & CHUNK_MASK) * this.E + Number((iova >> shift) & this.indexMasks[l]!);
      const pte = this.format.pte.decode(ch.entries[slot]!, l, this.format.oaMask);
      if (pte.type === 'empty') return undefined;
      if (pte.type === 'table') {
        t = Number(pte.address >> this.granuleShiftN) - 1;
        continue;
      }
      const pageSize = 1n << shift;
      const offset = iova & (pageSize - 1n);
      return { phys: pte.address + offset, leafIova: iova - offset, pageSize, prot: pte.prot };
    }
    return undefined;
  }

  /** iommu_iova_to_phys: the physical address, or 0 when there is no translation. */
  iovaToPhys(iova: bigint): bigint {
    return this.lookup(iova)?.phys ?? 0n;
  }

  /** The raw PTE word at `level` for `iova`, or undefined if the walk stops above it. */
  pteAt(iova: bigint, level: number): bigint | undefined {
    let t = this.top;
    for (let l = this.topLevel; l >= level; l--) {
      const ch = this.chunks[t >>> CHUNK_SHIFT]!;
      const slot = (t & CHUNK_MASK) * this.E + Number((iova >> this.shifts[l]!) & this.indexMasks[l]!);
      if (l === level) return ch.entries[slot];
      if (ch.kind![slot] !== KIND_TABLE) return undefined;
      t = this.childOf(ch.entries[slot]!);
    }
    return undefined;
  }

  /** Every non-empty PTE word, walking in IOVA order: `[level, iova, word]` (tests compare tables). */
  *entries(): IterableIterator<readonly [number, bigint, bigint]> {
    const self = this;
    function* visit(
      t: number,
      level: number,
      tableIova: bigint,
    ): IterableIterator<readonly [number, bigint, bigint]> {
      const ch = self.chunks[t >>> CHUNK_SHIFT]!;
      const base = (t & CHUNK_MASK) * self.E;
      for (let j = 0; j < self.E; j++) {
        const k = kindOf(ch, base + j);
        if (k === KIND_EMPTY) continue;
        const at = tableIova + (BigInt(j) << self.shifts[level]!);
        yield [level, at, ch.entries[base + j]!];
        if (k === KIND_TABLE) yield* visit(self.childOf(ch.entries[base + j]!), level - 1, at);
      }
    }
    yield* visit(this.top, this.topLevel, 0n);
  }

  /** Live leaf entries by page size (generic_pt kunit's count_valids). */
  countLeaves(): Map<bigint, number> {
    const out = new Map<bigint, number>();
    const visit = (t: number, level: number): void => {
      const ch = this.chunks[t >>> CHUNK_SHIFT]!;
      const base = (t & CHUNK_MASK) * this.E;
      for (let j = 0; j < this.E; j++) {
        const k = kindOf(ch, base + j);
        if (k === KIND_LEAF) {
          const size = 1n << this.shifts[level]!;
          out.set(size, (out.get(size) ?? 0) + 1);
        } else if (k === KIND_TABLE) {
          visit(this.childOf(ch.entries[base + j]!), level - 1);
        }
      }
    };
    visit(this.top, this.topLevel);
    return out;
  }

  /** Tears everything down (iommu domain free): every table page but the top is released. */
  clear(): void {
    const ch = this.chunks[this.top >>> CHUNK_SHIFT]!;
    const local = this.top & CHUNK_MASK;
    const base = local * this.E;
    for (let j = 0; j < this.E; j++) {
      const k = kindOf(ch, base + j);
      if (k === KIND_TABLE) this.freeSubtree(this.childOf(ch.entries[base + j]!), undefined);
      if (k !== KIND_EMPTY) this.nPteClears++;
    }
    ch.entries.fill(0n, base, base + this.E);
    setKinds(ch, KIND_EMPTY, base, base + this.E);
    ch.live[local] = 0;
    this.curTable = -1;
    this.flushCounters();
  }

  // --- internals -------------------------------------------------------------------------------

  private checkProt(iova: bigint, prot: Prot): void {
    if ((prot & (IOMMU_READ | IOMMU_WRITE)) === 0) {
      fail('EINVAL', `map of ${formatHex(iova)} with neither READ nor WRITE permission`);
    }
  }

  private checkAperture(iova: bigint, size: bigint): void {
    if (iova > this.apertureLast || iova + size - 1n > this.apertureLast) {
      fail(
        'ERANGE',
        `iova ${formatHex(iova)} + ${formatHex(size)} is outside the aperture 0..${formatHex(this.apertureLast)} of ${this.format.name}`,
      );
    }
  }

  private checkOutput(paddr: bigint, size: bigint): void {
    if (paddr + size - 1n > this.oasLast) {
      fail(
        'ERANGE',
        `paddr ${formatHex(paddr)} + ${formatHex(size)} exceeds the ${this.format.oasBits}-bit output address space of ${this.format.name}`,
      );
    }
  }

  /** Adds what the call counted to the shared counters, once. */
  private flushCounters(): void {
    if (this.nPteWrites > 0) {
      this.cPteWrites.value += this.nPteWrites;
      this.cPteWrites.touched = true;
      let leaves = 0;
      for (let l = 0; l < this.nLeafBySize.length; l++) {
        const n = this.nLeafBySize[l]!;
        if (n === 0) continue;
        const cell = this.cLeafBySize[l]!;
        cell.value += n;
        cell.touched = true;
        leaves += n;
        this.nLeafBySize[l] = 0;
      }
      if (leaves > 0) {
        this.cLeafWrites.value += leaves;
        this.cLeafWrites.touched = true;
      }
      this.nPteWrites = 0;
    }
    addTo(this.cMapPages, this.nMapPages);
    addTo(this.cPteClears, this.nPteClears);
    addTo(this.cTablesAllocated, this.nTablesAllocated);
    addTo(this.cTablesFreed, this.nTablesFreed);
    this.nMapPages = 0;
    this.nPteClears = 0;
    this.nTablesAllocated = 0;
    this.nTablesFreed = 0;
  }

  private tablePhys(t: number): bigint {
    return BigInt(t + 1) << this.granuleShiftN;
  }

  private childOf(word: bigint): number {
    return Number((word & this.format.oaMask) >> this.granuleShiftN) - 1;
  }

  /**
   * Takes the lowest free table page in a chunk for its level's class (level 0, or above), making a
   * chunk in the first gap or at the end when every chunk of the class is full.
   */
  private allocTable(level: number, parent: number, parentSlot: number): number {
    if (this.liveTables >= this.maxTablePages) {
      fail('ENOMEM', `page table ${this.format.name} is at its limit of ${this.maxTablePages} table pages`);
    }
    const lastLevel = level === 0;
    const cls = lastLevel ? 1 : 0;
    let c = Math.min(this.freeHint[cls]!, this.chunks.length);
    for (; c < this.chunks.length; c++) {
      const x = this.chunks[c];
      if (x === undefined || (x.freeCount > 0 && (x.kind === undefined) === lastLevel)) break;
    }
    let ch = this.chunks[c];
    if (ch === undefined) {
      ch = newChunk(this.E, lastLevel);
      this.chunks[c] = ch;
    } else if (ch.freeCount === CHUNK_PAGES) {
      this.emptyChunks--;
    }
    this.freeHint[cls] = c;
    const local = ch.free[--ch.freeCount]!;
    ch.live[local] = 0;
    ch.parent[local] = parent;
    ch.parentSlot[local] = parentSlot;
    ch.level[local] = level;
    this.liveTables++;
    this.nTablesAllocated++;
    return (c << CHUNK_SHIFT) | local;
  }

  /** Gives a table page back; its entries are zeroed if any were left; an empty chunk may go. */
  private releaseTable(t: number): void {
    const c = t >>> CHUNK_SHIFT;
    const ch = this.chunks[c]!;
    const local = t & CHUNK_MASK;
    if (ch.live[local] !== 0) {
      const base = local * this.E;
      ch.entries.fill(0n, base, base + this.E);
      setKinds(ch, KIND_EMPTY, base, base + this.E);
      ch.live[local] = 0;
    }
    // Keep the free stack ordered lowest-on-top only loosely: pushing is enough to reuse it first.
    ch.free[ch.freeCount++] = local;
    const cls = ch.kind === undefined ? 1 : 0;
    if (c < this.freeHint[cls]!) this.freeHint[cls] = c;
    this.liveTables--;
    this.nTablesFreed++;
    if (this.curTable === t) this.curTable = -1;
    if (ch.freeCount === CHUNK_PAGES) {
      if (this.emptyChunks >= SPARE_CHUNKS) {
        this.chunks[c] = undefined;
        // The gap may take a chunk of either class.
        if (c < this.freeHint[1 - cls]!) this.freeHint[1 - cls] = c;
        while (this.chunks.length > 0 && this.chunks[this.chunks.length - 1] === undefined) this.chunks.pop();
      } else {
        this.emptyChunks++;
      }
    }
  }
}
