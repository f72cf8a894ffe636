/**
 * Builders for the packed range lists. A builder appends ranges into `BigUint64Array` chunks (the
 * first ones doubling, then fixed 1 MiB chunks, so a huge list of unknown size is written once into
 * chunks and once into its final storage instead of being copied at every doubling), optionally
 * merging a range into the previous one when it starts exactly where the previous one ends
 * (physically contiguous), and `build()` hands out an immutable list whose storage holds 16 bytes a
 * range. A caller that knows the count up front (`capacity`) gets each range written once: when
 * every range sits in the first chunk with at most 1/16 of it unused, `build()` hands that chunk
 * out as it is (a view of its first `2 × count` words, so the real memory stays <= 17 B a range)
 * and the builder copies it before writing again.
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

/** Chunks stop doubling at this many words (1 MiB); later chunks all have this size. */
const MAX_CHUNK_WORDS = 1 << 17;

abstract class RangeListBuilder<A extends bigint, L extends PackedRangeList<A, L>> {
  /** Full chunks, in order; `words` is the chunk being filled. */
  private readonly full: BigUint64Array[] = [];
  private fullWords = 0;
  private words: BigUint64Array;
  /** Words in use in `words` (2 × ranges). */
  private used = 0;
  /** `words` is the storage of a built list: copy it before the next write. */
  private handedOut = false;
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
    return (this.fullWords + this.used) >>> 1;
  }

  /** Sum of the lengths so far (a walk: the hot path keeps no running bigint total). */
  get totalLength(): bigint {
    return sumLengths(this.collect(), this.fullWords + this.used);
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
    if (this.handedOut) this.unshare();
    let n = this.used;
    let w = this.words;
    // address !== 0: a previous range ending at 2^64 must not look contiguous with 0 after the wrap.
    if (this.merge && address !== 0n) {
      // The previous range is in this chunk, or (right after a chunk filled) at the end of the last one.
      const prev = n !== 0 ? w : this.full[this.full.length - 1];
      const at = n !== 0 ? n : (prev?.length ?? 0);
      if (prev !== undefined) {
        const prevLength = prev[at - 1]!;
        if (BigInt.asUintN(64, prev[at - 2]! + prevLength) === address) {
          const merged = BigInt.asUintN(64, prevLength + length);
          if (merged >= length && merged <= this.maxMerged) {
            prev[at - 1] = merged;
            return this;
          }
        }
      }
    }
    if (n === w.length) {
      w = this.nextChunk();
      n = 0;
    }
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
    const used = this.used;
    // Slack at most 1/16 of what is used: at most 1 byte a range over the 16 the list reports.
    if (this.full.length === 0 && (this.words.length - used) * 16 <= used) {
      const words = used === this.words.length ? this.words : this.words.subarray(0, used);
      this.handedOut = used > 0;
      return this.finish(words, sumLengths(words, used));
    }
    const words = this.collect();
    return this.finish(words, sumLengths(words, words.length));
  }

  /** Forgets every range (keeps the chunk being filled; one a list holds is copied at the next append). */
  reset(): void {
    this.full.length = 0;
    this.fullWords = 0;
    this.used = 0;
  }

  /** Takes a private copy of the chunk a built list now holds (copy on write). */
  private unshare(): void {
    this.words = this.words.slice();
    this.handedOut = false;
  }

  /** Every range so far in one exactly sized array. */
  private collect(): BigUint64Array {
    const words = new BigUint64Array(this.fullWords + this.used);
    let at = 0;
    for (const chunk of this.full) {
      words.set(chunk, at);
      at += chunk.length;
    }
    words.set(this.words.subarray(0, this.used), at);
    return words;
  }

  /** Retires the full chunk and starts the next one (doubling up to MAX_CHUNK_WORDS). */
  private nextChunk(): BigUint64Array {
    this.full.push(this.words);
    this.fullWords += this.words.length;
    this.words = new BigUint64Array(Math.min(this.words.length * 2, MAX_CHUNK_WORDS));
    this.used = 0;
    return this.words;
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
