/**
 * A sparse byte store over the full 64-bit physical address space, so that DMA and CPU accesses move
 * real bytes. Memory is kept in 4 KiB chunks created on first write only: never-written bytes read as
 * zero, and a 4 TiB map costs nothing until written. It knows nothing of what lives at an address:
 * RAM, pmem and a BAR's MMIO are all just bytes here (the memory map says which is which).
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

export class ByteStore {
  /** Chunk index (address >> 12) → its 4 KiB of bytes. */
  private readonly chunks = new Map<bigint, Uint8Array>();

  /** Bytes of backing memory held (4 KiB per written chunk). */
  get residentBytes(): number {
    return this.chunks.size * CHUNK_SIZE;
  }

  get residentChunks(): number {
    return this.chunks.size;
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
      if (data === undefined) out.fill(0, done, done + take);
      else out.set(data.subarray(offset, offset + take), done);
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
    const byte = value & 0xff;
    let chunk = addr >> CHUNK_SHIFT;
    let offset = Number(addr & CHUNK_OFFSET_MASK);
    let done = 0;
    while (done < length) {
      const take = Math.min(CHUNK_SIZE - offset, length - done);
      if (byte === 0) {
        const data = this.chunks.get(chunk);
        if (data !== undefined) {
          if (take === CHUNK_SIZE) this.chunks.delete(chunk);
          else data.fill(0, offset, offset + take);
        }
      } else {
        this.chunkFor(chunk).fill(byte, offset, offset + take);
      }
      done += take;
      offset = 0;
      chunk += 1n;
    }
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

  /** Drops every chunk (everything reads zero again). */
  clear(): void {
    this.chunks.clear();
  }

  /** Whether any byte of the chunk holding `addr` was ever written (and not cleared). */
  isResident(addr: bigint): boolean {
    return this.chunks.has(addr >> CHUNK_SHIFT);
  }

  private chunkFor(chunk: bigint): Uint8Array {
    let data = this.chunks.get(chunk);
    if (data === undefined) {
      data = new Uint8Array(CHUNK_SIZE);
      this.chunks.set(chunk, data);
    }
    return data;
  }
}
