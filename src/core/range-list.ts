/**
 * Packed range lists: the heart of physr.
 *
 * A range list is an immutable sequence of (address, length) ranges held in `BigUint64Array` chunks
 * with the two words of each range interleaved: `[address0, length0, address1, length1, ...]`,
 * exactly 16 bytes a range, no per-range objects. Most lists are one chunk; a list a builder grew
 * without knowing its count keeps the builder's chunks as they were written (see
 * range-list-builder.ts), and `concat` shares both lists' chunks. Hot loops read the words through a
 * {@link RangeCursor}, which steps from chunk to chunk. Two flavours share all code:
 *  - {@link PhyrList}: CPU physical ranges (the proposal's `struct phyr` array);
 *  - {@link DmaRangeList}: the mapped result, (DMA address, length) as a device sees it.
 *
 * Invariants (checked on every way in: builders, `fromRanges`, `slice`, `split`, `concat`):
 *  1. every length is > 0 and fits a u64;
 *  2. every range ends at or below 2^64 - 1 (`address + length - 1 <= U64_MAX`, see rangeLast);
 *  3. the chunks (views) hold exactly `2 * count` words, none empty, so `metadataBytes` is exact (the
 *     buffers under a builder's views may hold a bounded slack: see range-list-builder.ts);
 *  4. the list never changes after construction (the storage is private; derived lists copy it or
 *     share chunks, which no one writes again).
 * Ranges may be adjacent or overlap; only the builder merges, and only when asked. Order matters:
 * the list describes the bytes of a buffer in order, as a scatterlist does.
 *
 * `metadataBytes` is 16 × count: we model no header, because in the proposal the caller holds the
 * array and its count (a `struct phyr` is {phys_addr_t addr; size_t len}, 16 bytes on 64-bit).
 *
 * Splitting follows the DMA layer's two segment rules (include/linux/dma-mapping.h:
 * dma_get_max_seg_size and dma_get_seg_boundary): no segment longer than max_segment_size, and none
 * crossing an address that is a multiple of (seg_boundary_mask + 1).
 */
import { type DmaAddr, formatHex, formatSize, type PhysAddr, rangeLast, U64_MAX } from './address.ts';
import { fail } from './errors.ts';

/** One range as the public API hands it out. */
export interface AddressRange<A extends bigint> {
  readonly address: A;
  readonly length: bigint;
}

/** A physical range (`struct phyr` in the proposal). */
export type Phyr = AddressRange<PhysAddr>;
/** A mapped range as the device sees it. */
export type DmaRange = AddressRange<DmaAddr>;

/** What `fromRanges` accepts: objects or `[address, length]` pairs, bigint or safe Numbers. */
export type RangeInput =
  | { readonly address: bigint | number; readonly length: bigint | number }
  | readonly [bigint | number, bigint | number];

/** The DMA layer's segment rules for {@link PackedRangeList.split}. */
export interface SplitRules {
  /** dma_get_max_seg_size: no segment may be longer (bytes, > 0). */
  readonly maxSegmentSize?: bigint | number;
  /** dma_get_seg_boundary: no segment may cross a multiple of mask + 1 (mask + 1 a power of two). */
  readonly segmentBoundaryMask?: bigint | number;
}

/** Bytes of storage a range takes. */
export const RANGE_BYTES = 16;

/** Checks one (address, length) and returns them as bigints; EINVAL on zero length or 2^64 overflow. */
export function checkRange(address: bigint | number, length: bigint | number, what = 'range'): void {
  const a = typeof address === 'bigint' ? address : toBigIntExact(address, `${what} address`);
  const l = typeof length === 'bigint' ? length : toBigIntExact(length, `${what} length`);
  if (a < 0n || a > U64_MAX) fail('EINVAL', `${what} address ${formatHex(a)} is outside 0..2^64-1`);
  if (l > U64_MAX) fail('EINVAL', `${what} length ${formatHex(l)} does not fit 64 bits`);
  rangeLast(a, l, what);
}

function toBigIntExact(value: number, what: string): bigint {
  if (!Number.isSafeInteger(value)) fail('EINVAL', `${what} ${value} is not a safe integer; pass a bigint`);
  return BigInt(value);
}

function optionalU64(value: bigint | number | undefined, what: string): bigint | undefined {
  if (value === undefined) return undefined;
  const v = typeof value === 'bigint' ? value : toBigIntExact(value, what);
  if (v < 0n || v > U64_MAX) fail('EINVAL', `${what} ${formatHex(v)} is outside 0..2^64-1`);
  return v;
}

const EMPTY_WORDS = new BigUint64Array(0);

/**
 * A place in a list, for hot loops that walk ranges in order with no object per range: `address`
 * and `length` are the range under the cursor; `next()` steps to the following range, moving to the
 * next chunk at a chunk's end. Read no further than the list's last range: past it they are undefined.
 */
export class RangeCursor {
  /** The chunk holding the range under the cursor (shared storage: never written). */
  private words: BigUint64Array;
  /** Index in `words` of the range's address word. */
  private at: number;
  private chunk: number;
  private readonly chunks: readonly BigUint64Array[];

  /** @internal Made by {@link PackedRangeList.cursor}. */
  constructor(chunks: readonly BigUint64Array[], chunk: number, at: number) {
    this.chunks = chunks;
    this.chunk = chunk;
    this.words = chunks[chunk] ?? EMPTY_WORDS;
    this.at = at;
  }

  get address(): bigint {
    return this.words[this.at]!;
  }

  get length(): bigint {
    return this.words[this.at + 1]!;
  }

  next(): void {
    const at = this.at + 2;
    if (at < this.words.length || this.chunk + 1 >= this.chunks.length) {
      this.at = at;
      return;
    }
    this.chunk++;
    this.words = this.chunks[this.chunk]!;
    this.at = 0;
  }
}

/**
 * The shared implementation. `Self` is the concrete list type so derived lists keep their flavour.
 * Not exported as a constructor: make lists with the builders or the static factories.
 */
export abstract class PackedRangeList<A extends bigint, Self extends PackedRangeList<A, Self>> {
  /** Interleaved (address, length) words chunk by chunk, none empty, 2 × count in all. Private: the list is immutable. */
  protected readonly chunks: readonly BigUint64Array[];
  /** Sum of all lengths (may exceed 2^64 for many large ranges, hence bigint). */
  readonly totalLength: bigint;
  readonly count: number;
  /** The first range of each chunk, made at the first random access into a list of several chunks. */
  private starts: number[] | undefined;

  protected constructor(chunks: readonly BigUint64Array[], totalLength: bigint) {
    this.chunks = chunks;
    this.totalLength = totalLength;
    let words = 0;
    for (const c of chunks) words += c.length;
    this.count = words >>> 1;
  }

  /** Makes a list of the same flavour around checked chunks (none empty). */
  protected abstract wrap(chunks: readonly BigUint64Array[], totalLength: bigint): Self;
  /** The flavour's name for messages and toString. */
  protected abstract get kind(): string;

  /**
   * The packed (address, length) words themselves, chunk by chunk, shared with the caller (tests
   * and whole-list copies; hot loops use {@link cursor}). Never write to them: the list is immutable.
   */
  get packedChunks(): readonly BigUint64Array[] {
    return this.chunks;
  }

  get isEmpty(): boolean {
    return this.count === 0;
  }

  /** Exact metadata: 16 bytes a range, no header (see the file comment). */
  get metadataBytes(): number {
    return this.count * RANGE_BYTES;
  }

  /** A cursor on range `index` (0..count; at count it is past the end). */
  cursor(index = 0): RangeCursor {
    if (!Number.isInteger(index) || index < 0 || index > this.count) {
      fail('EINVAL', `${this.kind} cursor index ${index} is outside 0..${this.count}`);
    }
    if (this.chunks.length <= 1) return new RangeCursor(this.chunks, 0, index * 2);
    const c = this.chunkOf(index);
    return new RangeCursor(this.chunks, c, (index - this.starts![c]!) * 2);
  }

  addressAt(index: number): A {
    return this.wordAt(this.checkIndex(index) * 2) as A;
  }

  lengthAt(index: number): bigint {
    return this.wordAt(this.checkIndex(index) * 2 + 1);
  }

  /** Inclusive last byte of range `index` (never overflows: invariant 2). */
  lastAt(index: number): bigint {
    const i = this.checkIndex(index) * 2;
    return this.wordAt(i) + this.wordAt(i + 1) - 1n;
  }

  rangeAt(index: number): AddressRange<A> {
    const i = this.checkIndex(index) * 2;
    return { address: this.wordAt(i) as A, length: this.wordAt(i + 1) };
  }

  private checkIndex(index: number): number {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) {
      fail('EINVAL', `${this.kind} index ${index} is outside 0..${this.count - 1}`);
    }
    return index;
  }

  /** Word `i` of the list (i in 0..2 × count - 1). */
  private wordAt(i: number): bigint {
    if (this.chunks.length === 1) return this.chunks[0]![i]!;
    const c = this.chunkOf(i >>> 1);
    return this.chunks[c]![i - this.starts![c]! * 2]!;
  }

  /** The chunk holding range `index` (the last chunk for index = count); fills `starts`. */
  private chunkOf(index: number): number {
    if (this.starts === undefined) {
      const starts: number[] = [];
      let at = 0;
      for (const c of this.chunks) {
        starts.push(at);
        at += c.length >>> 1;
      }
      this.starts = starts;
    }
    const starts = this.starts;
    // The last chunk starting at or before `index` (binary search).
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (starts[mid]! <= index) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  *[Symbol.iterator](): IterableIterator<AddressRange<A>> {
    for (const w of this.chunks) {
      for (let i = 0; i < w.length; i += 2) yield { address: w[i]! as A, length: w[i + 1]! };
    }
  }

  /** Allocation-free walk for hot paths. */
  forEachRange(fn: (address: A, length: bigint, index: number) => void): void {
    let index = 0;
    for (const w of this.chunks) {
      for (let i = 0; i < w.length; i += 2) fn(w[i]! as A, w[i + 1]!, index++);
    }
  }

  /** A plain array copy (tests, JSON). */
  toArray(): AddressRange<A>[] {
    return [...this];
  }

  /**
   * The bytes `[offset, offset + length)` of the buffer the list describes, as a list of the same
   * flavour (the first and last ranges trimmed). `length` 0 gives the empty list. EINVAL when the
   * window is negative or runs past `totalLength`.
   */
  slice(offset: bigint | number, length: bigint | number): Self {
    const off = typeof offset === 'bigint' ? offset : toBigIntExact(offset, 'slice offset');
    const len = typeof length === 'bigint' ? length : toBigIntExact(length, 'slice length');
    if (off < 0n || len < 0n) fail('EINVAL', `slice offset ${off} and length ${len} must not be negative`);
    if (off + len > this.totalLength) {
      fail(
        'EINVAL',
        `slice ${formatHex(off)}+${formatHex(len)} runs past the ${formatHex(this.totalLength)} bytes of the ${this.kind}`,
      );
    }
    if (len === 0n) return this.wrap([], 0n);
    const cur = this.cursor();
    // Find the first range holding byte `off`.
    let skip = off;
    while (skip >= cur.length) {
      skip -= cur.length;
      cur.next();
    }
    const parts: bigint[] = [];
    let left = len;
    while (left > 0n) {
      const avail = cur.length - skip;
      let take = left;
      if (avail < take) take = avail;
      parts.push(cur.address + skip, take);
      left -= take;
      skip = 0n;
      cur.next();
    }
    return this.wrap([BigUint64Array.from(parts)], len);
  }

  /**
   * Cuts ranges so no piece is longer than `maxSegmentSize` and none crosses a multiple of
   * `segmentBoundaryMask + 1` (the DMA layer's rules). Pieces keep their order; nothing merges.
   * Returns `this` when nothing needs cutting.
   */
  split(rules: SplitRules): Self {
    const max = optionalU64(rules.maxSegmentSize, 'max segment size');
    const mask = optionalU64(rules.segmentBoundaryMask, 'segment boundary mask');
    if (max !== undefined && max === 0n) fail('EINVAL', 'max segment size must be positive');
    if (mask !== undefined && (mask & (mask + 1n)) !== 0n) {
      fail('EINVAL', `segment boundary mask ${formatHex(mask)} is not 2^n - 1`);
    }
    const maxLen = max ?? U64_MAX;
    const boundary = mask ?? U64_MAX;
    // First pass: count pieces, so the output is allocated exactly once.
    let pieces = 0;
    for (const w of this.chunks) {
      for (let i = 0; i < w.length; i += 2) pieces += countPieces(w[i]!, w[i + 1]!, maxLen, boundary);
    }
    // Nothing to cut: share the (immutable) storage.
    if (pieces === this.count) return this.wrap(this.chunks, this.totalLength);
    const out = new BigUint64Array(pieces * 2);
    let o = 0;
    for (const w of this.chunks) {
      for (let i = 0; i < w.length; i += 2) {
        let address = w[i]!;
        let left = w[i + 1]!;
        while (left > 0n) {
          // Bytes to the next boundary: (address | mask) - address + 1, at most 2^64 - address.
          const toBoundary = (address | boundary) - address + 1n;
          let take = maxLen;
          if (left < take) take = left;
          if (toBoundary < take) take = toBoundary;
          out[o++] = address;
          out[o++] = take;
          address += take;
          left -= take;
        }
      }
    }
    return this.wrap([out], this.totalLength);
  }

  /** This list's ranges followed by `other`'s (no merging at the seam; both lists' storage shared). */
  concat(other: Self): Self {
    return this.wrap([...this.chunks, ...other.chunks], this.totalLength + other.totalLength);
  }

  /** Same ranges in the same order (not merely the same bytes). */
  equals(other: PackedRangeList<A, Self>): boolean {
    if (this.count !== other.count || this.totalLength !== other.totalLength) return false;
    const a = this.cursor();
    const b = other.cursor();
    for (let i = 0; i < this.count; i++, a.next(), b.next()) {
      if (a.address !== b.address || a.length !== b.length) return false;
    }
    return true;
  }

  /** `PhyrList(3 ranges, 12K): [0x1000+4K, ...]`, at most `limit` ranges spelled out. */
  toString(limit = 8): string {
    const shown: string[] = [];
    const cur = this.cursor();
    for (let i = 0; i < this.count && shown.length < limit; i++, cur.next()) {
      shown.push(`${formatHex(cur.address)}+${formatSize(cur.length)}`);
    }
    if (this.count > limit) shown.push(`... ${this.count - limit} more`);
    const plural = this.count === 1 ? 'range' : 'ranges';
    return `${this.kind}(${this.count} ${plural}, ${formatSize(this.totalLength)}): [${shown.join(', ')}]`;
  }
}

/** Pieces one range is cut into by split(). */
function countPieces(address: bigint, length: bigint, maxLen: bigint, boundary: bigint): number {
  if (boundary === U64_MAX) {
    // Only the size rule applies: ceil(length / max).
    return Number((length + maxLen - 1n) / maxLen);
  }
  let pieces = 0;
  let a = address;
  let left = length;
  while (left > 0n) {
    const toBoundary = (a | boundary) - a + 1n;
    let take = maxLen;
    if (left < take) take = left;
    if (toBoundary < take) take = toBoundary;
    a += take;
    left -= take;
    pieces++;
  }
  return pieces;
}

function isPair(r: RangeInput): r is readonly [bigint | number, bigint | number] {
  return Array.isArray(r);
}

/** Validates RangeInput values and packs them. */
function packRanges(ranges: Iterable<RangeInput>, kind: string): [BigUint64Array, bigint] {
  const parts: bigint[] = [];
  let total = 0n;
  let index = 0;
  for (const r of ranges) {
    const [rawA, rawL] = isPair(r) ? r : [r.address, r.length];
    const what = `${kind} range ${index}`;
    checkRange(rawA, rawL, what);
    const a = BigInt(rawA);
    const l = BigInt(rawL);
    parts.push(a, l);
    total += l;
    index++;
  }
  return [BigUint64Array.from(parts), total];
}

/** An immutable packed list of physical ranges (the proposal's phyr array). */
export class PhyrList extends PackedRangeList<PhysAddr, PhyrList> {
  private static readonly EMPTY = new PhyrList([], 0n);

  protected wrap(chunks: readonly BigUint64Array[], totalLength: bigint): PhyrList {
    return chunks.length === 0 ? PhyrList.EMPTY : new PhyrList(chunks, totalLength);
  }

  protected get kind(): string {
    return 'PhyrList';
  }

  static empty(): PhyrList {
    return PhyrList.EMPTY;
  }

  /** Checked construction from ranges (each EINVAL on zero length or 2^64 overflow). No merging. */
  static fromRanges(ranges: Iterable<RangeInput>): PhyrList {
    const [words, total] = packRanges(ranges, 'PhyrList');
    return words.length === 0 ? PhyrList.EMPTY : new PhyrList([words], total);
  }

  /** @internal Used by the builder: chunks already checked, trimmed and non-empty. */
  static fromCheckedChunks(chunks: readonly BigUint64Array[], totalLength: bigint): PhyrList {
    return chunks.length === 0 ? PhyrList.EMPTY : new PhyrList(chunks, totalLength);
  }
}

/** An immutable packed list of mapped ranges: (DMA address, length), what a device is given. */
export class DmaRangeList extends PackedRangeList<DmaAddr, DmaRangeList> {
  private static readonly EMPTY = new DmaRangeList([], 0n);

  protected wrap(chunks: readonly BigUint64Array[], totalLength: bigint): DmaRangeList {
    return chunks.length === 0 ? DmaRangeList.EMPTY : new DmaRangeList(chunks, totalLength);
  }

  protected get kind(): string {
    return 'DmaRangeList';
  }

  static empty(): DmaRangeList {
    return DmaRangeList.EMPTY;
  }

  static fromRanges(ranges: Iterable<RangeInput>): DmaRangeList {
    const [words, total] = packRanges(ranges, 'DmaRangeList');
    return words.length === 0 ? DmaRangeList.EMPTY : new DmaRangeList([words], total);
  }

  /** @internal Used by the builder: chunks already checked, trimmed and non-empty. */
  static fromCheckedChunks(chunks: readonly BigUint64Array[], totalLength: bigint): DmaRangeList {
    return chunks.length === 0 ? DmaRangeList.EMPTY : new DmaRangeList(chunks, totalLength);
  }
}
