/**
 * The IOAS's interval structure: non-overlapping inclusive `[start, last]` intervals kept sorted by
 * start, found by binary search (iommufd keeps areas and reserved ranges in interval trees,
 * drivers/iommu/iommufd/io_pagetable.h; since areas never overlap, a sorted array answers the same
 * questions: first interval meeting a range, and the holes between intervals).
 */
export interface Interval {
  readonly start: bigint;
  readonly last: bigint;
}

export class IntervalList<T extends Interval> {
  private items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  all(): readonly T[] {
    return this.items;
  }

  /** Index of the first interval whose last >= `start`. */
  private lowerBound(start: bigint): number {
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.items[mid]!.last < start) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The first interval meeting `[start, last]` (interval_tree_iter_first). */
  first(start: bigint, last: bigint): T | undefined {
    const item = this.items[this.lowerBound(start)];
    return item !== undefined && item.start <= last ? item : undefined;
  }

  /** Inserts; the caller has checked that nothing overlaps. */
  insert(item: T): void {
    const i = this.lowerBound(item.start);
    this.items.splice(i, 0, item);
  }

  remove(item: T): void {
    const i = this.items.indexOf(item);
    if (i >= 0) this.items.splice(i, 1);
  }
}
