/**
 * Builders for the packed range lists. A builder appends ranges into a growable `BigUint64Array`
 * (doubling), optionally merging a range into the previous one when it starts exactly where the
 * previous one ends (physically contiguous), and `build()` hands out an immutable list whose storage
 * is trimmed to exactly 16 bytes a range.
 *
 * Merge rule (the same one sg_alloc_append_table_from_pages in lib/scatterlist.c applies to pages,
 * generalised to byte ranges): merge when `previous.address + previous.length === address` and, with
 * `maxSegmentSize`, only while the merged length stays <= maxSegmentSize. A range that is itself
 * longer than maxSegmentSize is appended whole: the builder bounds merging, `split()` enforces
 * segment limits.
 *
 * The hot path (`append`) does only typed-array loads/stores and a few bigint compares: no objects
 * are made per range.
 */
import { type DmaAddr, formatHex, type PhysAddr, U64_MAX } from './address.ts';
import { fail } from './errors.ts';
import { type AddressRange, checkRange, DmaRangeList, type PackedRangeList, PhyrList } from './range-list.ts';

export interface RangeListBuilderOptions {
  /** Merge a contiguous range into the previous one (default true). */
  readonly merge?: boolean;
  /** Merging never makes a range longer than this (bytes, > 0). */
  readonly maxSegmentSize?: bigint | number;
  /** Ranges to reserve room for up front (default 16). */
  readonly capacity?: number;
}

/** The address just past the 64-bit space: a range may end at 2^64 - 1, not beyond. */
const LIMIT = U64_MAX + 1n;

abstract class RangeListBuilder<A extends bigint, L extends PackedRangeList<A, L>> {
  private words: BigUint64Array;
  /** Words in use (2 × ranges). */
  private used = 0;
  private total = 0n;
  private readonly merge: boolean;
  private readonly maxMerged: bigint;

  constructor(options: RangeListBuilderOptions = {}) {
    this.merge = options.merge ?? true;
    const max = options.maxSegmentSize;
    if (max === undefined) {
      this.maxMerged = U64_MAX;
    } else {
      const m = BigInt(max);
      if (m <= 0n || m > U64_MAX) fail('EINVAL', `max segment size ${formatHex(m)} must be 1..2^64-1`);
      this.maxMerged = m;
    }
    const capacity = options.capacity ?? 16;
    if (!Number.isInteger(capacity) || capacity < 0) fail('EINVAL', `capacity ${capacity} is not a count`);
    this.words = new BigUint64Array(Math.max(2, capacity * 2));
  }

  protected abstract finish(words: BigUint64Array, total: bigint): L;

  /** Ranges so far (after merging). */
  get count(): number {
    return this.used >>> 1;
  }

  get totalLength(): bigint {
    return this.total;
  }

  /**
   * Appends `[address, address + length)`, merging into the previous range when contiguous (see
   * the file comment). EINVAL on zero/negative length or a range running past 2^64.
   */
  append(address: bigint, length: bigint): this {
    // One combined check keeps the hot path short; checkRange words the refusal.
    if (length <= 0n || address < 0n || address + length > LIMIT) checkRange(address, length);
    const n = this.used;
    let w = this.words;
    if (this.merge && n !== 0) {
      const prevLength = w[n - 1]!;
      const merged = prevLength + length;
      if (w[n - 2]! + prevLength === address && merged <= this.maxMerged) {
        w[n - 1] = merged;
        this.total += length;
        return this;
      }
    }
    if (n === w.length) w = this.grow();
    w[n] = address;
    w[n + 1] = length;
    this.used = n + 2;
    this.total += length;
    return this;
  }

  /** Appends every range of a list (merging at the seam and inside, by the same rule). */
  appendList(list: Iterable<AddressRange<bigint>>): this {
    for (const r of list) this.append(r.address, r.length);
    return this;
  }

  /** An immutable list of exactly the ranges so far; the builder stays usable. */
  build(): L {
    return this.finish(this.words.slice(0, this.used), this.total);
  }

  /** Forgets every range (keeps the allocated room). */
  reset(): void {
    this.used = 0;
    this.total = 0n;
  }

  private grow(): BigUint64Array {
    const bigger = new BigUint64Array(this.words.length * 2);
    bigger.set(this.words);
    this.words = bigger;
    return bigger;
  }
}

/** Builds a {@link PhyrList}. */
export class PhyrListBuilder extends RangeListBuilder<PhysAddr, PhyrList> {
  protected finish(words: BigUint64Array, total: bigint): PhyrList {
    return PhyrList.fromCheckedWords(words, total);
  }
}

/** Builds a {@link DmaRangeList}. */
export class DmaRangeListBuilder extends RangeListBuilder<DmaAddr, DmaRangeList> {
  protected finish(words: BigUint64Array, total: bigint): DmaRangeList {
    return DmaRangeList.fromCheckedWords(words, total);
  }
}
