/**
 * The machine-wide memory-management state the address spaces share: the folio allocator, the
 * hugetlb pools (huge folios reserved up front, as hugepages= on the command line or
 * /proc/sys/vm/nr_hugepages does), page-cache files and the anonymous THP orders enabled.
 */
import { fail, formatSize, type Metrics } from '../core/index.ts';
import type { ByteStore, Folio, FolioAllocator } from '../platform/index.ts';
import type { PageCacheFile } from './vma.ts';

/** Huge page orders hugetlbfs offers on x86-64 with 4K base pages. */
export const HUGETLB_ORDER_2M = 9;
export const HUGETLB_ORDER_1G = 18;

export interface MemorySystemOptions {
  /**
   * Anonymous folio orders tried on a fault, largest first (order 0 is always the last resort).
   * Default [9]: PMD-sized THP "always", no mTHP sizes (the kernel's defaults with THP enabled).
   * [9, 4, 2] models mTHP 64K and 16K enabled in /sys/kernel/mm/transparent_hugepage/hugepages-*.
   */
  readonly anonOrders?: readonly number[];
  /** Where the bytes live: page copies (COW) go through it when given. */
  readonly bytes?: ByteStore;
  readonly metrics?: Metrics;
  /**
   * Page-frame ranges [startPfn, endPfn) that are ZONE_MOVABLE (movablecore=) or CMA: a folio there
   * is not long-term pinnable (folio_is_longterm_pinnable) and a FOLL_LONGTERM pin migrates it first.
   */
  readonly movablePfns?: readonly { readonly startPfn: bigint; readonly endPfn: bigint }[];
}

/** A hugetlb pool of one size: free huge folios and how many are promised to mappings. */
export interface HugetlbPoolState {
  readonly order: number;
  readonly total: number;
  readonly free: number;
  readonly reserved: number;
}

class HugetlbPool {
  readonly folios: Folio[] = [];
  /** Folios not mapped anywhere (they may still be pinned after a munmap; see take()). */
  readonly freeList: Folio[] = [];
  reserved = 0;
  constructor(readonly order: number) {}
}

export class MemorySystem {
  readonly allocator: FolioAllocator;
  readonly anonOrders: readonly number[];
  readonly bytes: ByteStore | undefined;
  readonly metrics: Metrics | undefined;
  private readonly pools = new Map<number, HugetlbPool>();
  private readonly hugeFolios = new WeakSet<Folio>();
  private zero: Folio | undefined;
  private readonly movable: readonly { readonly startPfn: bigint; readonly endPfn: bigint }[];

  constructor(allocator: FolioAllocator, options: MemorySystemOptions = {}) {
    this.allocator = allocator;
    const orders = [...(options.anonOrders ?? [HUGETLB_ORDER_2M])].filter((o) => o > 0);
    for (const order of orders) {
      if (!Number.isInteger(order) || order > allocator.maxOrder) {
        fail('EINVAL', `anonymous folio order ${order} is outside 1..${allocator.maxOrder}`);
      }
    }
    this.anonOrders = [...new Set(orders)].sort((a, b) => b - a);
    this.bytes = options.bytes;
    this.metrics = options.metrics;
    this.movable = options.movablePfns ?? [];
  }

  /** folio_is_longterm_pinnable: false for a folio in ZONE_MOVABLE or a CMA range. */
  isLongtermPinnable(folio: Folio): boolean {
    return this.pinnableFrames(folio.pfn, 1n << BigInt(folio.order));
  }

  /** Whether none of the frames [pfn, pfn + count) is in ZONE_MOVABLE or CMA. */
  pinnableFrames(pfn: bigint, count: bigint): boolean {
    const end = pfn + count;
    return !this.movable.some((r) => pfn < r.endPfn && end > r.startPfn);
  }

  /**
   * alloc_migration_target under memalloc_pin_save: a folio of `order` outside ZONE_MOVABLE and CMA
   * (the allocation loses __GFP_MOVABLE). Folios the allocator offers inside those ranges are held
   * aside and given back once one outside is found. ENOMEM when there is none.
   */
  allocPinnable(order: number): Folio {
    const aside: Folio[] = [];
    try {
      for (;;) {
        const folio = this.allocator.allocFolio(order);
        if (this.isLongtermPinnable(folio)) return folio;
        aside.push(folio);
      }
    } finally {
      for (const folio of aside) this.allocator.freeFolio(folio);
    }
  }

  /**
   * Reserves `count` huge folios of `order` for hugetlbfs (all or nothing: ENOMEM gives back what
   * was taken). Returns the pool's new total.
   */
  reserveHugetlb(order: number, count: number): number {
    if (order !== HUGETLB_ORDER_2M && order !== HUGETLB_ORDER_1G) {
      fail('EINVAL', `hugetlb order ${order} is neither 2M (9) nor 1G (18)`);
    }
    if (!Number.isInteger(count) || count < 0) fail('EINVAL', `hugetlb page count ${count} is not a count`);
    const taken: Folio[] = [];
    try {
      for (let i = 0; i < count; i++) taken.push(this.allocator.allocFolio(order));
    } catch (error) {
      for (const folio of taken) this.allocator.freeFolio(folio);
      throw error;
    }
    const pool = this.poolOf(order);
    for (const folio of taken) this.hugeFolios.add(folio);
    pool.folios.push(...taken);
    pool.freeList.push(...taken);
    return pool.folios.length;
  }

  hugetlbPool(order: number): HugetlbPoolState {
    const pool = this.poolOf(order);
    return { order, total: pool.folios.length, free: pool.freeList.length, reserved: pool.reserved };
  }

  /** hugetlb_reserve_pages at mmap time: ENOMEM when the pool cannot back the whole mapping. */
  reserveHugePages(order: number, count: number): void {
    const pool = this.poolOf(order);
    if (pool.freeList.length - pool.reserved < count) {
      fail(
        'ENOMEM',
        `hugetlb pool of ${formatSize(4096n << BigInt(order))} pages has ${pool.freeList.length - pool.reserved} unreserved, mapping needs ${count}`,
      );
    }
    pool.reserved += count;
  }

  unreserveHugePages(order: number, count: number): void {
    const pool = this.poolOf(order);
    pool.reserved = Math.max(0, pool.reserved - count);
  }

  /**
   * A reserved huge folio for a fault; the mapping takes a reference (the pool keeps the
   * allocation's). A folio still pinned after an munmap is skipped until it is unpinned.
   */
  takeHugeFolio(order: number): Folio {
    const pool = this.poolOf(order);
    const index = pool.freeList.findIndex((f) => f.refcount === 1);
    if (index < 0) fail('ENOMEM', `hugetlb pool of order ${order} has no free huge page`);
    const [folio] = pool.freeList.splice(index, 1);
    pool.reserved = Math.max(0, pool.reserved - 1);
    this.allocator.getFolio(folio!);
    return folio!;
  }

  /** The mapping's reference goes; the folio returns to the pool's free list. */
  returnHugeFolio(folio: Folio): void {
    this.allocator.putFolio(folio);
    this.poolOf(folio.order).freeList.push(folio);
  }

  /** Whether `folio` belongs to a hugetlb pool. */
  ownsHugeFolio(folio: Folio): boolean {
    return this.hugeFolios.has(folio);
  }

  /** A page-cache file of `size` bytes. */
  createFile(
    name: string,
    size: bigint,
    options: { needsDirtyTracking?: boolean; maxFolioOrder?: number } = {},
  ): PageCacheFile {
    if (size <= 0n) fail('EINVAL', `file ${name} size ${size} must be positive`);
    const maxFolioOrder = options.maxFolioOrder ?? 0;
    if (!Number.isInteger(maxFolioOrder) || maxFolioOrder < 0 || maxFolioOrder > this.allocator.maxOrder) {
      fail('EINVAL', `page-cache folio order ${maxFolioOrder} is out of range`);
    }
    return {
      name,
      size,
      needsDirtyTracking: options.needsDirtyTracking ?? true,
      maxFolioOrder,
      cache: new Map(),
    };
  }

  /**
   * The page-cache folio holding file page `index` (filemap_get_folio, allocating on a miss as
   * page_cache_ra_order does: the largest order ≤ maxFolioOrder aligned at index and inside i_size
   * whose slots are all empty, falling back to smaller orders). Returns the folio and its first index.
   */
  pageCacheFolio(file: PageCacheFile, index: number): { folio: Folio; first: number } {
    const filePages = Number((file.size + 4095n) >> 12n);
    if (index < 0 || index >= filePages) fail('EFAULT', `page ${index} of ${file.name} is beyond EOF`);
    for (let order = 0; order <= file.maxFolioOrder; order++) {
      const first = index - (index % 2 ** order);
      const folio = file.cache.get(first);
      if (folio !== undefined && folio.order >= order) return { folio, first };
    }
    for (let order = file.maxFolioOrder; order >= 0; order--) {
      const size = 2 ** order;
      const first = index - (index % size);
      if (first + size > filePages || !this.slotsEmpty(file, first, size)) continue;
      const folio = this.tryAlloc(order);
      if (folio === undefined) continue;
      file.cache.set(first, folio);
      return { folio, first };
    }
    fail('ENOMEM', `no memory for page ${index} of ${file.name}`);
  }

  /** Drops every page-cache folio of `file` that nothing else references (truncate / drop_caches). */
  dropPageCache(file: PageCacheFile): number {
    let dropped = 0;
    for (const [index, folio] of file.cache) {
      if (folio.refcount === 1) {
        this.allocator.putFolio(folio);
        file.cache.delete(index);
        dropped++;
      }
    }
    return dropped;
  }

  /**
   * The shared zero page (empty_zero_page), which read faults of anonymous memory map
   * (do_anonymous_page). The kernel's lives in its image; here it is taken from the allocator on
   * first use, zero filled, and never freed, pinned or counted by mappings.
   */
  zeroFolio(): Folio {
    if (this.zero === undefined) {
      this.zero = this.allocator.allocFolio(0);
      this.bytes?.fill(this.zero.pfn << 12n, 4096, 0);
    }
    return this.zero;
  }

  /** is_zero_pfn. */
  isZeroPfn(pfn: bigint | number): boolean {
    return this.zero !== undefined && BigInt(pfn) === this.zero.pfn;
  }

  /** One folio of `order`, or undefined when the allocator has no block that large. */
  tryAlloc(order: number): Folio | undefined {
    try {
      return this.allocator.allocFolio(order);
    } catch (error) {
      if (order === 0) throw error;
      this.metrics?.add('mm.folio_fallbacks');
      return undefined;
    }
  }

  /** folio_mark_dirty (PG_dirty lives with the folio's state in the allocator, as in struct page). */
  markDirty(folio: Folio): void {
    this.allocator.setDirty(folio, true);
  }

  /** folio_test_dirty. */
  isDirty(folio: Folio): boolean {
    return this.allocator.isDirty(folio);
  }

  /** Writeback cleaned it. */
  clearDirty(folio: Folio): void {
    this.allocator.setDirty(folio, false);
  }

  private slotsEmpty(file: PageCacheFile, first: number, size: number): boolean {
    for (const [index, folio] of file.cache) {
      const last = index + 2 ** folio.order;
      if (index < first + size && last > first) return false;
    }
    return true;
  }

  private poolOf(order: number): HugetlbPool {
    let pool = this.pools.get(order);
    if (pool === undefined) {
      pool = new HugetlbPool(order);
      this.pools.set(order, pool);
    }
    return pool;
  }
}
