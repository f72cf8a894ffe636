/**
 * Live address ranges of one device (or one IOMMU), sorted by start: insert, remove, and find the
 * range holding an address or overlapping a new one. Ranges are inclusive [start, last] so the
 * exclusive end 2^64 never has to be represented.
 */
export interface LiveRange<T> {
  readonly start: bigint;
  readonly last: bigint;
  readonly value: T;
}

export class LiveRanges<T> {
  private readonly ranges: LiveRange<T>[] = [];

  get size(): number {
    return this.ranges.length;
  }

  /** Index of the first range whose start is greater than `addr`. */
  private upper(addr: bigint): number {
    let lo = 0;
    let hi = this.ranges.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ranges[mid]!.start <= addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * A live range overlapping [start, last], if any. Looks at the nearest neighbours, which is exact
   * while the live set is disjoint (as it is until a first overlap has been reported).
   */
  overlapping(start: bigint, last: bigint): LiveRange<T> | undefined {
    // The range starting last at or before `last`: in a disjoint set, the only candidate.
    const before = this.ranges[this.upper(last) - 1];
    return before !== undefined && before.last >= start ? before : undefined;
  }

  /** The range holding `addr`, if any. */
  holding(addr: bigint): LiveRange<T> | undefined {
    return this.overlapping(addr, addr);
  }

  insert(start: bigint, last: bigint, value: T): void {
    const i = this.upper(start);
    // Shift by hand: splice allocates an array of what it removes on every call.
    const r = this.ranges;
    const range = { start, last, value };
    r.push(range);
    for (let j = r.length - 1; j > i; j--) r[j] = r[j - 1]!;
    r[i] = range;
  }

  /** Removes the range with this start and value; false when there is none. */
  remove(start: bigint, value: T): boolean {
    let i = this.upper(start) - 1;
    while (i >= 0 && this.ranges[i]!.start === start) {
      if (this.ranges[i]!.value === value) {
        const r = this.ranges;
        for (let j = i; j < r.length - 1; j++) r[j] = r[j + 1]!;
        r.pop();
        return true;
      }
      i--;
    }
    return false;
  }

  /** Removes and returns every range within [start, last] (iommu:unmap of a span). */
  removeWithin(start: bigint, last: bigint): LiveRange<T>[] {
    const from = this.upper(start - 1n);
    let to = from;
    while (to < this.ranges.length && this.ranges[to]!.start <= last) to++;
    const hit = this.ranges.slice(from, to).filter((r) => r.last <= last);
    if (hit.length > 0) {
      const keep = this.ranges.slice(from, to).filter((r) => r.last > last);
      this.ranges.splice(from, to - from, ...keep);
    }
    return hit;
  }

  values(): IterableIterator<LiveRange<T>> {
    return this.ranges.values();
  }
}
