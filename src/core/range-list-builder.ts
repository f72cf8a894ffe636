/**
 * Builders for the packed range lists. A builder writes each range once, into `BigUint64Array`
 * chunks that it never copies: the first chunk holds `capacity` ranges (default 16), each later one
 * 1/16 of the ranges so far (at least 16, at most 64Ki ranges = 1 MiB), and `build()` hands the
 * chunks out as they are (views of exactly the words used) in an immutable list. So the memory a
 * list holds is its 16 B a range plus the unused tail of the last chunk: at most 1/16 of the list
 * past the first chunk, or the first chunk's unused part (a caller that announced more than it
 * appended). No size limit applies beyond the engine's memory: a list of 2^28 ranges is 4096 chunks.
 *
 * The builder stays usable after `build()`. It never writes a word a built list can see: later
 * ranges go after the shared words, `reset()` starts a fresh chunk, and a merge into a range a list
 * already holds writes the merged range anew (copy on write of that one range).
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
function sumLengths(chunks: readonly BigUint64Array[]): bigint {
  const acc = new BigUint64Array(1);
  let carries = 0;
  for (const words of chunks) {
    for (let i = 1; i < words.length; i += 2) {
      const before = acc[0]!;
      acc[0] = before + words[i]!;
      if (acc[0]! < before) carries++;
    }
  }
  return (BigInt(carries) << 64n) + acc[0]!;
}

/** A later chunk holds 1/16 of the ranges so far, within these bounds (16 ranges; 64Ki = 1 MiB). */
const MIN_CHUNK_RANGES = 16;
const MAX_CHUNK_RANGES = 1 << 16;

abstract class RangeListBuilder<A extends bigint, L extends PackedRangeList<A, L>> {
  /** Earlier chunks in order, each exactly its used words (none empty); `words` is being filled. */
  private readonly full: BigUint64Array[] = [];
  private fullWords = 0;
  private words: BigUint64Array;
  /** Words in use in `words` (2 × ranges). */
  private used = 0;
  /** Words (counted across the chunks in order) that built lists hold: never written again. */
  private shared = 0;
  private readonly firstWords: number;
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
    const capacity = options.capacity ?? MIN_CHUNK_RANGES;
    if (!Number.isInteger(capacity) || capacity < 0) fail('EINVAL', `capacity ${capacity} is not a count`);
    this.firstWords = Math.max(2, capacity * 2);
    this.words = new BigUint64Array(this.firstWords);
  }

  protected abstract finish(chunks: readonly BigUint64Array[], total: bigint): L;

  /** Ranges so far (after merging). */
  get count(): number {
    return (this.fullWords + this.used) >>> 1;
  }

  /** Sum of the lengths so far (a walk: the hot path keeps no running bigint total). */
  get totalLength(): bigint {
    return sumLengths(this.chunks());
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
            if (this.fullWords + n <= this.shared) this.rewriteLast(merged);
            else prev[at - 1] = merged;
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

  /** An immutable list of exactly the ranges so far, in the builder's own chunks; the builder stays usable. */
  build(): L {
    const chunks = this.chunks();
    this.shared = this.fullWords + this.used;
    return this.finish(chunks, sumLengths(chunks));
  }

  /** Forgets every range (keeps the chunk being filled unless a built list holds part of it). */
  reset(): void {
    if (this.shared > this.fullWords) this.words = new BigUint64Array(this.firstWords);
    this.full.length = 0;
    this.fullWords = 0;
    this.used = 0;
    this.shared = 0;
  }

  /** The chunks so far, the last one trimmed to its used words (views: no range is copied). */
  private chunks(): BigUint64Array[] {
    const chunks = [...this.full];
    if (this.used > 0)
      chunks.push(this.used === this.words.length ? this.words : this.words.subarray(0, this.used));
    return chunks;
  }

  /**
   * Copy on write: the last range is in a built list, so the merged range is written anew at the
   * start of a fresh chunk, and the chunk it was in ends before it (the list keeps the old words).
   */
  private rewriteLast(merged: bigint): void {
    let address: bigint;
    if (this.used !== 0) {
      address = this.words[this.used - 2]!;
      this.retire(this.words.subarray(0, this.used - 2));
      this.words = new BigUint64Array(this.nextChunkWords());
    } else {
      // The last range ends a full chunk; the chunk being filled is empty and no list holds it.
      const last = this.full.pop()!;
      this.fullWords -= last.length;
      address = last[last.length - 2]!;
      this.retire(last.subarray(0, last.length - 2));
    }
    this.words[0] = address;
    this.words[1] = merged;
    this.used = 2;
    this.shared = this.fullWords;
  }

  /** Adds a chunk (if not empty) to the full ones. */
  private retire(chunk: BigUint64Array): void {
    if (chunk.length === 0) return;
    this.full.push(chunk);
    this.fullWords += chunk.length;
  }

  /** Retires the full chunk and starts the next one. */
  private nextChunk(): BigUint64Array {
    this.retire(this.words);
    this.words = new BigUint64Array(this.nextChunkWords());
    this.used = 0;
    return this.words;
  }

  /** Words of the next chunk: 1/16 of the ranges so far, 16..64Ki ranges. */
  private nextChunkWords(): number {
    const ranges = (this.fullWords + this.used) >>> 5;
    return 2 * Math.min(MAX_CHUNK_RANGES, Math.max(MIN_CHUNK_RANGES, ranges));
  }
}

/** Builds a {@link PhyrList}. */
export class PhyrListBuilder extends RangeListBuilder<PhysAddr, PhyrList> {
  protected finish(chunks: readonly BigUint64Array[], total: bigint): PhyrList {
    return PhyrList.fromCheckedChunks(chunks, total);
  }
}

/** Builds a {@link DmaRangeList}. */
export class DmaRangeListBuilder extends RangeListBuilder<DmaAddr, DmaRangeList> {
  protected finish(chunks: readonly BigUint64Array[], total: bigint): DmaRangeList {
    return DmaRangeList.fromCheckedChunks(chunks, total);
  }
}
