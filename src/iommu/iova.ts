/**
 * The IOVA allocator of drivers/iommu/iova.c, in page frame numbers of the domain's granule.
 *
 * - Allocated and reserved ranges are kept sorted (`[pfnLo, pfnHi]`, inclusive) in plain arrays; a
 *   pfn is at most 2^52 for a 4K granule, so Numbers hold it exactly.
 * - alloc_iova: top-down, never below `startPfn`; `sizeAligned` aligns the start to the size rounded
 *   up to a power of two (the align_mask built from fls_long(size - 1)). As the kernel, the downward
 *   search starts at a cached node (the last allocation: one for limits within 32 bits, one above),
 *   not at the limit, and retries once between the limit and that node when it reaches the bottom;
 *   so with holes above the cached node a lower fit is handed out. A failure under a 32-bit limit
 *   remembers its size (max32_alloc_size): as large a request fails at once until something below
 *   4 GiB is freed.
 * - reserve_iova: reserved ranges (MSI window, PCI host-bridge windows) sit in the same list and
 *   are never handed out or freed; a reservation overlapping reserved ranges grows them and adds
 *   only what is left above them, one range per call as the kernel's nodes.
 * - The rcache (alloc_iova_fast / free_iova_fast): sizes below 2^(IOVA_RANGE_CACHE_MAX_SIZE - 1)
 *   pages are rounded up to a power of two; freed ranges of orders 0..IOVA_RANGE_CACHE_MAX_SIZE-1
 *   go to a per-order cache of magazines (IOVA_MAG_SIZE pfns each). The kernel keeps a loaded and a
 *   previous magazine per CPU plus a shared depot; we model one CPU (loaded + previous) and a depot of
 *   at most MAX_GLOBAL_MAGS magazines (the pre-6.7 bound). Cached ranges stay allocated in the list,
 *   as in the kernel, so they still count against free space until the cache is flushed.
 */
import { COUNTER, fail, formatHex, isPowerOfTwo, Metrics } from '../core/index.ts';

export const IOVA_RANGE_CACHE_MAX_SIZE = 6;
export const IOVA_MAG_SIZE = 127;
export const MAX_GLOBAL_MAGS = 32;
/** The anchor node's pfn (IOVA_ANCHOR, ~0UL): above every range, where a fresh domain's search starts. */
const ANCHOR = Number.POSITIVE_INFINITY;

export interface IovaRange {
  readonly pfnLo: number;
  readonly pfnHi: number;
  readonly reserved: boolean;
}

export interface FreeExtent {
  readonly pfnLo: number;
  /** Length in granule pages (0 when nothing is free). */
  readonly pages: number;
}

export interface IovaDomainOptions {
  /** Allocation unit in bytes, a power of two (init_iova_domain's granule). */
  readonly granule?: bigint;
  /** Lowest pfn ever handed out (dma-iommu uses the aperture start, at least 1). */
  readonly startPfn?: number;
  /** Highest pfn of the space, for largestFreeExtent and the default limit. */
  readonly lastPfn?: number;
  readonly metrics?: Metrics;
}

interface RcacheOrder {
  loaded: number[];
  prev: number[];
  depot: number[][];
}

function upperPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

function orderOf(pages: number): number {
  return Math.log2(upperPow2(pages));
}

export class IovaDomain {
  readonly granule: bigint;
  readonly granuleShift: bigint;
  readonly startPfn: number;
  readonly lastPfn: number;
  readonly metrics: Metrics;
  private readonly lo: number[] = [];
  private readonly hi: number[] = [];
  private readonly reservedFlag: boolean[] = [];
  private readonly rcache: RcacheOrder[] = [];
  /** First pfns of the ranges the rcache holds: a second free of one is a double free. */
  private readonly cachedPfns = new Set<number>();
  /** dma_32bit_pfn: the first pfn at 4 GiB. */
  private readonly dma32Pfn: number;
  /** cached_node / cached32_node, by their pfn_lo (ANCHOR for the anchor). */
  private cachedNodeLo = ANCHOR;
  private cached32NodeLo = ANCHOR;
  /** max32_alloc_size: the size of the last failed allocation, until a free below 4 GiB. */
  private max32AllocSize: number;

  constructor(options: IovaDomainOptions = {}) {
    this.granule = options.granule ?? 4096n;
    if (!isPowerOfTwo(this.granule))
      fail('EINVAL', `IOVA granule ${formatHex(this.granule)} is not a power of two`);
    this.granuleShift = BigInt(this.granule.toString(2).length - 1);
    this.startPfn = options.startPfn ?? 1;
    this.lastPfn = options.lastPfn ?? Number((((1n << 64n) - 1n) >> this.granuleShift) & ((1n << 52n) - 1n));
    if (this.startPfn < 0 || this.lastPfn < this.startPfn) {
      fail('EINVAL', `IOVA domain pfn range ${this.startPfn}..${this.lastPfn} is empty`);
    }
    this.metrics = options.metrics ?? new Metrics();
    this.dma32Pfn = Number(1n << (32n - this.granuleShift));
    this.max32AllocSize = this.dma32Pfn;
    for (let order = 0; order < IOVA_RANGE_CACHE_MAX_SIZE; order++) {
      this.rcache.push({ loaded: [], prev: [], depot: [] });
    }
  }

  /** The pfn of an IOVA (iova_pfn). */
  pfnOf(iova: bigint): number {
    return Number(iova >> this.granuleShift);
  }

  /** The IOVA of a pfn. */
  addressOf(pfn: number): bigint {
    return BigInt(pfn) << this.granuleShift;
  }

  /**
   * alloc_iova: `pages` granule pages ending at or below `limitPfn`, top-down; ENOMEM when no gap
   * fits. Returns the first pfn.
   */
  allocIova(pages: number, limitPfn: number = this.lastPfn, sizeAligned = false): number {
    if (!Number.isSafeInteger(pages) || pages <= 0) fail('EINVAL', `IOVA allocation of ${pages} pages`);
    // __alloc_and_insert_iova_range (drivers/iommu/iova.c) works with an exclusive limit.
    const limit = Math.min(limitPfn, this.lastPfn) + 1;
    const align = sizeAligned ? upperPow2(pages) : 1;
    const failed = (): never =>
      fail(
        'ENOMEM',
        `no free IOVA range of ${pages} pages${sizeAligned ? ' (size-aligned)' : ''} at or below pfn ${formatHex(BigInt(limit - 1))}`,
      );
    if (limit <= this.dma32Pfn && pages >= this.max32AllocSize) failed();
    const n = this.lo.length;
    const loAt = (i: number) => (i === n ? ANCHOR : this.lo[i]!);
    const hiAt = (i: number) => (i === n ? ANCHOR : this.hi[i]!);
    let curr = this.nodeIndex(limit <= this.dma32Pfn ? this.cached32NodeLo : this.cachedNodeLo);
    const retryPfn = hiAt(curr);
    let high = limit;
    let low = this.startPfn;
    let prev: number;
    let pfn: number;
    for (;;) {
      // Walk down from the start node while the candidate overlaps the node below.
      do {
        high = Math.min(high, loAt(curr));
        pfn = Math.floor((high - pages) / align) * align;
        prev = curr;
        curr--;
      } while (curr >= 0 && pfn <= hiAt(curr) && pfn >= low);
      if (high >= pages && pfn >= low) break;
      // Reached the bottom: once, search the part between the cached node and the limit.
      if (low === this.startPfn && retryPfn < limit) {
        high = limit;
        low = retryPfn + 1;
        curr = this.findLimit(limit);
        continue;
      }
      this.max32AllocSize = pages;
      failed();
    }
    this.insertAt(prev, pfn, pfn + pages - 1, false);
    if (pfn + pages - 1 < this.dma32Pfn) this.cached32NodeLo = pfn;
    else this.cachedNodeLo = pfn;
    this.metrics.add(COUNTER.iovaAllocations);
    return pfn;
  }

  /** The index of the node starting at `lo` (the anchor is one past the last range). */
  private nodeIndex(lo: number): number {
    if (lo === ANCHOR) return this.lo.length;
    const i = this.lastIndexAtOrBelow(lo);
    return i >= 0 && this.lo[i] === lo ? i : this.lo.length;
  }

  /** iova_find_limit: where the retry starts, the first range reaching the limit (or the anchor). */
  private findLimit(limit: number): number {
    if (limit > this.dma32Pfn) return this.lo.length;
    let i = this.lastIndexAtOrBelow(limit);
    if (i < 0 || this.hi[i]! < limit) i++;
    return i;
  }

  /**
   * remove_iova: the range at index i leaves the tree; a cached node at or below it moves to the
   * next range up (__cached_rbnode_delete_update), and a free below 4 GiB lifts the 32-bit failure.
   */
  private removeNode(i: number): void {
    const lo = this.lo[i]!;
    const hi = this.hi[i]!;
    const next = i + 1 < this.lo.length ? this.lo[i + 1]! : ANCHOR;
    if (lo === this.cached32NodeLo || (hi < this.dma32Pfn && lo >= this.cached32NodeLo)) {
      this.cached32NodeLo = next;
    }
    if (lo < this.dma32Pfn) this.max32AllocSize = this.dma32Pfn;
    if (lo >= this.cachedNodeLo) this.cachedNodeLo = next;
    this.removeAt(i);
  }

  /** free_iova: releases the allocated range containing `pfn`; ENOENT if none, EBUSY if reserved. */
  freeIova(pfn: number): void {
    const i = this.indexContaining(pfn);
    if (i < 0) fail('ENOENT', `no IOVA allocation contains pfn ${formatHex(BigInt(pfn))}`);
    if (this.reservedFlag[i]) fail('EBUSY', `pfn ${formatHex(BigInt(pfn))} is in a reserved IOVA range`);
    if (this.cachedPfns.has(this.lo[i]!)) this.doubleFree(this.lo[i]!);
    this.removeNode(i);
    this.metrics.add(COUNTER.iovaFrees);
  }

  /** find_iova: the range containing `pfn`. */
  findIova(pfn: number): IovaRange | undefined {
    const i = this.indexContaining(pfn);
    return i < 0 ? undefined : { pfnLo: this.lo[i]!, pfnHi: this.hi[i]!, reserved: this.reservedFlag[i]! };
  }

  /**
   * reserve_iova: makes `[pfnLo, pfnHi]` unavailable for good. As the kernel does, walking up from
   * the first range it overlaps, each overlapped reserved range grows down to take the part of the
   * request below it, the rest goes on above it, and what is left above the last one becomes a new
   * range; touching ranges stay apart (so findIova and ranges() show the kernel's nodes, and a
   * cached node that grows keeps its place). Reserving over a live allocation is refused (EBUSY)
   * where the kernel would silently grow the allocation.
   */
  reserveIova(pfnLo: number, pfnHi: number): void {
    if (pfnHi < pfnLo) fail('EINVAL', `reserve of empty pfn range ${pfnLo}..${pfnHi}`);
    let i = this.lastIndexAtOrBelow(pfnLo);
    if (i < 0 || this.hi[i]! < pfnLo) i++;
    for (let j = i; j < this.lo.length && this.lo[j]! <= pfnHi; j++) {
      if (!this.reservedFlag[j]) {
        fail(
          'EBUSY',
          `cannot reserve pfns ${formatHex(BigInt(pfnLo))}..${formatHex(BigInt(pfnHi))}: the allocation at ${formatHex(BigInt(this.lo[j]!))} overlaps`,
        );
      }
    }
    // __adjust_overlap_range (drivers/iommu/iova.c): i is the first range reaching pfnLo.
    let lo = pfnLo;
    for (; i < this.lo.length && this.lo[i]! <= pfnHi; i++) {
      if (lo < this.lo[i]!) this.growDown(i, lo);
      if (pfnHi <= this.hi[i]!) return;
      lo = this.hi[i]! + 1;
    }
    this.insertAt(i, lo, pfnHi, true);
  }

  /** The range at index i now starts at `lo`; a cached node pointing at it follows it. */
  private growDown(i: number, lo: number): void {
    const old = this.lo[i]!;
    if (this.cached32NodeLo === old) this.cached32NodeLo = lo;
    if (this.cachedNodeLo === old) this.cachedNodeLo = lo;
    this.lo[i] = lo;
  }

  /** reserve_iova by byte addresses `[start, last]` (rounded out to whole granules). */
  reserveRange(start: bigint, last: bigint): void {
    this.reserveIova(this.pfnOf(start), this.pfnOf(last));
  }

  // --- the rcache ------------------------------------------------------------------------------

  /**
   * alloc_iova_fast: a cached range of the rounded size if one lies below the limit, else a
   * size-aligned allocation; on failure with `flushRcache`, empties every cache and tries again.
   */
  allocIovaFast(pages: number, limitPfn: number = this.lastPfn, flushRcache = true): number {
    const size = pages < 1 << (IOVA_RANGE_CACHE_MAX_SIZE - 1) ? upperPow2(pages) : pages;
    const cached = this.rcacheGet(size, limitPfn);
    if (cached !== undefined) {
      this.metrics.add('iommu.iova_rcache_hits');
      this.metrics.add(COUNTER.iovaAllocations);
      return cached;
    }
    this.metrics.add('iommu.iova_rcache_misses');
    try {
      return this.allocIova(size, limitPfn, true);
    } catch (error) {
      if (!flushRcache) throw error;
      this.flushRcaches();
      return this.allocIova(size, limitPfn, true);
    }
  }

  /** free_iova_fast: into the cache of its order when it has room, else straight back to the list. */
  freeIovaFast(pfn: number, pages: number): void {
    // The kernel trusts the caller and only WARNs when a flush finds a cached pfn gone
    // (iova_magazine_free_pfns); here a free of something not allocated, or already cached, is
    // refused before it can make a later flush delete another range.
    const i = this.indexContaining(pfn);
    if (i < 0 || this.lo[i] !== pfn) {
      fail('ENOENT', `free_iova_fast of pfn ${formatHex(BigInt(pfn))}: no IOVA allocation starts there`);
    }
    if (this.reservedFlag[i]) fail('EBUSY', `pfn ${formatHex(BigInt(pfn))} is in a reserved IOVA range`);
    if (this.cachedPfns.has(pfn)) this.doubleFree(pfn);
    const size = pages < 1 << (IOVA_RANGE_CACHE_MAX_SIZE - 1) ? upperPow2(pages) : pages;
    const order = orderOf(size);
    if (order < IOVA_RANGE_CACHE_MAX_SIZE && upperPow2(size) === size && this.rcacheInsert(order, pfn)) {
      this.metrics.add(COUNTER.iovaFrees);
      return;
    }
    this.freeIova(pfn);
  }

  /** Returns every cached range to the list (free_cpu_cached_iovas + free_global_cached_iovas). */
  flushRcaches(): void {
    for (const cache of this.rcache) {
      for (const mag of [cache.loaded, cache.prev, ...cache.depot]) {
        for (const pfn of mag) this.removeCached(pfn);
      }
      cache.loaded = [];
      cache.prev = [];
      cache.depot = [];
    }
  }

  /** Ranges held by the rcache, by order. */
  cachedCounts(): number[] {
    return this.rcache.map(
      (c) => c.loaded.length + c.prev.length + c.depot.reduce((n, m) => n + m.length, 0),
    );
  }

  private rcacheInsert(order: number, pfn: number): boolean {
    const cache = this.rcache[order]!;
    this.cachedPfns.add(pfn);
    if (cache.loaded.length < IOVA_MAG_SIZE) {
      cache.loaded.push(pfn);
      return true;
    }
    if (cache.prev.length < IOVA_MAG_SIZE) {
      [cache.loaded, cache.prev] = [cache.prev, cache.loaded];
      cache.loaded.push(pfn);
      return true;
    }
    if (cache.depot.length < MAX_GLOBAL_MAGS) {
      cache.depot.push(cache.loaded);
      cache.loaded = [pfn];
      return true;
    }
    // Depot full: the loaded magazine's ranges go back to the list (iova_magazine_free_pfns).
    for (const cachedPfn of cache.loaded) this.removeCached(cachedPfn);
    cache.loaded = [pfn];
    return true;
  }

  private rcacheGet(size: number, limitPfn: number): number | undefined {
    const order = orderOf(size);
    if (order >= IOVA_RANGE_CACHE_MAX_SIZE || upperPow2(size) !== size) return undefined;
    const cache = this.rcache[order]!;
    if (cache.loaded.length === 0) {
      if (cache.prev.length > 0) [cache.loaded, cache.prev] = [cache.prev, cache.loaded];
      else if (cache.depot.length > 0) cache.loaded = cache.depot.pop()!;
      else return undefined;
    }
    // iova_magazine_pop (iova.c): the most recent entry that ends at or below the limit; the last
    // entry then moves into its slot (mag->pfns[i] = mag->pfns[--mag->size]), so the magazine's
    // order changes and a later pop may return a different pfn than an ordered removal would.
    const mag = cache.loaded;
    for (let i = mag.length - 1; i >= 0; i--) {
      const pfn = mag[i]!;
      if (pfn + size - 1 <= limitPfn) {
        mag[i] = mag[mag.length - 1]!;
        mag.length--;
        this.cachedPfns.delete(pfn);
        return pfn;
      }
    }
    return undefined;
  }

  /** A cached range goes back to the list (iova_magazine_free_pfns). */
  private removeCached(pfn: number): void {
    this.cachedPfns.delete(pfn);
    const i = this.indexContaining(pfn);
    // Unreachable while frees are checked; never splice(-1), which would drop the last range.
    if (i < 0 || this.lo[i] !== pfn)
      fail('EFAULT', `rcache holds pfn ${formatHex(BigInt(pfn))}, which is not allocated`);
    this.removeNode(i);
  }

  private doubleFree(pfn: number): never {
    fail('EINVAL', `double free of IOVA pfn ${formatHex(BigInt(pfn))}: it is already in the rcache`);
  }

  // --- inspection ------------------------------------------------------------------------------

  /** The largest free run of pages in `[startPfn, min(limitPfn, lastPfn)]`: fragmentation made visible. */
  largestFreeExtent(limitPfn: number = this.lastPfn): FreeExtent {
    const limit = Math.min(limitPfn, this.lastPfn);
    let best: FreeExtent = { pfnLo: this.startPfn, pages: 0 };
    let cursor = this.startPfn;
    for (let i = 0; i < this.lo.length && cursor <= limit; i++) {
      const gapEnd = Math.min(this.lo[i]! - 1, limit);
      if (gapEnd >= cursor && gapEnd - cursor + 1 > best.pages)
        best = { pfnLo: cursor, pages: gapEnd - cursor + 1 };
      cursor = Math.max(cursor, this.hi[i]! + 1);
    }
    if (cursor <= limit && limit - cursor + 1 > best.pages)
      best = { pfnLo: cursor, pages: limit - cursor + 1 };
    return best;
  }

  /** Every range in the list, ascending. */
  ranges(): IovaRange[] {
    return this.lo.map((lo, i) => ({ pfnLo: lo, pfnHi: this.hi[i]!, reserved: this.reservedFlag[i]! }));
  }

  private lastIndexAtOrBelow(pfn: number): number {
    let a = 0;
    let b = this.lo.length;
    while (a < b) {
      const m = (a + b) >>> 1;
      if (this.lo[m]! <= pfn) a = m + 1;
      else b = m;
    }
    return a - 1;
  }

  private indexContaining(pfn: number): number {
    const i = this.lastIndexAtOrBelow(pfn);
    return i >= 0 && this.hi[i]! >= pfn ? i : -1;
  }

  private insertAt(i: number, lo: number, hi: number, reserved: boolean): void {
    this.lo.splice(i, 0, lo);
    this.hi.splice(i, 0, hi);
    this.reservedFlag.splice(i, 0, reserved);
  }

  private removeAt(i: number): void {
    this.lo.splice(i, 1);
    this.hi.splice(i, 1);
    this.reservedFlag.splice(i, 1);
  }
}
