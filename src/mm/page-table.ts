/**
 * The user page table, modelled as a sorted array of mapped extents: each extent maps `pages`
 * consecutive virtual pages starting at `vpn` to consecutive frames starting at `pfn`. An extent
 * is one of three kinds:
 * - folio-backed: it never spans two folios, and records the folio and the page of the folio that
 *   `vpn` maps (a large folio split by a partial munmap leaves two extents on one folio); it holds
 *   exactly one reference on its folio (the mapping's);
 * - base pages (`basePages`): a run of physically consecutive order-0 anonymous folios kept in the
 *   allocator's memmap, one folio per page, each holding the mapping's reference: what `pages`
 *   single-page PTEs of consecutive frames are in the kernel, kept as one extent so a 64 GiB buffer
 *   of base pages is a handful of extents, not millions; `folio` is undefined (ask the allocator
 *   for a page's folio);
 * - PFN-mapped (remap_pfn_range): no folio, since there is no struct page to refer to.
 * A folio outlives its mapping only through other references, such as a DMA pin.
 */
import type { Folio } from '../platform/index.ts';

export interface PageMapping {
  readonly vpn: number;
  readonly pages: number;
  readonly pfn: number;
  readonly folio: Folio | undefined;
  /** Index in the folio of the page `vpn` maps. */
  readonly folioPage: number;
  /** An anonymous page (or a private COW copy): written through, never the page cache's. */
  readonly anon: boolean;
  /** A run of memmap base pages, one order-0 folio a page (see above). */
  readonly basePages?: boolean;
}

export class PageTable {
  private extents: PageMapping[] = [];

  get extentCount(): number {
    return this.extents.length;
  }

  /** Index of the first extent that ends after `vpn` (may start after it). */
  firstEndingAfter(vpn: number): number {
    const e = this.extents;
    let lo = 0;
    let hi = e.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const m = e[mid]!;
      if (m.vpn + m.pages <= vpn) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  at(index: number): PageMapping | undefined {
    return this.extents[index];
  }

  /** The extent mapping `vpn`, if any. */
  lookup(vpn: number): PageMapping | undefined {
    const m = this.extents[this.firstEndingAfter(vpn)];
    return m !== undefined && m.vpn <= vpn ? m : undefined;
  }

  /** Inserts sorted, non-overlapping extents that all fall in one hole, before index `at`. */
  insertAt(at: number, added: readonly PageMapping[]): void {
    if (added.length === 0) return;
    if (at === this.extents.length) {
      for (const m of added) this.extents.push(m);
    } else {
      this.spliceIn(at, 0, added);
    }
  }

  /**
   * Removes the mappings of pages [fromVpn, toVpn), cutting extents at the edges. Returns, for
   * each extent touched, the original and how many pieces of it stay mapped (0, 1 or 2), so the
   * caller can move folio references (one per extent).
   */
  remove(fromVpn: number, toVpn: number): { original: PageMapping; keptPieces: number }[] {
    const first = this.firstEndingAfter(fromVpn);
    let last = first;
    const touched: { original: PageMapping; keptPieces: number }[] = [];
    const kept: PageMapping[] = [];
    while (last < this.extents.length && this.extents[last]!.vpn < toVpn) {
      const m = this.extents[last]!;
      const end = m.vpn + m.pages;
      let keptPieces = 0;
      if (m.vpn < fromVpn) {
        kept.push(cut(m, m.vpn, fromVpn));
        keptPieces++;
      }
      if (end > toVpn) {
        kept.push(cut(m, toVpn, end));
        keptPieces++;
      }
      touched.push({ original: m, keptPieces });
      last++;
    }
    this.spliceIn(first, last - first, kept);
    return touched;
  }

  /** Replaces the extents overlapping [fromVpn, toVpn) wholesale (a COW swap): no reference moves. */
  replace(fromVpn: number, toVpn: number, added: readonly PageMapping[]): void {
    const first = this.firstEndingAfter(fromVpn);
    let last = first;
    while (last < this.extents.length && this.extents[last]!.vpn < toVpn) last++;
    this.spliceIn(first, last - first, added);
  }

  /** splice without spreading (a spread of 2^18 extents would overflow the argument stack). */
  private spliceIn(at: number, deleteCount: number, added: readonly PageMapping[]): void {
    if (added.length < 1024) {
      this.extents.splice(at, deleteCount, ...added);
      return;
    }
    this.extents = this.extents.slice(0, at).concat(added, this.extents.slice(at + deleteCount));
  }

  /** Every extent overlapping [fromVpn, toVpn), in VA order. */
  *range(fromVpn: number, toVpn: number): Generator<PageMapping> {
    for (let i = this.firstEndingAfter(fromVpn); i < this.extents.length; i++) {
      const m = this.extents[i]!;
      if (m.vpn >= toVpn) return;
      yield m;
    }
  }
}

/** The part of `m` covering pages [from, to). */
export function cut(m: PageMapping, from: number, to: number): PageMapping {
  const delta = from - m.vpn;
  return { ...m, vpn: from, pages: to - from, pfn: m.pfn + delta, folioPage: m.folioPage + delta };
}

/** `m` clipped to the pages [from, to) it overlaps: `m` itself when it lies inside them. */
export function clip(m: PageMapping, from: number, to: number): PageMapping {
  const lo = Math.max(m.vpn, from);
  const hi = Math.min(m.vpn + m.pages, to);
  return lo === m.vpn && hi === m.vpn + m.pages ? m : cut(m, lo, hi);
}
