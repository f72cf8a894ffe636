/**
 * A buddy allocator over the RAM regions of a memory map, handing out folios (naturally aligned
 * power-of-two runs of pages) the way mm/page_alloc.c does: per-node free lists per order, take the
 * smallest free block that fits and split it, keeping the low half and returning the high halves to
 * the free lists (expand()); on free, merge with the buddy while the buddy is free at the same order
 * (__free_one_page()).
 *
 * Free-list order follows the kernel, because it decides how physically contiguous consecutive
 * allocations come out (and so how few ranges a later pin_user_pages gives): allocation takes the
 * head of the list (__rmqueue_smallest / get_page_from_free_area); expand() puts the split-off high
 * halves at the head, so the next small allocations continue right after this one; boot-time memory
 * is freed to the tail (FPI_TO_TAIL from memblock_free_all), lowest address first; a freed block goes
 * to the tail when its merged buddy is likely to become free soon (buddy_merge_likely), else the head.
 *
 * Orders go up to 18 (1 GiB) by default. The real buddy stops at MAX_PAGE_ORDER (10 on x86-64) and
 * 1 GiB folios come from hugetlb/CMA's contiguous allocator; one allocator with a higher top order
 * models both, and `maxOrder` can be set to 10 to get the stock buddy.
 *
 * PFNs are kept as Numbers inside (a 64-bit physical address has a PFN below 2^52, exact in a double)
 * and exposed as bigints.
 *
 * Invariants: every free block and every live folio is aligned to its order, lies in one RAM region,
 * and none share a page; freePages + allocatedPages = totalPages.
 */
import { fail, formatHex, type Metrics, SeededRandom } from '../core/index.ts';
import { BasePageMap, CHUNK_PAGES, PAGE_DIRTY } from './base-page-map.ts';
import { FreeBlockTable } from './free-block-table.ts';
import { type MemoryMap, PFN_SHIFT, pfnDown, pfnUp } from './memory-map.ts';

/** Biggest order modelled by default: 2^18 pages = 1 GiB. */
export const FOLIO_MAX_ORDER = 18;
/** pageblock_order on x86-64 (2 MiB): the unit fragmentation is measured in. */
export const PAGEBLOCK_ORDER = 9;
/** One FOLL_PIN on a folio without a _pincount field adds this many references (include/linux/mm.h). */
export const GUP_PIN_COUNTING_BIAS = 1024;

export interface Folio {
  /** PFN of the head page. */
  readonly pfn: bigint;
  readonly order: number;
  readonly node: number;
  /** struct folio _refcount: 1 for the allocation itself, +1 per get, +1 or +bias per pin. */
  readonly refcount: number;
  /** Pins held (exact here; the kernel keeps _pincount only for large folios). */
  readonly pincount: number;
}

type MutableFolio = { -readonly [K in keyof Folio]: Folio[K] } & { readonly head: number; dirty: boolean };

/** What {@link FolioAllocator.applyBasePages} does to each page of a run. */
const BaseOp = { Get: 0, Put: 1, Pin: 2, Unpin: 3, Dirty: 4, DirtyUnpin: 5 } as const;
type BaseOp = (typeof BaseOp)[keyof typeof BaseOp];

function checkRefs(refs: number, what: 'pin' | 'unpin'): void {
  if (!Number.isInteger(refs) || refs <= 0)
    fail('EINVAL', `${what} count ${refs} must be a positive integer`);
}

/** A run of physically consecutive base pages (order-0 folios): `pages` frames from `pfn`. */
export interface BaseRun {
  readonly pfn: number;
  readonly pages: number;
}

/**
 * The Folio view of one base page kept in the memmap (see {@link FolioAllocator.allocBasePages}):
 * its fields read the memmap, so it stays light. The allocator hands out one handle per live page
 * (the same object each time it is asked), and a freed page's handle reads as refcount 0.
 */
class BasePage implements Folio {
  readonly order = 0;
  readonly pfn: bigint;

  constructor(
    readonly head: number,
    readonly node: number,
    private readonly map: BasePageMap,
    private readonly handles: Map<number, BasePage>,
  ) {
    this.pfn = BigInt(head);
  }

  get refcount(): number {
    return this.live() ? this.map.chunkOf(this.head)!.refcount[this.head % CHUNK_PAGES]! : 0;
  }

  get pincount(): number {
    return this.live() ? this.map.chunkOf(this.head)!.pincount[this.head % CHUNK_PAGES]! : 0;
  }

  /** folio_test_dirty (false once the page was freed). */
  get dirty(): boolean {
    return this.live() && (this.map.chunkOf(this.head)!.flags[this.head % CHUNK_PAGES]! & PAGE_DIRTY) !== 0;
  }

  /** Still the live page's handle: freeing a page drops its handle, and a new one is made for a reuse. */
  private live(): boolean {
    return this.handles.get(this.head) === this;
  }
}

export interface FreeBlock {
  readonly pfn: bigint;
  readonly order: number;
  readonly node: number;
}

export interface BuddyInfo {
  readonly node: number;
  /** Free blocks per order, index = order (the columns of /proc/buddyinfo). */
  readonly free: readonly number[];
}

export interface AllocOptions {
  /** Preferred NUMA node; other nodes are tried after it unless `thisNode` (__GFP_THISNODE). */
  readonly node?: number;
  readonly thisNode?: boolean;
}

export interface AllocPagesOptions extends AllocOptions {
  /** Largest folio order to try first (9 = a THP, 0 = base pages). */
  readonly preferredOrder?: number;
}

export interface FragmentOptions {
  /** Fraction (0..1) of free pageblocks that get one small unmovable allocation placed in them. */
  readonly fraction: number;
  /** Size of the unit poisoned; default PAGEBLOCK_ORDER (2 MiB). */
  readonly pageblockOrder?: number;
  /** Largest order of the scattered allocations; default 3. */
  readonly maxScatterOrder?: number;
}

export interface FragmentResult {
  /** The scattered folios, so a caller can free them later. */
  readonly folios: readonly Folio[];
  readonly pageblocksSeen: number;
  readonly pageblocksHit: number;
}

/** folio_maybe_dma_pinned(): exact for large folios, the refcount-bias guess for small ones. */
export function folioMaybeDmaPinned(folio: Folio): boolean {
  if (folio.order > 0) return folio.pincount > 0;
  return folio.refcount >= GUP_PIN_COUNTING_BIAS;
}

export function folioBytes(folio: { readonly order: number }): bigint {
  return 1n << (BigInt(folio.order) + PFN_SHIFT);
}

export function folioPhys(folio: { readonly pfn: bigint }): bigint {
  return folio.pfn << PFN_SHIFT;
}

interface RamSpan {
  readonly startPfn: number;
  /** Exclusive end. */
  readonly endPfn: number;
  readonly node: number;
}

/**
 * One free list (struct free_area's list for an order): block slots of the allocator's
 * {@link FreeBlockTable} in list order, linked through the table, with O(1) insert at either end,
 * removal from anywhere (a buddy taken out to merge) and the head.
 */
class FreeList {
  private headSlot = -1;
  private tailSlot = -1;
  size = 0;

  constructor(private readonly table: FreeBlockTable) {}

  get first(): number | undefined {
    return this.headSlot === -1 ? undefined : this.table.head[this.headSlot];
  }

  pushHead(slot: number): void {
    const { prev, next } = this.table;
    next[slot] = this.headSlot;
    if (this.headSlot === -1) this.tailSlot = slot;
    else prev[this.headSlot] = slot;
    this.headSlot = slot;
    this.size++;
  }

  pushTail(slot: number): void {
    const { prev, next } = this.table;
    prev[slot] = this.tailSlot;
    if (this.tailSlot === -1) this.headSlot = slot;
    else next[this.tailSlot] = slot;
    this.tailSlot = slot;
    this.size++;
  }

  /** Unlinks a block that is on this list. */
  delete(slot: number): void {
    const { prev, next } = this.table;
    const before = prev[slot]!;
    const after = next[slot]!;
    if (before === -1) this.headSlot = after;
    else next[before] = after;
    if (after === -1) this.tailSlot = before;
    else prev[after] = before;
    this.size--;
  }

  *[Symbol.iterator](): Generator<number> {
    for (let slot = this.headSlot; slot !== -1; slot = this.table.next[slot]!) yield this.table.head[slot]!;
  }
}

export class FolioAllocator {
  readonly maxOrder: number;
  private readonly spans: RamSpan[];
  private readonly nodeList: number[];
  /** node → order → free block heads, in the kernel's list order (allocation takes the head). */
  private readonly freeLists = new Map<number, FreeList[]>();
  /** Every free block by head pfn, with its order and list links (PageBuddy + buddy_order). */
  private readonly freeTable = new FreeBlockTable();
  private readonly folios = new Map<number, MutableFolio>();
  /** Base pages allocated in bulk: their state lives in the memmap, not in objects. */
  private readonly memmap = new BasePageMap();
  /** The handle of each memmap page a caller asked for as a Folio (dropped when the page is freed). */
  private readonly handles = new Map<number, BasePage>();
  private readonly metrics: Metrics | undefined;
  private free = 0;
  private allocated = 0;
  readonly totalPages: number;

  constructor(map: MemoryMap, options: { maxOrder?: number; metrics?: Metrics } = {}) {
    const maxOrder = options.maxOrder ?? FOLIO_MAX_ORDER;
    if (!Number.isInteger(maxOrder) || maxOrder < 0 || maxOrder > 30) {
      fail('EINVAL', `maxOrder ${maxOrder} must be an integer in 0..30`);
    }
    this.maxOrder = maxOrder;
    this.metrics = options.metrics;
    this.spans = [];
    for (const region of map.byKind('ram')) {
      // Only whole pages are usable (memblock rounds partial pages away).
      const startPfn = Number(pfnUp(region.start));
      const endPfn = Number(pfnDown(region.last + 1n));
      if (endPfn > startPfn) this.spans.push({ startPfn, endPfn, node: region.node ?? 0 });
    }
    let total = 0;
    for (const span of this.spans) {
      total += span.endPfn - span.startPfn;
      let pfn = span.startPfn;
      while (pfn < span.endPfn) {
        let order = this.maxOrder;
        while (order > 0 && (pfn % 2 ** order !== 0 || pfn + 2 ** order > span.endPfn)) order--;
        this.addFree(pfn, order, span.node, true);
        pfn += 2 ** order;
      }
    }
    this.totalPages = total;
    this.nodeList = [...new Set(this.spans.map((s) => s.node))].sort((a, b) => a - b);
    for (const node of this.nodeList) if (!this.freeLists.has(node)) this.listsOf(node);
  }

  get freePages(): number {
    return this.free;
  }

  get allocatedPages(): number {
    return this.allocated;
  }

  /** NUMA nodes that have RAM, ascending. */
  nodes(): readonly number[] {
    return this.nodeList;
  }

  /**
   * Allocates one folio of `order` (alloc_pages). Tries the preferred node, then the others in
   * ascending order unless `thisNode`. ENOMEM when no free block of that order or larger exists.
   */
  allocFolio(order: number, options: AllocOptions = {}): Folio {
    this.checkOrder(order);
    for (const node of this.nodeOrder(options)) {
      const lists = this.freeLists.get(node)!;
      for (let k = order; k <= this.maxOrder; k++) {
        const head = lists[k]!.first;
        if (head === undefined) continue;
        this.removeFree(head, k, node);
        // expand(): keep the low half, give the high halves back.
        while (k > order) {
          k--;
          this.addFree(head + 2 ** k, k, node);
        }
        return this.makeFolio(head, order, node);
      }
    }
    this.metrics?.add('platform.folio_alloc_failures');
    const where = options.node === undefined ? '' : options.thisNode ? ` on node ${options.node}` : '';
    fail(
      'ENOMEM',
      `no free block of order ${order} (${formatBytes(order)})${where}; ${this.free} pages free`,
    );
  }

  /**
   * Allocates `bytes` (rounded up to pages) as folios of the preferred order, falling back to
   * smaller orders where a large block is not available — what a THP fault gets on a fragmented
   * machine. All or nothing: on ENOMEM every folio taken so far is freed again.
   */
  allocPages(bytes: bigint, options: AllocPagesOptions = {}): Folio[] {
    if (bytes <= 0n) fail('EINVAL', `allocation of ${bytes} bytes must be positive`);
    const preferred = options.preferredOrder ?? 0;
    this.checkOrder(preferred);
    let remaining = Number(pfnUp(bytes));
    const out: Folio[] = [];
    try {
      while (remaining > 0) {
        let order = preferred;
        while (order > 0 && 2 ** order > remaining) order--;
        for (;;) {
          if (this.canAllocate(order, options) || order === 0) break;
          order--;
        }
        const folio = this.allocFolio(order, options);
        out.push(folio);
        remaining -= 2 ** order;
      }
    } catch (error) {
      for (const folio of out) this.freeFolio(folio);
      throw error;
    }
    return out;
  }

  /**
   * Allocates `count` base pages as `count` calls of allocFolio(0, options) would, in the same
   * order and leaving the same free lists (mm/page_alloc.c __rmqueue_smallest + expand): each
   * allocation takes the smallest free block and puts the split-off high halves at the heads of the
   * lists below, which were empty (the block was the smallest), so the following allocations
   * consume the block in address order before anything else is taken. A block is therefore taken
   * whole, or, for the last pages, split once per order with the unused high halves left on their
   * lists. The pages' state goes to the memmap; the result is the runs of consecutive frames, in
   * allocation order. All or nothing: ENOMEM before anything is taken when the nodes allowed hold
   * fewer free pages (the one-by-one calls would fail part way).
   */
  allocBasePages(count: number, options: AllocOptions = {}): BaseRun[] {
    if (!Number.isInteger(count) || count <= 0) fail('EINVAL', `base page count ${count} must be positive`);
    const nodes = this.nodeOrder(options);
    let available = 0;
    for (const node of nodes)
      for (const [k, list] of this.freeLists.get(node)!.entries()) available += list.size * 2 ** k;
    if (available < count) {
      this.metrics?.add('platform.folio_alloc_failures');
      fail(
        'ENOMEM',
        `${count} base pages requested, ${available} free${options.thisNode ? ` on node ${options.node}` : ''}`,
      );
    }
    const runs: { pfn: number; pages: number }[] = [];
    const emit = (pfn: number, pages: number) => {
      this.memmap.add(pfn, pages);
      this.allocated += pages;
      const last = runs[runs.length - 1];
      if (last !== undefined && last.pfn + last.pages === pfn) last.pages += pages;
      else runs.push({ pfn, pages });
    };
    let remaining = count;
    while (remaining > 0) {
      const { node, order } = this.smallestFree(nodes);
      let k = order;
      let head = this.freeLists.get(node)![k]!.first!;
      this.removeFree(head, k, node);
      let take = Math.min(remaining, 2 ** k);
      remaining -= take;
      while (take < 2 ** k) {
        k--;
        const half = 2 ** k;
        if (take <= half) {
          // The high half stays free: expand() put it on list k, which was empty.
          this.addFree(head + half, k, node);
        } else {
          // The low half is consumed whole, then the high half is the next smallest block.
          emit(head, half);
          take -= half;
          head += half;
        }
      }
      emit(head, take);
    }
    this.metrics?.add('platform.folio_allocs', count);
    return runs;
  }

  /** folio_get on each base page of [pfn, pfn + count) (memmap pages, all live). */
  getBasePages(pfn: number, count: number): void {
    this.applyBasePages(BaseOp.Get, pfn, count, 1);
  }

  /**
   * folio_put on each base page of [pfn, pfn + count), in pfn order as one-by-one puts would go;
   * pages whose last reference goes are freed (see {@link releaseBasePages}).
   */
  putBasePages(pfn: number, count: number): void {
    this.applyBasePages(BaseOp.Put, pfn, count, 1);
  }

  /** pinFolio(page, refs) on each base page of [pfn, pfn + count): refs * GUP_PIN_COUNTING_BIAS references each. */
  pinBasePages(pfn: number, count: number, refs = 1): void {
    checkRefs(refs, 'pin');
    this.applyBasePages(BaseOp.Pin, pfn, count, refs);
  }

  /**
   * unpinFolio(page, refs) on each base page of [pfn, pfn + count), marking it dirty first when
   * `dirty` (unpin_user_pages_dirty_lock, in the same pass); the last reference frees the page.
   */
  unpinBasePages(pfn: number, count: number, refs = 1, dirty = false): void {
    checkRefs(refs, 'unpin');
    this.applyBasePages(dirty ? BaseOp.DirtyUnpin : BaseOp.Unpin, pfn, count, refs);
  }

  /**
   * unpinBasePages over the live memmap pages from `pfn` on, at most `max`, stopping (without an
   * error) at the first frame that is not one; returns how many it unpinned (0: `pfn` is not a
   * memmap page, ask folioAt). One pass where a run check and an unpin would be two.
   */
  unpinBasePageRun(pfn: number, max: number, dirty = false): number {
    return this.applyBasePages(dirty ? BaseOp.DirtyUnpin : BaseOp.Unpin, pfn, max, 1, true);
  }

  /** folio_mark_dirty on each base page of [pfn, pfn + count). */
  markBasePagesDirty(pfn: number, count: number): void {
    this.applyBasePages(BaseOp.Dirty, pfn, count, 1);
  }

  /** folio_mark_dirty / folio_test_dirty / clearing by writeback: PG_dirty of a live folio. */
  setDirty(folio: Folio, dirty: boolean): void {
    const live = this.live(folio);
    if (live instanceof BasePage) {
      const chunk = this.memmap.chunkOf(live.head)!;
      const i = live.head % CHUNK_PAGES;
      chunk.flags[i] = dirty ? chunk.flags[i]! | PAGE_DIRTY : chunk.flags[i]! & ~PAGE_DIRTY;
    } else {
      live.dirty = dirty;
    }
  }

  isDirty(folio: Folio): boolean {
    if (folio instanceof BasePage) return folio.dirty;
    const live = this.folios.get(Number(folio.pfn));
    return live === folio && live.dirty;
  }

  /**
   * Drops the allocation's reference and returns the pages to the buddy. A folio with pins is EBUSY
   * (never freed while DMA may target it); one with other references is EBUSY too; a folio that is
   * not live (double free) is EINVAL.
   */
  freeFolio(folio: Folio | bigint): void {
    const head = Number(typeof folio === 'bigint' ? folio : folio.pfn);
    const live = typeof folio === 'bigint' ? this.folioAt(folio) : folio;
    if (live === undefined || Number(live.pfn) !== head || !this.isCurrent(live)) {
      fail('EINVAL', `pfn ${formatHex(BigInt(head))} is not the head of a live folio (double free?)`);
    }
    if (live.pincount > 0) {
      fail('EBUSY', `folio at pfn ${formatHex(live.pfn)} has ${live.pincount} DMA pin(s); unpin first`);
    }
    if (live.refcount > 1) {
      fail('EBUSY', `folio at pfn ${formatHex(live.pfn)} still has ${live.refcount - 1} other reference(s)`);
    }
    if (live instanceof BasePage) this.putBasePages(head, 1);
    else this.release(live as MutableFolio);
  }

  /** folio_get(): one more ordinary reference. */
  getFolio(folio: Folio): void {
    const live = this.live(folio);
    if (live instanceof BasePage) this.getBasePages(live.head, 1);
    else live.refcount += 1;
  }

  /** folio_put(): drops a reference; dropping the last one frees the folio, as in the kernel. */
  putFolio(folio: Folio): void {
    const live = this.live(folio);
    if (live instanceof BasePage) {
      this.putBasePages(live.head, 1);
      return;
    }
    if (live.refcount - live.pincount * this.pinRefs(live) <= 0) {
      fail('EINVAL', `folio at pfn ${formatHex(live.pfn)}: put without a matching get`);
    }
    live.refcount -= 1;
    if (live.refcount === 0) this.release(live);
  }

  /**
   * FOLL_PIN on a folio (try_grab_folio in mm/gup.c): large folios get `refs` references and
   * `refs` in _pincount; order-0 folios get refs * GUP_PIN_COUNTING_BIAS references.
   */
  pinFolio(folio: Folio, refs = 1): void {
    const live = this.live(folio);
    if (live instanceof BasePage) {
      this.pinBasePages(live.head, 1, refs);
      return;
    }
    checkRefs(refs, 'pin');
    live.refcount += refs * this.pinRefs(live);
    live.pincount += refs;
    this.metrics?.add('platform.folio_pins', refs);
  }

  /** unpin_folio / gup_put_folio: the exact reverse of pinFolio; unpinning an unpinned folio is EINVAL. */
  unpinFolio(folio: Folio, refs = 1): void {
    const live = this.live(folio);
    if (live instanceof BasePage) {
      this.unpinBasePages(live.head, 1, refs);
      return;
    }
    if (!Number.isInteger(refs) || refs <= 0 || refs > live.pincount) {
      fail('EINVAL', `folio at pfn ${formatHex(live.pfn)} has ${live.pincount} pin(s), cannot unpin ${refs}`);
    }
    live.refcount -= refs * this.pinRefs(live);
    live.pincount -= refs;
    this.metrics?.add('platform.folio_unpins', refs);
    // The owner may already have dropped its reference: the last unpin then frees the folio.
    if (live.refcount === 0) this.release(live);
  }

  /** The live folio containing `pfn` (page_folio(pfn_to_page(pfn))), or undefined if free or not RAM. */
  folioAt(pfn: bigint): Folio | undefined {
    if (pfn < 0n || pfn >= 1n << 52n) return undefined;
    const p = Number(pfn);
    if (this.memmap.isLive(p)) return this.handleOf(p);
    for (let order = 0; order <= this.maxOrder; order++) {
      const size = 2 ** order;
      const folio = this.folios.get(p - (p % size));
      if (folio !== undefined) return folio.order >= order ? folio : undefined;
    }
    return undefined;
  }

  /** Every live folio: those allocated one by one in allocation order, then memmap base pages by pfn. */
  *liveFolios(): Generator<Folio> {
    yield* this.folios.values();
    for (const pfn of this.memmap.livePfns()) yield this.handleOf(pfn);
  }

  get liveFolioCount(): number {
    return this.folios.size + this.memmap.live;
  }

  /** Chunks of memmap state held (each covers 16 MiB of RAM): what the base-page state costs. */
  get memmapChunks(): number {
    return this.memmap.chunkCount;
  }

  /** Every free block (node, order, head). */
  *freeBlocks(): Generator<FreeBlock> {
    for (const node of this.nodes()) {
      const lists = this.freeLists.get(node)!;
      for (let order = 0; order <= this.maxOrder; order++) {
        for (const head of lists[order]!) yield { pfn: BigInt(head), order, node };
      }
    }
  }

  /** Free blocks per order per node (what /proc/buddyinfo prints). */
  buddyInfo(): BuddyInfo[] {
    return this.nodes().map((node) => ({
      node,
      free: this.freeLists.get(node)!.map((list) => list.size),
    }));
  }

  /** /proc/buddyinfo-style text, one line per node. */
  formatBuddyInfo(): string {
    return this.buddyInfo()
      .map(
        (info) => `Node ${info.node}, zone   Normal ${info.free.map((n) => String(n).padStart(6)).join(' ')}`,
      )
      .join('\n');
  }

  /**
   * Fragments free memory the way a long-running machine is fragmented: a `fraction` of the free
   * pageblocks each get one small allocation (order 0..maxScatterOrder, random offset) that stays
   * put, so blocks of pageblock size and above become rare and large requests fall back to small
   * folios scattered over memory. Same seed, same allocator state → same result.
   */
  fragment(seed: number | bigint, options: FragmentOptions): FragmentResult {
    const { fraction } = options;
    if (!(fraction >= 0 && fraction <= 1)) fail('EINVAL', `fragment fraction ${fraction} must be in 0..1`);
    const pbOrder = Math.min(options.pageblockOrder ?? PAGEBLOCK_ORDER, this.maxOrder);
    const maxScatter = Math.min(options.maxScatterOrder ?? 3, pbOrder);
    const rng = new SeededRandom(seed);
    const pbPages = 2 ** pbOrder;
    // Snapshot first: claiming changes the free lists under iteration.
    const blocks = [...this.freeBlocks()].filter((b) => b.order >= pbOrder);
    const folios: Folio[] = [];
    let seen = 0;
    for (const block of blocks) {
      const head = Number(block.pfn);
      for (let pb = head; pb < head + 2 ** block.order; pb += pbPages) {
        seen++;
        if (rng.next() >= fraction) continue;
        // Small orders dominate unmovable allocations (slab pages, page tables).
        const order = Math.min(maxScatter, Math.floor(-Math.log2(1 - rng.next() * 0.9375)));
        const size = 2 ** order;
        const offset = rng.int(0, pbPages / size - 1) * size;
        // The pageblock is untouched so far: the free block holding it is pageblock-sized or larger.
        folios.push(this.claim(pb + offset, order, pbOrder));
      }
    }
    this.metrics?.add('platform.fragment_folios', folios.length);
    return { folios, pageblocksSeen: seen, pageblocksHit: folios.length };
  }

  private canAllocate(order: number, options: AllocOptions): boolean {
    for (const node of this.nodeOrder(options)) {
      const lists = this.freeLists.get(node)!;
      for (let k = order; k <= this.maxOrder; k++) if (lists[k]!.size > 0) return true;
    }
    return false;
  }

  /**
   * Takes the free pages [pfn, pfn + 2^order) out of whatever free block holds them. Free blocks
   * never overlap, so at most one order has a free block holding `pfn`; a caller that knows that
   * block is at least `lowestOrder` spares the probes below it.
   */
  private claim(pfn: number, order: number, lowestOrder = order): Folio {
    for (let k = Math.max(order, lowestOrder); k <= this.maxOrder; k++) {
      let head = pfn - (pfn % 2 ** k);
      if (this.freeOrderAt(head) !== k) continue;
      const node = this.spanOf(head)!.node;
      this.removeFree(head, k, node);
      while (k > order) {
        k--;
        const half = 2 ** k;
        if (pfn >= head + half) {
          this.addFree(head, k, node);
          head += half;
        } else {
          this.addFree(head + half, k, node);
        }
      }
      return this.makeFolio(head, order, node);
    }
    fail('ENOMEM', `pages at pfn ${formatHex(BigInt(pfn))} (order ${order}) are not free`);
  }

  private release(folio: MutableFolio): void {
    this.folios.delete(folio.head);
    folio.refcount = 0;
    this.allocated -= 2 ** folio.order;
    this.metrics?.add('platform.folio_frees');
    this.freeBlock(folio.head, folio.order);
  }

  /**
   * Frees the memmap pages [pfn, pfn + count), whose last reference went, as that many one-by-one
   * frees in pfn order would: freeing the pages of an aligned block in ascending order merges them
   * inside the block (each sub-block's buddy lies in the block) and leaves, when its last page goes,
   * exactly the state of freeing the block whole (__free_one_page then merges on outward and decides
   * head or tail once). The blocks placed inside the block on the way are merged away again, and
   * list insertions and removals leave the order of the other blocks alone. So the run is freed as
   * its largest aligned blocks, in ascending order, each kept inside one RAM span (merges never
   * cross one).
   */
  private releaseBasePages(pfn: number, count: number): void {
    this.memmap.clear(pfn, count);
    if (this.handles.size > 0) for (let p = pfn; p < pfn + count; p++) this.handles.delete(p);
    this.allocated -= count;
    this.metrics?.add('platform.folio_frees', count);
    let head = pfn;
    const end = pfn + count;
    while (head < end) {
      const spanEnd = this.spanOf(head)!.endPfn;
      let order = 0;
      while (
        order < this.maxOrder &&
        head % 2 ** (order + 1) === 0 &&
        head + 2 ** (order + 1) <= Math.min(end, spanEnd)
      ) {
        order++;
      }
      this.freeBlock(head, order);
      head += 2 ** order;
    }
  }

  /** __free_one_page: merges the free block (head, order) with free buddies and lists the result. */
  private freeBlock(head: number, order: number): void {
    const span = this.spanOf(head)!;
    // __free_one_page(): merge upward while the buddy is a free block of the same order in the
    // same RAM span (so blocks never straddle a hole or a node boundary).
    while (order < this.maxOrder) {
      const buddy = this.buddyOf(head, order);
      if (!this.isFreeBuddy(buddy, order, span)) break;
      this.removeFree(buddy, order, span.node);
      head = Math.min(head, buddy);
      order++;
    }
    this.addFree(head, order, span.node, this.buddyMergeLikely(head, order, span));
  }

  /**
   * Applies `op` to each memmap page of [pfn, pfn + count) in pfn order, in one typed-array loop per
   * chunk; the pages whose last reference went are freed in order, in runs, as they come. A page
   * the op cannot apply to (not live, a put without a get, an unpin without a pin) stops it there:
   * what went before stays done (and freed), then the error, as one-by-one calls would leave it —
   * except that with `untilNotLive` a page that is not a live memmap page just ends the run.
   * Returns the pages done.
   */
  private applyBasePages(op: BaseOp, pfn: number, count: number, refs: number, untilNotLive = false): number {
    // What the op adds to each page: references, pins, flags; and for a drop, what it takes away.
    const grows = op === BaseOp.Get || op === BaseOp.Pin || op === BaseOp.Dirty;
    const addRef = op === BaseOp.Get ? 1 : op === BaseOp.Pin ? refs * GUP_PIN_COUNTING_BIAS : 0;
    const addPin = op === BaseOp.Pin ? refs : 0;
    const setFlags = op === BaseOp.Dirty || op === BaseOp.DirtyUnpin ? PAGE_DIRTY : 0;
    const isPut = op === BaseOp.Put;
    const drop = isPut ? 1 : refs * GUP_PIN_COUNTING_BIAS;
    const unpins = isPut ? 0 : refs;
    const end = pfn + count;
    let freeFrom = -1;
    let p = pfn;
    let bad: string | undefined;
    while (p < end && bad === undefined) {
      const chunk = this.memmap.chunkOf(p);
      if (chunk === undefined) {
        bad = 'is not live';
        break;
      }
      const { refcount, pincount, flags } = chunk;
      const base = p - (p % CHUNK_PAGES);
      const stop = Math.min(end, base + CHUNK_PAGES);
      if (grows) {
        for (; p < stop; p++) {
          const i = p - base;
          if (refcount[i]! <= 0) {
            bad = 'is not live';
            break;
          }
          refcount[i]! += addRef;
          pincount[i]! += addPin;
          flags[i]! |= setFlags;
        }
        continue;
      }
      for (; p < stop; p++) {
        const i = p - base;
        const ref = refcount[i]!;
        const pins = pincount[i]!;
        if (ref <= 0) bad = 'is not live';
        else if (isPut && ref - pins * GUP_PIN_COUNTING_BIAS <= 0) bad = ': put without a matching get';
        else if (pins < unpins) bad = `has ${pins} pin(s), cannot unpin ${refs}`;
        if (bad !== undefined) break;
        flags[i]! |= setFlags;
        pincount[i] = pins - unpins;
        refcount[i] = ref - drop;
        if (ref === drop) {
          if (freeFrom < 0) freeFrom = p;
        } else if (freeFrom >= 0) {
          this.releaseBasePages(freeFrom, p - freeFrom);
          freeFrom = -1;
        }
      }
    }
    if (freeFrom >= 0) this.releaseBasePages(freeFrom, p - freeFrom);
    if (op === BaseOp.Pin) this.metrics?.add('platform.folio_pins', (p - pfn) * refs);
    if (op === BaseOp.Unpin || op === BaseOp.DirtyUnpin) {
      this.metrics?.add('platform.folio_unpins', (p - pfn) * refs);
    }
    if (bad === 'is not live' && untilNotLive) return p - pfn;
    if (bad !== undefined) fail('EINVAL', `folio at pfn ${formatHex(BigInt(p))} ${bad}`);
    return p - pfn;
  }

  private handleOf(pfn: number): BasePage {
    let handle = this.handles.get(pfn);
    if (handle === undefined) {
      handle = new BasePage(pfn, this.spanOf(pfn)!.node, this.memmap, this.handles);
      this.handles.set(pfn, handle);
    }
    return handle;
  }

  /** The first node (in `nodes` order) with a free block, and its smallest free order. */
  private smallestFree(nodes: readonly number[]): { node: number; order: number } {
    for (const node of nodes) {
      const lists = this.freeLists.get(node)!;
      for (let k = 0; k <= this.maxOrder; k++) if (lists[k]!.size > 0) return { node, order: k };
    }
    fail('ENOMEM', 'no free block');
  }

  /** pfn ^ (1 << order): the block this one merges with (__find_buddy_pfn). */
  private buddyOf(head: number, order: number): number {
    const size = 2 ** order;
    return (head / size) % 2 === 0 ? head + size : head - size;
  }

  /** A free block of exactly `order` at `buddy`, merging into a block inside the span. */
  private isFreeBuddy(buddy: number, order: number, span: RamSpan): boolean {
    const merged = buddy - (buddy % 2 ** (order + 1));
    return (
      this.freeOrderAt(buddy) === order && merged >= span.startPfn && merged + 2 ** (order + 1) <= span.endPfn
    );
  }

  /**
   * buddy_merge_likely (mm/page_alloc.c): a block whose buddy at the next order up is already free
   * will merge into a larger block as soon as its own buddy comes back, so it goes to the list's tail
   * to be allocated last. Not for the top orders (order >= MAX_PAGE_ORDER - 1).
   */
  private buddyMergeLikely(head: number, order: number, span: RamSpan): boolean {
    if (order >= this.maxOrder - 1) return false;
    const higher = head - (head % 2 ** (order + 1));
    return this.isFreeBuddy(this.buddyOf(higher, order + 1), order + 1, span);
  }

  private makeFolio(head: number, order: number, node: number): Folio {
    const folio: MutableFolio = {
      head,
      pfn: BigInt(head),
      order,
      node,
      refcount: 1,
      pincount: 0,
      dirty: false,
    };
    this.folios.set(head, folio);
    this.allocated += 2 ** order;
    this.metrics?.add('platform.folio_allocs');
    return folio;
  }

  /** __add_to_free_list: at the head unless `toTail`. */
  private addFree(head: number, order: number, node: number, toTail = false): void {
    const list = this.listsOf(node)[order]!;
    const slot = this.freeTable.insert(head, order);
    if (toTail) list.pushTail(slot);
    else list.pushHead(slot);
    this.free += 2 ** order;
  }

  private listsOf(node: number): FreeList[] {
    let lists = this.freeLists.get(node);
    if (lists === undefined) {
      lists = Array.from({ length: this.maxOrder + 1 }, () => new FreeList(this.freeTable));
      this.freeLists.set(node, lists);
    }
    return lists;
  }

  /** The order of the free block whose head is `pfn`, or -1 if none starts there. */
  private freeOrderAt(pfn: number): number {
    const slot = this.freeTable.find(pfn);
    return slot === -1 ? -1 : this.freeTable.order[slot]!;
  }

  private removeFree(head: number, order: number, node: number): void {
    const slot = this.freeTable.find(head);
    if (slot === -1 || this.freeTable.order[slot] !== order) return;
    this.freeLists.get(node)![order]!.delete(slot);
    this.freeTable.remove(slot);
    this.free -= 2 ** order;
  }

  private pinRefs(folio: MutableFolio): number {
    return folio.order > 0 ? 1 : GUP_PIN_COUNTING_BIAS;
  }

  private live(folio: Folio): MutableFolio | BasePage {
    if (!this.isCurrent(folio)) fail('EINVAL', `folio at pfn ${formatHex(folio.pfn)} is not live`);
    return folio as MutableFolio | BasePage;
  }

  /** Whether `folio` is the allocator's live object (or handle) for its pfn, not a stale one. */
  private isCurrent(folio: Folio): boolean {
    const head = Number(folio.pfn);
    return (folio instanceof BasePage ? this.handles.get(head) : this.folios.get(head)) === folio;
  }

  private spanOf(pfn: number): RamSpan | undefined {
    let lo = 0;
    let hi = this.spans.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.spans[mid]!.startPfn <= pfn) lo = mid + 1;
      else hi = mid;
    }
    const span = this.spans[lo - 1];
    return span !== undefined && pfn < span.endPfn ? span : undefined;
  }

  private nodeOrder(options: AllocOptions): readonly number[] {
    const nodes = this.nodeList;
    if (options.node === undefined) return nodes;
    if (!nodes.includes(options.node)) {
      if (options.thisNode) fail('ENOMEM', `node ${options.node} has no RAM`);
      return nodes;
    }
    return options.thisNode ? [options.node] : [options.node, ...nodes.filter((n) => n !== options.node)];
  }

  private checkOrder(order: number): void {
    if (!Number.isInteger(order) || order < 0 || order > this.maxOrder) {
      fail('EINVAL', `folio order ${order} is outside 0..${this.maxOrder}`);
    }
  }
}

function formatBytes(order: number): string {
  const bytes = 4096 * 2 ** order;
  if (bytes >= 2 ** 30) return `${bytes / 2 ** 30}G`;
  if (bytes >= 2 ** 20) return `${bytes / 2 ** 20}M`;
  return `${bytes / 1024}K`;
}
