/**
 * Byte patterns for DMA and CPU reads and writes. A pattern is a pure function of a byte's offset
 * within its buffer, so a write of any range and a later read of any sub-range are checked against
 * the same function without the scenario having to repeat offsets.
 *
 * Written forms (a YAML string):
 * - `fill:0xa5`   every byte is 0xa5 (`zero` is `fill:0`)
 * - `seq` / `seq:7` byte at offset o is (o + 7) & 0xff
 * - `random:42`  a seeded hash of the offset (deterministic, not a PRNG stream)
 */
import { fail, type SourceLocation } from '../core/index.ts';
import type { ByteSource } from '../platform/index.ts';

export type Pattern =
  | { readonly kind: 'fill'; readonly value: number }
  | { readonly kind: 'seq'; readonly start: number }
  | { readonly kind: 'random'; readonly seed: number };

const PATTERN_SYNTAX =
  /^(?:(zero)|fill:(0x[0-9a-f]+|\d+)|seq(?::(0x[0-9a-f]+|\d+))?|random:(0x[0-9a-f]+|\d+))$/i;

/** Parses the written form; EINVAL with the accepted forms otherwise. */
export function parsePattern(text: string, location?: SourceLocation): Pattern {
  const match = PATTERN_SYNTAX.exec(text.trim());
  if (match === null) {
    fail('EINVAL', `pattern "${text}" is not one of fill:BYTE, zero, seq, seq:N, random:SEED`, location);
  }
  if (match[1] !== undefined) return { kind: 'fill', value: 0 };
  if (match[2] !== undefined) {
    const value = Number(match[2]);
    if (value > 0xff) fail('EINVAL', `pattern fill byte ${match[2]} does not fit in a byte`, location);
    return { kind: 'fill', value };
  }
  if (match[4] !== undefined) return { kind: 'random', seed: Number(BigInt(match[4]) & 0xffff_ffffn) };
  return { kind: 'seq', start: match[3] === undefined ? 0 : Number(BigInt(match[3]) & 0xffn) };
}

export function formatPattern(pattern: Pattern): string {
  switch (pattern.kind) {
    case 'fill':
      return `fill:0x${pattern.value.toString(16).padStart(2, '0')}`;
    case 'seq':
      return pattern.start === 0 ? 'seq' : `seq:${pattern.start}`;
    case 'random':
      return `random:${pattern.seed}`;
  }
}

const TWO_32 = 2 ** 32;

/**
 * A 32-bit integer hash (a murmur3-style finalizer) of seed and a 64-bit offset given as its low and
 * high 32-bit halves, all in Number arithmetic (a BigInt a byte cost most of a run's time).
 */
function hashByte(seed: number, lo: number, hi: number): number {
  let h = Math.imul(seed ^ lo ^ hi, 0x9e3779b1);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h & 0xff;
}

/** Low and high 32-bit halves of a 64-bit offset, carried as Numbers through a run of bytes. */
function halves(offset: bigint): [number, number] {
  return [Number(offset & 0xffff_ffffn), Number((offset >> 32n) & 0xffff_ffffn)];
}

/** The byte `seq` puts at `offset` (later bytes count up from it, wrapping at 0xff). */
function seqFirst(start: number, offset: bigint): number {
  return Number((offset + BigInt(start)) & 0xffn);
}

/** Writes the bytes of `pattern` at buffer offsets [offset, offset + out.length) into `out`. */
export function fillPattern(pattern: Pattern, offset: bigint, out: Uint8Array): void {
  const length = out.length;
  switch (pattern.kind) {
    case 'fill':
      out.fill(pattern.value);
      return;
    case 'seq': {
      const first = seqFirst(pattern.start, offset);
      for (let i = 0; i < length; i++) out[i] = (first + i) & 0xff;
      return;
    }
    case 'random': {
      const seed = pattern.seed;
      let [lo, hi] = halves(offset);
      for (let i = 0; i < length; i++) {
        out[i] = hashByte(seed, lo, hi);
        if (++lo === TWO_32) {
          lo = 0;
          hi = (hi + 1) >>> 0;
        }
      }
      return;
    }
  }
}

/** The pattern as a byte store's described source: offsets are buffer offsets. */
export function patternSource(pattern: Pattern): ByteSource {
  return { fillInto: (offset, out) => fillPattern(pattern, offset, out) };
}

/** The bytes of `pattern` at buffer offsets [offset, offset + length). */
export function patternBytes(pattern: Pattern, offset: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  fillPattern(pattern, offset, out);
  return out;
}

/**
 * Index of the first byte of `bytes` (at buffer offset `offset`) that differs from the pattern, or
 * -1. Each expected byte is computed as it is compared: no copy of the pattern is made.
 */
export function firstMismatch(pattern: Pattern, offset: bigint, bytes: Uint8Array): number {
  const length = bytes.length;
  switch (pattern.kind) {
    case 'fill': {
      const value = pattern.value;
      for (let i = 0; i < length; i++) if (bytes[i] !== value) return i;
      return -1;
    }
    case 'seq': {
      const first = seqFirst(pattern.start, offset);
      for (let i = 0; i < length; i++) if (bytes[i] !== ((first + i) & 0xff)) return i;
      return -1;
    }
    case 'random': {
      const seed = pattern.seed;
      let [lo, hi] = halves(offset);
      for (let i = 0; i < length; i++) {
        if (bytes[i] !== hashByte(seed, lo, hi)) return i;
        if (++lo === TWO_32) {
          lo = 0;
          hi = (hi + 1) >>> 0;
        }
      }
      return -1;
    }
  }
}
