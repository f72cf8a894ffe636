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

/**
 * Walks the pattern's bytes at buffer offsets [offset, offset + length), handing each to `visit`
 * with its index; stops early when `visit` returns true. The offset's halves are split once and
 * carried, so offsets up to 2^64 stay exact.
 */
function scanPattern(
  pattern: Pattern,
  offset: bigint,
  length: number,
  visit: (index: number, byte: number) => boolean,
): number {
  switch (pattern.kind) {
    case 'fill':
      for (let i = 0; i < length; i++) if (visit(i, pattern.value)) return i;
      return -1;
    case 'seq': {
      const first = Number((offset + BigInt(pattern.start)) & 0xffn);
      for (let i = 0; i < length; i++) if (visit(i, (first + i) & 0xff)) return i;
      return -1;
    }
    case 'random': {
      let lo = Number(offset & 0xffff_ffffn);
      let hi = Number((offset >> 32n) & 0xffff_ffffn);
      for (let i = 0; i < length; i++) {
        if (visit(i, hashByte(pattern.seed, lo, hi))) return i;
        lo += 1;
        if (lo === TWO_32) {
          lo = 0;
          hi = (hi + 1) >>> 0;
        }
      }
      return -1;
    }
  }
}

/** Writes the bytes of `pattern` at buffer offsets [offset, offset + out.length) into `out`. */
export function fillPattern(pattern: Pattern, offset: bigint, out: Uint8Array): void {
  if (pattern.kind === 'fill') {
    out.fill(pattern.value);
    return;
  }
  scanPattern(pattern, offset, out.length, (i, byte) => {
    out[i] = byte;
    return false;
  });
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
  return scanPattern(pattern, offset, bytes.length, (i, byte) => bytes[i] !== byte);
}
