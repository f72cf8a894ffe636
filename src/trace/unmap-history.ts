/**
 * The most recent unmaps, by key, bounded: rings of keys and values in the order they were set.
 * Setting is two array writes: the replay remembers every unmap but looks one up only on misuse (an
 * unmap that matches no live mapping, a fault), so the key index is built when a lookup needs it,
 * not kept up to date per unmap (a Map kept that way, churning thousands of entries, cost the
 * replay about a third of its time). A lookup scans the sets since the index was last built, newest
 * first, and rebuilds it when that tail grows past about the square root of the capacity: dense
 * lookups pay O(√capacity) each, sparse ones nearly nothing.
 */
export class UnmapHistory<K, V> {
  private readonly ringKeys: K[] = [];
  private readonly ringValues: V[] = [];
  /** Sets made so far; set `s` is in slot `s % capacity` while `s >= seq - capacity`. */
  private seq = 0;
  /** Latest set of each key among the sets before `indexedTo`. */
  private readonly index = new Map<K, number>();
  private indexedTo = 0;
  private readonly maxTail: number;

  constructor(private readonly capacity: number) {
    this.maxTail = Math.max(8, Math.ceil(Math.sqrt(capacity)));
  }

  private get oldest(): number {
    return Math.max(0, this.seq - this.capacity);
  }

  /** Keys held (each once). */
  get size(): number {
    return this.latest().length;
  }

  get(key: K): V | undefined {
    if (this.seq - this.indexedTo > this.maxTail) this.reindex();
    const oldest = this.oldest;
    for (let s = this.seq - 1; s >= this.indexedTo && s >= oldest; s--) {
      if (this.ringKeys[s % this.capacity] === key) return this.ringValues[s % this.capacity];
    }
    const s = this.index.get(key);
    return s === undefined || s < oldest ? undefined : this.ringValues[s % this.capacity];
  }

  set(key: K, value: V): void {
    const slot = this.seq++ % this.capacity;
    if (this.ringKeys.length === this.capacity) {
      this.ringKeys[slot] = key;
      this.ringValues[slot] = value;
    } else {
      this.ringKeys.push(key);
      this.ringValues.push(value);
    }
  }

  private reindex(): void {
    this.index.clear();
    for (let s = this.oldest; s < this.seq; s++) this.index.set(this.ringKeys[s % this.capacity]!, s);
    this.indexedTo = this.seq;
  }

  /** Slots of each key's latest set, oldest first. */
  private latest(): number[] {
    const seen = new Set<K>();
    const slots: number[] = [];
    for (let s = this.seq - 1; s >= this.oldest; s--) {
      const slot = s % this.capacity;
      if (seen.has(this.ringKeys[slot]!)) continue;
      seen.add(this.ringKeys[slot]!);
      slots.push(slot);
    }
    return slots.reverse();
  }

  /** Each key's latest value, oldest set first. */
  *values(): IterableIterator<V> {
    for (const slot of this.latest()) yield this.ringValues[slot]!;
  }
}
