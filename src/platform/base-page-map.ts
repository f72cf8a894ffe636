/**
 * The memmap of base pages handed out in bulk: per-page folio state (the fields of struct page that
 * an order-0 folio uses: _refcount, the model's exact pin count, PG_dirty) in typed arrays, one set
 * per chunk of physical memory, created when the first page of the chunk is allocated and dropped
 * when its last one is freed. The kernel keeps the same fields in its memmap (struct page per pfn,
 * SPARSEMEM sections, include/linux/mmzone.h); keeping them here, and not as one JS object per 4K
 * folio, makes a 64 GiB buffer of base pages cost 9 bytes a page.
 *
 * A page is live here iff its refcount is above zero.
 */

/** Pages per chunk: 2^12 (16 MiB of RAM, 36 KiB of state). */
export const CHUNK_SHIFT = 12;
export const CHUNK_PAGES = 1 << CHUNK_SHIFT;

/** Bit in `flags`: folio_test_dirty. */
export const PAGE_DIRTY = 1;

export class MemmapChunk {
  readonly refcount = new Int32Array(CHUNK_PAGES);
  readonly pincount = new Int32Array(CHUNK_PAGES);
  readonly flags = new Uint8Array(CHUNK_PAGES);
  /** Live pages in the chunk. */
  live = 0;
}

export class BasePageMap {
  private readonly chunks = new Map<number, MemmapChunk>();
  /** Live pages over all chunks. */
  live = 0;

  /** The chunk holding `pfn`, if any page of it is live. */
  chunkOf(pfn: number): MemmapChunk | undefined {
    return this.chunks.get(Math.floor(pfn / CHUNK_PAGES));
  }

  /** Whether `pfn` is a live base page of this map. */
  isLive(pfn: number): boolean {
    const chunk = this.chunkOf(pfn);
    return chunk !== undefined && chunk.refcount[pfn % CHUNK_PAGES]! > 0;
  }

  get chunkCount(): number {
    return this.chunks.size;
  }

  /** Marks [pfn, pfn + count) live with one reference each (free pages, so their state is zero). */
  add(pfn: number, count: number): void {
    this.forEachChunk(pfn, count, true, (chunk, from, to) => {
      chunk.refcount.fill(1, from, to);
      chunk.live += to - from;
    });
    this.live += count;
  }

  /** Clears the state of pages [pfn, pfn + count), whose refcounts reached zero; drops chunks left empty. */
  clear(pfn: number, count: number): void {
    this.forEachChunk(pfn, count, false, (chunk, from, to, first) => {
      chunk.refcount.fill(0, from, to);
      chunk.pincount.fill(0, from, to);
      chunk.flags.fill(0, from, to);
      chunk.live -= to - from;
      if (chunk.live === 0) this.chunks.delete(Math.floor(first / CHUNK_PAGES));
    });
    this.live -= count;
  }

  /**
   * Calls `fn(chunk, from, to)` for each chunk piece of [pfn, pfn + count), in pfn order, with the
   * indexes inside the chunk. Missing chunks are created when `create`, else skipped.
   */
  forEachChunk(
    pfn: number,
    count: number,
    create: boolean,
    fn: (chunk: MemmapChunk, from: number, to: number, firstPfn: number) => void,
  ): void {
    let at = pfn;
    const end = pfn + count;
    while (at < end) {
      const key = Math.floor(at / CHUNK_PAGES);
      const from = at - key * CHUNK_PAGES;
      const to = Math.min(CHUNK_PAGES, from + (end - at));
      let chunk = this.chunks.get(key);
      if (chunk === undefined && create) {
        chunk = new MemmapChunk();
        this.chunks.set(key, chunk);
      }
      if (chunk !== undefined) fn(chunk, from, to, at);
      at += to - from;
    }
  }

  /** Live pfns in ascending order. */
  *livePfns(): Generator<number> {
    const keys = [...this.chunks.keys()].sort((a, b) => a - b);
    for (const key of keys) {
      const chunk = this.chunks.get(key);
      if (chunk === undefined) continue;
      for (let i = 0; i < CHUNK_PAGES; i++) if (chunk.refcount[i]! > 0) yield key * CHUNK_PAGES + i;
    }
  }
}
