/**
 * The buddy allocator's free blocks in typed arrays: an open-addressing table from a block's head
 * pfn to its slot (what PageBuddy + buddy_order answer in the kernel: is this page the head of a
 * free block, of which order), and per slot the links of its free list (struct page's buddy_list).
 * A fragmented machine has hundreds of thousands of free blocks: typed arrays keep inserts and
 * lookups free of per-block objects and of Map rehashing.
 */

const EMPTY = -1;

export class FreeBlockTable {
  /** Slot → head pfn / order / list links (-1 = none). */
  head = new Float64Array(64);
  order = new Uint8Array(64);
  prev = new Int32Array(64);
  next = new Int32Array(64);
  /** Released slots, reused before new ones. */
  private spare: number[] = [];
  private slots = 0;
  /** Hash buckets (linear probing): slot, or EMPTY. */
  private buckets = new Int32Array(128).fill(EMPTY);
  private mask = 127;
  size = 0;

  /** The slot of the free block whose head is `pfn`, or -1. */
  find(pfn: number): number {
    const { buckets, mask, head } = this;
    for (let i = hash(pfn) & mask; ; i = (i + 1) & mask) {
      const slot = buckets[i]!;
      if (slot === EMPTY || head[slot] === pfn) return slot;
    }
  }

  /** Adds a free block (its head must not be in the table); returns its slot, links cleared. */
  insert(pfn: number, order: number): number {
    if ((this.size + 1) * 2 > this.buckets.length) this.rehash(this.buckets.length * 2);
    const slot = this.spare.length > 0 ? this.spare.pop()! : this.newSlot();
    this.head[slot] = pfn;
    this.order[slot] = order;
    this.prev[slot] = EMPTY;
    this.next[slot] = EMPTY;
    const { buckets, mask } = this;
    let i = hash(pfn) & mask;
    while (buckets[i] !== EMPTY) i = (i + 1) & mask;
    buckets[i] = slot;
    this.size++;
    return slot;
  }

  /** Removes the block in `slot` (already unlinked from its list). */
  remove(slot: number): void {
    const { buckets, mask, head } = this;
    let i = hash(head[slot]!) & mask;
    while (buckets[i] !== slot) i = (i + 1) & mask;
    // Backward-shift deletion: pull later entries of the probe run into the hole.
    for (let j = (i + 1) & mask; buckets[j] !== EMPTY; j = (j + 1) & mask) {
      const home = hash(head[buckets[j]!]!) & mask;
      // Move j into i unless its home lies cyclically in (i, j].
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        buckets[i] = buckets[j]!;
        i = j;
      }
    }
    buckets[i] = EMPTY;
    this.spare.push(slot);
    this.size--;
  }

  private newSlot(): number {
    if (this.slots === this.head.length) {
      const grow = <T extends Float64Array | Uint8Array | Int32Array>(a: T, make: (n: number) => T): T => {
        const b = make(a.length * 2);
        b.set(a);
        return b;
      };
      this.head = grow(this.head, (n) => new Float64Array(n));
      this.order = grow(this.order, (n) => new Uint8Array(n));
      this.prev = grow(this.prev, (n) => new Int32Array(n));
      this.next = grow(this.next, (n) => new Int32Array(n));
    }
    return this.slots++;
  }

  private rehash(size: number): void {
    const old = this.buckets;
    const buckets = new Int32Array(size).fill(EMPTY);
    const mask = size - 1;
    for (const slot of old) {
      if (slot === EMPTY) continue;
      let i = hash(this.head[slot]!) & mask;
      while (buckets[i] !== EMPTY) i = (i + 1) & mask;
      buckets[i] = slot;
    }
    this.buckets = buckets;
    this.mask = mask;
  }
}

/** Mixes both 32-bit halves of a pfn (block heads are aligned, so their low bits are mostly zero). */
function hash(pfn: number): number {
  const low = pfn | 0;
  const high = (pfn / 0x1_0000_0000) | 0;
  const h = Math.imul(low ^ Math.imul(high, 0x85eb_ca6b), 0x9e37_79b1);
  return (h ^ (h >>> 15)) >>> 0;
}
