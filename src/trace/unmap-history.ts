/**
 * The most recent unmaps, by key, bounded: a map for lookups and a ring of keys for eviction in
 * insertion order. (Evicting through a Map's own iterator would walk the holes deletions leave at
 * its front, growing with every eviction.)
 */
export class UnmapHistory<K, V> {
  private readonly byKey = new Map<K, { value: V; seq: number }>();
  private readonly ringKeys: K[] = [];
  private readonly ringSeqs: number[] = [];
  private seq = 0;

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.byKey.size;
  }

  get(key: K): V | undefined {
    return this.byKey.get(key)?.value;
  }

  set(key: K, value: V): void {
    const seq = this.seq++;
    const slot = seq % this.capacity;
    if (this.ringKeys.length === this.capacity) {
      // The oldest slot: forget its key unless it was set again since.
      const old = this.ringKeys[slot]!;
      if (this.byKey.get(old)?.seq === this.ringSeqs[slot]) this.byKey.delete(old);
      this.ringKeys[slot] = key;
      this.ringSeqs[slot] = seq;
    } else {
      this.ringKeys.push(key);
      this.ringSeqs.push(seq);
    }
    this.byKey.set(key, { value, seq });
  }

  *values(): IterableIterator<V> {
    for (const e of this.byKey.values()) yield e.value;
  }
}
