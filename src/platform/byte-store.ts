/**
 * A sparse byte store over the full 64-bit physical address space, so that DMA and CPU accesses move
 * real bytes. Memory is kept in 4 KiB chunks created on first write only: never-written bytes read as
 * zero, and a 4 TiB map costs nothing until written. Bytes that are a function of their offset (a
 * pattern written over a whole buffer) are kept as a described extent instead, and become a chunk
 * only where something else is written into them: a 4 GiB pattern costs one extent. It knows nothing
 * of what lives at an address: RAM, pmem and a BAR's MMIO are all just bytes here.
 */
import { fail, formatHex, U64_MAX } from '../core/index.ts';

const CHUNK_SHIFT = 12n;
const CHUNK_SIZE = 4096;
const CHUNK_OFFSET_MASK = 0xfffn;

/** Longest single read/write/copy: keeps every transfer an ordinary Uint8Array. */
export const BYTE_STORE_MAX_TRANSFER = 1 << 30;

function checkSpan(addr: bigint, length: number, what: string): void {
  if (addr < 0n || addr > U64_MAX) fail('EINVAL', `${what} address ${formatHex(addr)} is outside 0..2^64-1`);
  if (!Number.isSafeInteger(length) || length < 0 || length > BYTE_STORE_MAX_TRANSFER) {
    fail('EINVAL', `${what} length ${length} must be an integer in 0..${BYTE_STORE_MAX_TRANSFER}`);
  }
  if (length > 0 && addr + BigInt(length) - 1n > U64_MAX) {
    fail('EINVAL', `${what} of ${length} bytes at ${formatHex(addr)} runs past the end of the 64-bit space`);
  }
}

/** Bytes described by a function of their offset (a pattern), generated only when read. */
export interface ByteSource {
  /** Writes the source's bytes at offsets [offset, offset + out.length) into `out`. */
  fillInto(offset: bigint, out: Uint8Array): void;
}

/** A described extent: bytes [start, last] are `source` from offset `sourceStart` on. */
interface SourceExtent {
  readonly start: bigint;
  readonly last: bigint;
  readonly source: ByteSource;
  readonly sourceStart: bigint;
}

export class ByteStore {
  /** Chunk index (address >> 12) → its 4 KiB of bytes; a chunk overrides any extent under it. */
  private readonly chunks = new Map<bigint, Uint8Array>();
  /** Described extents, sorted and disjoint (bytes under no chunk read from here, else zero). */
  private extents: SourceExtent[] = [];

  /** Bytes of backing memory held (4 KiB per written chunk). */
  get residentBytes(): number {
    return this.chunks.size * CHUNK_SIZE;
  }

  get residentChunks(): number {
    return this.chunks.size;
  }

  /** Described extents held (each a few dozen bytes, whatever its length). */
  get describedExtents(): number {
    return this.extents.length;
  }

  /** Reads `length` bytes at `addr`; unwritten bytes are zero. */
  read(addr: bigint, length: number): Uint8Array {
    checkSpan(addr, length, 'read');
    const out = new Uint8Array(length);
    this.readInto(addr, out);
    return out;
  }

  /** Reads into a caller's buffer (no allocation for the result). */
  readInto(addr: bigint, out: Uint8Array): void {
    checkSpan(addr, out.length, 'read');
    let chunk = addr >> CHUNK_SHIFT;
    let offset = Number(addr & CHUNK_OFFSET_MASK);
    let done = 0;
    while (done < out.length) {
      const take = Math.min(CHUNK_SIZE - offset, out.length - done);
      const data = this.chunks.get(chunk);
      if (data !== undefined) out.set(data.subarray(offset, offset + take), done);
      else this.readDescribed((chunk << CHUNK_SHIFT) + BigInt(offset), out.subarray(done, done + take));
      done += take;
      offset = 0;
      chunk += 1n;
    }
  }

  /** Writes `bytes` at `addr`, creating chunks as needed. */
  write(addr: bigint, bytes: Uint8Array): void {
    checkSpan(addr, bytes.length, 'write');
    let chunk = addr >> CHUNK_SHIFT;
    let offset = Number(addr & CHUNK_OFFSET_MASK);
    let done = 0;
    while (done < bytes.length) {
      const take = Math.min(CHUNK_SIZE - offset, bytes.length - done);
      this.chunkFor(chunk).set(bytes.subarray(done, done + take), offset);
      done += take;
      offset = 0;
      chunk += 1n;
    }
  }

  /** Sets `length` bytes at `addr` to `value` (memset). Filling zeros never creates chunks. */
  fill(addr: bigint, length: number, value: number): void {
    checkSpan(addr, length, 'fill');
    this.writeSource(addr, BigInt(length), constantSource(value & 0xff), 0n);
  }

  /**
   * Writes `length` bytes of `source` (from its offset `sourceOffset`) at `addr` as a description:
   * only the partial chunks at either end become bytes. Zeros are stored as nothing at all.
   */
  writeSource(addr: bigint, length: bigint, source: ByteSource, sourceOffset: bigint): void {
    if (length === 0n) return;
    if (addr < 0n || length < 0n || addr + length - 1n > U64_MAX) {
      fail('EINVAL', `write of ${length} bytes at ${formatHex(addr)} runs outside the 64-bit space`);
    }
    const last = addr + length - 1n;
    const firstChunk = addr >> CHUNK_SHIFT;
    const lastChunk = last >> CHUNK_SHIFT;
    // Edge chunks only partly covered keep their other bytes: they become (or stay) real bytes.
    const headPartial = (addr & CHUNK_OFFSET_MASK) !== 0n || (firstChunk === lastChunk && length < 4096n);
    const tailPartial = ((last + 1n) & CHUNK_OFFSET_MASK) !== 0n;
    const edges = new Set<bigint>();
    if (headPartial) edges.add(firstChunk);
    if (tailPartial) edges.add(lastChunk);
    for (const chunk of edges) {
      const base = chunk << CHUNK_SHIFT;
      // Zeros over bytes that already read as zero change nothing: no chunk for them.
      if (source === ZERO_SOURCE && !this.chunks.has(chunk) && !this.describes(base, base + 4095n)) continue;
      const data = this.materialise(chunk);
      const from = addr > base ? addr : base;
      const to = last < base + 4095n ? last : base + 4095n;
      source.fillInto(
        sourceOffset + (from - addr),
        data.subarray(Number(from - base), Number(to - base) + 1),
      );
    }
    this.dropChunks(firstChunk, lastChunk, edges);
    this.cutExtents(addr, last);
    if (source !== ZERO_SOURCE) this.insertExtent({ start: addr, last, source, sourceStart: sourceOffset });
  }

  /** Copies `length` bytes from `from` to `to` with memmove semantics (overlap is safe). */
  copy(from: bigint, to: bigint, length: number): void {
    checkSpan(from, length, 'copy source');
    checkSpan(to, length, 'copy destination');
    if (length === 0 || from === to) return;
    // Bounded staging keeps a 1 GiB copy from needing 1 GiB extra; walk backwards when the
    // destination overlaps the source's tail, like memmove.
    const step = Math.min(length, 1 << 20);
    const buffer = new Uint8Array(step);
    const backwards = to > from && to < from + BigInt(length);
    if (backwards) {
      let left = length;
      while (left > 0) {
        const take = Math.min(step, left);
        left -= take;
        const view = buffer.subarray(0, take);
        this.readInto(from + BigInt(left), view);
        this.write(to + BigInt(left), view);
      }
    } else {
      for (let done = 0; done < length; ) {
        const take = Math.min(step, length - done);
        const view = buffer.subarray(0, take);
        this.readInto(from + BigInt(done), view);
        this.write(to + BigInt(done), view);
        done += take;
      }
    }
  }

  /** Drops every chunk and extent (everything reads zero again). */
  clear(): void {
    this.chunks.clear();
    this.extents = [];
  }

  /** Whether the chunk holding `addr` holds real bytes (written, and not cleared or described). */
  isResident(addr: bigint): boolean {
    return this.chunks.has(addr >> CHUNK_SHIFT);
  }

  private chunkFor(chunk: bigint): Uint8Array {
    return this.chunks.get(chunk) ?? this.materialise(chunk);
  }

  /** The chunk's bytes, made real from what is described there (or zeros) if not already. */
  private materialise(chunk: bigint): Uint8Array {
    let data = this.chunks.get(chunk);
    if (data === undefined) {
      data = new Uint8Array(CHUNK_SIZE);
      this.readDescribed(chunk << CHUNK_SHIFT, data);
      this.chunks.set(chunk, data);
    }
    return data;
  }

  /** Bytes at `addr` from the described extents (zero where none), ignoring chunks. */
  private readDescribed(addr: bigint, out: Uint8Array): void {
    out.fill(0);
    if (this.extents.length === 0) return;
    const last = addr + BigInt(out.length) - 1n;
    for (let i = this.firstExtentEndingAtOrAfter(addr); i < this.extents.length; i++) {
      const e = this.extents[i]!;
      if (e.start > last) break;
      const from = e.start > addr ? e.start : addr;
      const to = e.last < last ? e.last : last;
      e.source.fillInto(
        e.sourceStart + (from - e.start),
        out.subarray(Number(from - addr), Number(to - addr) + 1),
      );
    }
  }

  /** Whether any extent holds a byte of [start, last]. */
  private describes(start: bigint, last: bigint): boolean {
    const e = this.extents[this.firstExtentEndingAtOrAfter(start)];
    return e !== undefined && e.start <= last;
  }

  /** Index of the first extent whose last byte is at or after `addr`. */
  private firstExtentEndingAtOrAfter(addr: bigint): number {
    let lo = 0;
    let hi = this.extents.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.extents[mid]!.last < addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Takes [start, last] out of every extent, keeping the parts on either side. */
  private cutExtents(start: bigint, last: bigint): void {
    const first = this.firstExtentEndingAtOrAfter(start);
    let end = first;
    const kept: SourceExtent[] = [];
    while (end < this.extents.length && this.extents[end]!.start <= last) {
      const e = this.extents[end]!;
      if (e.start < start) kept.push({ ...e, last: start - 1n });
      if (e.last > last)
        kept.push({ ...e, start: last + 1n, sourceStart: e.sourceStart + (last + 1n - e.start) });
      end++;
    }
    this.extents.splice(first, end - first, ...kept);
  }

  private insertExtent(extent: SourceExtent): void {
    this.extents.splice(this.firstExtentEndingAtOrAfter(extent.start), 0, extent);
  }

  /** Drops the chunks in [firstChunk, lastChunk] except `keep`, by whichever walk is shorter. */
  private dropChunks(firstChunk: bigint, lastChunk: bigint, keep: ReadonlySet<bigint>): void {
    const span = lastChunk - firstChunk + 1n;
    if (span <= BigInt(this.chunks.size)) {
      for (let c = firstChunk; c <= lastChunk; c++) if (!keep.has(c)) this.chunks.delete(c);
      return;
    }
    for (const c of [...this.chunks.keys()]) {
      if (c >= firstChunk && c <= lastChunk && !keep.has(c)) this.chunks.delete(c);
    }
  }
}

const ZERO_SOURCE: ByteSource = { fillInto: (_offset, out) => out.fill(0) };

/** memset's bytes: every offset holds `value`. */
function constantSource(value: number): ByteSource {
  return value === 0 ? ZERO_SOURCE : { fillInto: (_offset, out) => out.fill(value) };
}
