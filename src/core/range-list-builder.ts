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

/**
 * Sum of the length words. Accumulates in 64-bit pieces with a carry count so the loop stays in
 * int64 arithmetic; the total may exceed 2^64 (many huge ranges), hence the carries.
 */
function sumLengths(words: BigUint64Array, used: number): bigint {
  const acc = new BigUint64Array(1);
  let carries = 0;
  for (let i = 1; i < used; i += 2) {
    const before = acc[0]!;
    acc[0] = before + words[i]!;
    if (acc[0]! < before) carries++;
  }
  return (BigInt(carries) << 64n) + acc[0]!;
}

abstract class RangeListBuilder<A extends bigint, L extends PackedRangeList<A, L>> {
  private words: BigUint64Array;
  /** Words in use (2 × ranges). */
  private used = 0;
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

  /** Sum of the lengths so far (a walk: the hot path keeps no running bigint total). */
  get totalLength(): bigint {
    return sumLengths(this.words, this.used);
  }

  /**
   * Appends `[address, address + length)`, merging into the previous range when contiguous (see
   * the file comment). EINVAL on zero/negative length or a range running past 2^64.
   */
  append(address: bigint, length: bigint): this {
    // Range checks kept to compares and a truncated add (which V8 lowers to int64, no BigInt
    // allocation): the last byte wraps below `address` exactly when the range passes 2^64.
    if (
      length <= 0n ||
      address < 0n ||
      length > U64_MAX ||
      address > U64_MAX ||
      BigInt.asUintN(64, address + length - 1n) < address
    ) {
      checkRange(address, length);
    }
    const n = this.used;
    let w = this.words;
    if (this.merge && n !== 0 && address !== 0n) {
      // address !== 0: a previous range ending at 2^64 must not look contiguous with 0 after the wrap.
      const prevLength = w[n - 1]!;
      if (BigInt.asUintN(64, w[n - 2]! + prevLength) === address) {
        const merged = BigInt.asUintN(64, prevLength + length);
        if (merged >= length && merged <= this.maxMerged) {
          w[n - 1] = merged;
          return this;
        }
      }
    }
    if (n === w.length) w = this.grow();
    w[n] = address;
    w[n + 1] = length;
    this.used = n + 2;
    return this;
  }

  /** Appends every range of a list (merging at the seam and inside, by the same rule). */
  appendList(list: Iterable<AddressRange<bigint>>): this {
    for (const r of list) this.append(r.address, r.length);
    return this;
  }

  /** An immutable list of exactly the ranges so far; the builder stays usable. */
  build(): L {
    const words = this.words.slice(0, this.used);
    return this.finish(words, sumLengths(words, words.length));
  }

  /** Forgets every range (keeps the allocated room). */
  reset(): void {
    this.used = 0;
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
