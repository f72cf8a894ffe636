/**
 * An IO page table: a real multi-level radix tree kept in typed arrays.
 *
 * Storage: every table page is `E = 2^bitsPerLevel` 64-bit PTEs in one growable BigUint64Array
 * (`entries`, page t at [t*E, (t+1)*E)), with a free list of page numbers. Beside it, per page: the
 * count of live entries (a page is freed as soon as it drops to 0, the top page excepted), its
 * parent page and slot (so freeing walks upward), its level; and per entry a one-byte shadow kind
 * (empty/table/leaf) so the hot loops test a small integer instead of decoding a bigint. The PTE
 * words themselves are the truth for translation: `lookup`/`iovaToPhys` decode them with the
 * format's encoding. A table page's "physical address" is `(t + 1) << granuleShift`.
 *
 * Rules (each from the kernel, cited where used):
 *  - map: iommu_map's checks and loop (drivers/iommu/iommu.c), page size by iommu_pgsize, batches of
 *    pgcount leaves per map_pages call; an existing leaf or populated table in the way is EEXIST
 *    (io-pgtable-arm's -EEXIST; generic_pt says -EADDRINUSE for the same case); on failure partway,
 *    what was mapped is unmapped again.
 *  - unmap: generic_pt (drivers/iommu/generic_pt/iommu_pt.h, __unmap_range) never splits a large
 *    leaf. An unmap that starts at a leaf's first byte removes the whole leaf even if the request
 *    ends inside it, and reports the larger size; an unmap that starts inside a leaf, or reaches an
 *    empty entry, stops there and reports what it removed so far (possibly 0). io-pgtable-arm since
 *    v6.13 agrees on the refusal to split (it returns 0 for a partial block).
 */
import { COUNTER, type CounterName, fail, formatHex, formatSize, Metrics } from '../core/index.ts';
import { levelOfPageSize, levelShift, type PageTableFormat } from './format.ts';
import type { IotlbGather } from './gather.ts';
import { iommuPgsize, minPageSize } from './pgsize.ts';
import { IOMMU_READ, IOMMU_WRITE, type Prot } from './prot.ts';

const KIND_EMPTY = 0;
const KIND_TABLE = 1;
const KIND_LEAF = 2;

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

/** `j << shift` for j in 0..E-1, shared by every table of the same geometry. */
const offsetCache = new Map<string, BigUint64Array>();
function offsetsFor(entriesPerTable: number, shift: number): BigUint64Array {
  const key = `${entriesPerTable}:${shift}`;
  let table = offsetCache.get(key);
  if (table === undefined) {
    table = new BigUint64Array(entriesPerTable);
    for (let j = 0; j < entriesPerTable; j++) table[j] = BigInt(j) << BigInt(shift);
    offsetCache.set(key, table);
  }
  return table;
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
  private readonly shifts: bigint[];
  private readonly indexMasks: bigint[];
  private readonly offsets: BigUint64Array[];
  private readonly leafCounterNames: CounterName[];
  private readonly granuleShiftN: bigint;

  private entries: BigUint64Array;
  private kind: Uint8Array;
  private live: Int32Array;
  private parent: Int32Array;
  private parentSlot: Int32Array;
  private tableLevel: Int8Array;
  private capacity: number;
  private highWater = 0;
  private readonly freePages: number[] = [];
  private readonly top: number;
  private liveTables = 0;
  /** Bytes written by the map_pages call in progress (for unwinding a failure partway). */
  private progress = 0n;

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
    this.E = 1 << format.bitsPerLevel;
    this.maxTablePages = options.maxTablePages ?? Number.MAX_SAFE_INTEGER;
    this.granuleShiftN = BigInt(format.granuleShift);
    this.shifts = [];
    this.indexMasks = [];
    this.offsets = [];
    this.leafCounterNames = [];
    for (let level = 0; level < format.levels; level++) {
      const shift = levelShift(format, level);
      const bits = level === format.levels - 1 ? format.topLevelBits : format.bitsPerLevel;
      this.shifts.push(BigInt(shift));
      this.indexMasks.push((1n << BigInt(bits)) - 1n);
      this.offsets.push(offsetsFor(this.E, shift));
      this.leafCounterNames.push(`iommu.leaf_pte_writes.${formatSize(1n << BigInt(shift))}`);
    }
    this.capacity = 4;
    this.entries = new BigUint64Array(this.capacity * this.E);
    this.kind = new Uint8Array(this.capacity * this.E);
    this.live = new Int32Array(this.capacity);
    this.parent = new Int32Array(this.capacity);
    this.parentSlot = new Int32Array(this.capacity);
    this.tableLevel = new Int8Array(this.capacity);
    this.top = this.allocTable(format.levels - 1, -1, -1);
  }

  /** Table pages in use, the top one included. */
  get tablePages(): number {
    return this.liveTables;
  }

  // --- map -------------------------------------------------------------------------------------

  /**
   * Maps `[iova, iova + size)` to `[paddr, paddr + size)` (iommu_map). EINVAL for a zero size, an
   * alignment below the smallest page, or a prot without READ or WRITE (generic_pt map_pages);
   * ERANGE outside the aperture or the output address width; EEXIST over an existing mapping;
   * ENOMEM when the table-page limit is reached. On failure nothing stays mapped.
   */
  map(iova: bigint, paddr: bigint, size: bigint, prot: Prot): void {
    const min = this.minPageSize;
    if (size <= 0n) fail('EINVAL', `map of ${formatHex(iova)}: size ${size} must be positive`);
    if (((iova | paddr | size) & (min - 1n)) !== 0n) {
      fail(
        'EINVAL',
        `map iova ${formatHex(iova)} paddr ${formatHex(paddr)} size ${formatHex(size)} is not aligned to the minimum page size ${formatSize(min)}`,
      );
    }
    if ((prot & (IOMMU_READ | IOMMU_WRITE)) === 0) {
      fail('EINVAL', `map of ${formatHex(iova)} with neither READ nor WRITE permission`);
    }
    this.checkAperture(iova, size);
    if (paddr + size - 1n > this.oasLast) {
      fail(
        'ERANGE',
        `paddr ${formatHex(paddr)} + ${formatHex(size)} exceeds the ${this.format.oasBits}-bit output address space of ${this.format.name}`,
      );
    }
    let mapped = 0n;
    while (mapped < size) {
      const step = iommuPgsize(this.pgsizeBitmap, iova + mapped, paddr + mapped, size - mapped);
      this.progress = 0n;
      try {
        this.mapPages(iova + mapped, paddr + mapped, step.pgsize, step.count, prot);
      } catch (error) {
        // iommu_map: undo the part already mapped, so a failed map leaves no trace.
        const done = mapped + this.progress;
        if (done > 0n) this.unmap(iova, done);
        throw error;
      }
      mapped += step.pgsize * step.count;
    }
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
    this.metrics.add('iommu.map_pages_calls');
    const E = this.E;
    const shift = this.shifts[level]!;
    const mask = this.indexMasks[level]!;
    const offs = this.offsets[level]!;
    let pte = this.format.pte.leaf(paddr, prot, level);
    let cur = iova;
    let left = Number(count);
    while (left > 0) {
      const t = this.descend(cur, level);
      const idx = Number((cur >> shift) & mask);
      const n = Math.min(left, E - idx);
      const base = t * E + idx;
      // Read the arrays after descend: allocating a table may have grown (replaced) them.
      const kind = this.kind;
      for (let j = 0; j < n; j++) {
        if (kind[base + j] !== KIND_EMPTY) {
          const at = cur + (BigInt(j) << shift);
          fail(
            'EEXIST',
            `iova ${formatHex(at)} is already mapped (${kind[base + j] === KIND_LEAF ? 'a leaf' : 'a table of smaller pages'} is present where a ${formatSize(pgsize)} leaf would go)`,
          );
        }
      }
      const entries = this.entries;
      for (let j = 0; j < n; j++) {
        entries[base + j] = pte + offs[j]!;
        kind[base + j] = KIND_LEAF;
      }
      this.live[t]! += n;
      const bytes = BigInt(n) << shift;
      pte += bytes;
      cur += bytes;
      this.progress += bytes;
      left -= n;
      this.metrics.add(COUNTER.pteWrites, n);
      this.metrics.add('iommu.leaf_pte_writes', n);
      this.metrics.add(this.leafCounterNames[level]!, n);
    }
  }

  /** Walks from the top to the table page that holds `level` entries for `iova`, creating tables. */
  private descend(iova: bigint, level: number): number {
    let t = this.top;
    const E = this.E;
    for (let l = this.format.levels - 1; l > level; l--) {
      const slot = t * E + Number((iova >> this.shifts[l]!) & this.indexMasks[l]!);
      const k = this.kind[slot];
      if (k === KIND_TABLE) {
        t = this.childOf(slot);
      } else if (k === KIND_EMPTY) {
        const child = this.allocTable(l - 1, t, slot - t * E);
        this.entries[slot] = this.format.pte.table(this.tablePhys(child));
        this.kind[slot] = KIND_TABLE;
        this.live[t]! += 1;
        this.metrics.add(COUNTER.pteWrites);
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
   * 0). See the file comment for large leaves. Cleared ranges and freed tables go into `gather`.
   */
  unmap(iova: bigint, size: bigint, gather?: IotlbGather): bigint {
    if (size <= 0n || ((iova | size) & (this.minPageSize - 1n)) !== 0n) return 0n;
    if (iova > this.apertureLast || iova + size - 1n > this.apertureLast) return 0n;
    const E = this.E;
    const kind = this.kind;
    const end = iova + size;
    let cur = iova;
    let unmapped = 0n;
    walk: while (cur < end) {
      let t = this.top;
      for (let l = this.format.levels - 1; l >= 0; l--) {
        const shift = this.shifts[l]!;
        const idx = Number((cur >> shift) & this.indexMasks[l]!);
        const slot = t * E + idx;
        const k = kind[slot];
        if (k === KIND_EMPTY) break walk;
        if (k === KIND_TABLE) {
          t = this.childOf(slot);
          continue;
        }
        const leafSize = 1n << shift;
        if ((cur & (leafSize - 1n)) !== 0n) break walk; // starts inside a large leaf: no split
        // Leaves to clear in this table page: every one that starts before `end`.
        const want = Number((end - cur + leafSize - 1n) >> shift);
        const limit = Math.min(want, E - idx);
        const entries = this.entries;
        let n = 0;
        while (n < limit && kind[slot + n] === KIND_LEAF) {
          entries[slot + n] = 0n;
          kind[slot + n] = KIND_EMPTY;
          n++;
        }
        const bytes = BigInt(n) << shift;
        gather?.addRange(cur, bytes, leafSize);
        cur += bytes;
        unmapped += bytes;
        this.metrics.add(COUNTER.pteClears, n);
        this.live[t]! -= n;
        if (this.live[t] === 0 && t !== this.top) this.freeTableUpward(t, gather);
        continue walk;
      }
    }
    return unmapped;
  }

  /** Frees an empty table page and, in turn, every ancestor it leaves empty. */
  private freeTableUpward(t: number, gather: IotlbGather | undefined): void {
    let page = t;
    while (page !== this.top && this.live[page] === 0) {
      const p = this.parent[page]!;
      const slot = p * this.E + this.parentSlot[page]!;
      this.entries[slot] = 0n;
      this.kind[slot] = KIND_EMPTY;
      this.live[p]! -= 1;
      this.metrics.add(COUNTER.pteClears);
      this.releaseTable(page);
      if (gather !== undefined) gather.freedTablePages++;
      page = p;
    }
  }

  // --- lookups ---------------------------------------------------------------------------------

  /** Walks the table decoding PTE words; undefined when nothing is mapped at `iova`. */
  lookup(iova: bigint): Translation | undefined {
    if (iova < 0n || iova > this.apertureLast) return undefined;
    let t = this.top;
    for (let l = this.format.levels - 1; l >= 0; l--) {
      const shift = this.shifts[l]!;
      const slot = t * this.E + Number((iova >> shift) & this.indexMasks[l]!);
      const pte = this.format.pte.decode(this.entries[slot]!, l, this.format.oaMask);
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
    for (let l = this.format.levels - 1; l >= level; l--) {
      const slot = t * this.E + Number((iova >> this.shifts[l]!) & this.indexMasks[l]!);
      if (l === level) return this.entries[slot];
      if (this.kind[slot] !== KIND_TABLE) return undefined;
      t = this.childOf(slot);
    }
    return undefined;
  }

  /** Live leaf entries by page size (generic_pt kunit's count_valids). */
  countLeaves(): Map<bigint, number> {
    const out = new Map<bigint, number>();
    const visit = (t: number, level: number): void => {
      const base = t * this.E;
      for (let j = 0; j < this.E; j++) {
        const k = this.kind[base + j];
        if (k === KIND_LEAF) {
          const size = 1n << this.shifts[level]!;
          out.set(size, (out.get(size) ?? 0) + 1);
        } else if (k === KIND_TABLE) {
          visit(this.childOf(base + j), level - 1);
        }
      }
    };
    visit(this.top, this.format.levels - 1);
    return out;
  }

  /** Tears everything down (iommu domain free): every table page but the top is released. */
  clear(): void {
    const visit = (t: number): void => {
      const base = t * this.E;
      for (let j = 0; j < this.E; j++) {
        if (this.kind[base + j] === KIND_TABLE) {
          const child = this.childOf(base + j);
          visit(child);
          this.releaseTable(child);
        }
        if (this.kind[base + j] !== KIND_EMPTY) this.metrics.add(COUNTER.pteClears);
        this.entries[base + j] = 0n;
        this.kind[base + j] = KIND_EMPTY;
      }
      this.live[t] = 0;
    };
    visit(this.top);
  }

  // --- internals -------------------------------------------------------------------------------

  private checkAperture(iova: bigint, size: bigint): void {
    if (iova > this.apertureLast || iova + size - 1n > this.apertureLast) {
      fail(
        'ERANGE',
        `iova ${formatHex(iova)} + ${formatHex(size)} is outside the aperture 0..${formatHex(this.apertureLast)} of ${this.format.name}`,
      );
    }
  }

  private tablePhys(t: number): bigint {
    return BigInt(t + 1) << this.granuleShiftN;
  }

  private childOf(slot: number): number {
    return Number((this.entries[slot]! & this.format.oaMask) >> this.granuleShiftN) - 1;
  }

  private allocTable(level: number, parent: number, parentSlot: number): number {
    if (this.liveTables >= this.maxTablePages) {
      fail('ENOMEM', `page table ${this.format.name} is at its limit of ${this.maxTablePages} table pages`);
    }
    let t = this.freePages.pop();
    if (t === undefined) {
      if (this.highWater === this.capacity) this.grow();
      t = this.highWater++;
    }
    this.live[t] = 0;
    this.parent[t] = parent;
    this.parentSlot[t] = parentSlot;
    this.tableLevel[t] = level;
    this.liveTables++;
    this.metrics.add(COUNTER.tablePagesAllocated);
    return t;
  }

  private releaseTable(t: number): void {
    this.live[t] = 0;
    this.freePages.push(t);
    this.liveTables--;
    this.metrics.add(COUNTER.tablePagesFreed);
  }

  private grow(): void {
    const capacity = this.capacity * 2;
    const entries = new BigUint64Array(capacity * this.E);
    entries.set(this.entries);
    const kind = new Uint8Array(capacity * this.E);
    kind.set(this.kind);
    const grown = (old: Int32Array): Int32Array => {
      const next = new Int32Array(capacity);
      next.set(old);
      return next;
    };
    const level = new Int8Array(capacity);
    level.set(this.tableLevel);
    this.entries = entries;
    this.kind = kind;
    this.live = grown(this.live);
    this.parent = grown(this.parent);
    this.parentSlot = grown(this.parentSlot);
    this.tableLevel = level;
    this.capacity = capacity;
  }
}
