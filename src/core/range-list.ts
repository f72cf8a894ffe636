/**
 * Packed range lists: the heart of physr.
 *
 * A range list is an immutable sequence of (address, length) ranges held in ONE `BigUint64Array`
 * with the two words of each range interleaved: `[address0, length0, address1, length1, ...]`,
 * exactly 16 bytes a range, no per-range objects. Two flavours share all code:
 *  - {@link PhyrList}: CPU physical ranges (the proposal's `struct phyr` array);
 *  - {@link DmaRangeList}: the mapped result, (DMA address, length) as a device sees it.
 *
 * Invariants (checked on every way in: builders, `fromRanges`, `slice`, `split`, `concat`):
 *  1. every length is > 0 and fits a u64;
 *  2. every range ends at or below 2^64 - 1 (`address + length - 1 <= U64_MAX`, see rangeLast);
 *  3. the storage holds exactly `2 * count` words (builders trim), so `metadataBytes` is exact;
 *  4. the list never changes after construction (the storage is private; derived lists copy).
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

const EMPTY_WORDS = new BigUint64Array(0);

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

/**
 * The shared implementation. `Self` is the concrete list type so derived lists keep their flavour.
 * Not exported as a constructor: make lists with the builders or the static factories.
 */
export abstract class PackedRangeList<A extends bigint, Self extends PackedRangeList<A, Self>> {
  /** Interleaved (address, length) words, exactly 2 × count. Private: the list is immutable. */
  protected readonly words: BigUint64Array;
  /** Sum of all lengths (may exceed 2^64 for many large ranges, hence bigint). */
  readonly totalLength: bigint;

  protected constructor(words: BigUint64Array, totalLength: bigint) {
    this.words = words;
    this.totalLength = totalLength;
  }

  /** Makes a list of the same flavour around checked words. */
  protected abstract wrap(words: BigUint64Array, totalLength: bigint): Self;
  /** The flavour's name for messages and toString. */
  protected abstract get kind(): string;

  get count(): number {
    return this.words.length >>> 1;
  }

  /**
   * The packed (address, length) words themselves, shared with the caller, for hot loops that read
   * a whole list (IoPageTable.mapList). Never write to them: the list is immutable.
   */
  get packedWords(): BigUint64Array {
    return this.words;
  }

  get isEmpty(): boolean {
    return this.words.length === 0;
  }

  /** Exact metadata: 16 bytes a range, no header (see the file comment). */
  get metadataBytes(): number {
    return this.words.length * 8;
  }

  addressAt(index: number): A {
    return this.words[this.checkIndex(index) * 2]! as A;
  }

  lengthAt(index: number): bigint {
    return this.words[this.checkIndex(index) * 2 + 1]!;
  }

  /** Inclusive last byte of range `index` (never overflows: invariant 2). */
  lastAt(index: number): bigint {
    const i = this.checkIndex(index) * 2;
    return this.words[i]! + this.words[i + 1]! - 1n;
  }

  rangeAt(index: number): AddressRange<A> {
    const i = this.checkIndex(index) * 2;
    return { address: this.words[i]! as A, length: this.words[i + 1]! };
  }

  private checkIndex(index: number): number {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) {
      fail('EINVAL', `${this.kind} index ${index} is outside 0..${this.count - 1}`);
    }
    return index;
  }

  *[Symbol.iterator](): IterableIterator<AddressRange<A>> {
    const w = this.words;
    for (let i = 0; i < w.length; i += 2) yield { address: w[i]! as A, length: w[i + 1]! };
  }

  /** Allocation-free walk for hot paths. */
  forEachRange(fn: (address: A, length: bigint, index: number) => void): void {
    const w = this.words;
    for (let i = 0; i < w.length; i += 2) fn(w[i]! as A, w[i + 1]!, i >>> 1);
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
    if (len === 0n) return this.wrap(EMPTY_WORDS, 0n);
    const w = this.words;
    // Find the first range holding byte `off`.
    let i = 0;
    let skip = off;
    while (skip >= w[i + 1]!) {
      skip -= w[i + 1]!;
      i += 2;
    }
    const parts: bigint[] = [];
    let left = len;
    while (left > 0n) {
      const avail = w[i + 1]! - skip;
      let take = left;
      if (avail < take) take = avail;
      parts.push(w[i]! + skip, take);
      left -= take;
      skip = 0n;
      i += 2;
    }
    return this.wrap(BigUint64Array.from(parts), len);
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
    const w = this.words;
    // First pass: count pieces, so the output is allocated exactly once.
    let pieces = 0;
    for (let i = 0; i < w.length; i += 2) pieces += countPieces(w[i]!, w[i + 1]!, maxLen, boundary);
    // Nothing to cut: share the (immutable) storage.
    if (pieces === this.count) return this.wrap(w, this.totalLength);
    const out = new BigUint64Array(pieces * 2);
    let o = 0;
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
    return this.wrap(out, this.totalLength);
  }

  /** This list's ranges followed by `other`'s (no merging at the seam). */
  concat(other: Self): Self {
    const out = new BigUint64Array(this.words.length + other.words.length);
    out.set(this.words, 0);
    out.set(other.words, this.words.length);
    return this.wrap(out, this.totalLength + other.totalLength);
  }

  /** Same ranges in the same order (not merely the same bytes). */
  equals(other: PackedRangeList<A, Self>): boolean {
    const a = this.words;
    const b = other.words;
    if (a.length !== b.length || this.totalLength !== other.totalLength) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  /** `PhyrList(3 ranges, 12K): [0x1000+4K, ...]`, at most `limit` ranges spelled out. */
  toString(limit = 8): string {
    const shown: string[] = [];
    const w = this.words;
    for (let i = 0; i < w.length && shown.length < limit; i += 2) {
      shown.push(`${formatHex(w[i]!)}+${formatSize(w[i + 1]!)}`);
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
  private static readonly EMPTY = new PhyrList(EMPTY_WORDS, 0n);

  protected wrap(words: BigUint64Array, totalLength: bigint): PhyrList {
    return words.length === 0 ? PhyrList.EMPTY : new PhyrList(words, totalLength);
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
    return words.length === 0 ? PhyrList.EMPTY : new PhyrList(words, total);
  }

  /** @internal Used by the builder: words already checked and trimmed. */
  static fromCheckedWords(words: BigUint64Array, totalLength: bigint): PhyrList {
    return words.length === 0 ? PhyrList.EMPTY : new PhyrList(words, totalLength);
  }
}

/** An immutable packed list of mapped ranges: (DMA address, length), what a device is given. */
export class DmaRangeList extends PackedRangeList<DmaAddr, DmaRangeList> {
  private static readonly EMPTY = new DmaRangeList(EMPTY_WORDS, 0n);

  protected wrap(words: BigUint64Array, totalLength: bigint): DmaRangeList {
    return words.length === 0 ? DmaRangeList.EMPTY : new DmaRangeList(words, totalLength);
  }

  protected get kind(): string {
    return 'DmaRangeList';
  }

  static empty(): DmaRangeList {
    return DmaRangeList.EMPTY;
  }

  static fromRanges(ranges: Iterable<RangeInput>): DmaRangeList {
    const [words, total] = packRanges(ranges, 'DmaRangeList');
    return words.length === 0 ? DmaRangeList.EMPTY : new DmaRangeList(words, total);
  }

  /** @internal Used by the builder: words already checked and trimmed. */
  static fromCheckedWords(words: BigUint64Array, totalLength: bigint): DmaRangeList {
    return words.length === 0 ? DmaRangeList.EMPTY : new DmaRangeList(words, totalLength);
  }
}
