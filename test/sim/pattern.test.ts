import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { firstMismatch, parsePattern, patternBytes } from '../../src/sim/index.ts';

/**
 * The BigInt pattern hash physr shipped before the Number rewrite, kept verbatim as an independent
 * reference: the new one must give the same byte for every seed and 64-bit offset.
 */
function referenceHashByte(seed: number, offset: bigint): number {
  let h = (seed ^ Number(offset & 0xffff_ffffn)) >>> 0;
  h = Math.imul(h ^ Number((offset >> 32n) & 0xffff_ffffn), 0x9e3779b1);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h & 0xff;
}

function referenceBytes(seed: number, offset: bigint, length: number): number[] {
  return Array.from({ length }, (_, i) => referenceHashByte(seed, offset + BigInt(i)));
}

describe('random pattern (Number hash vs the BigInt reference)', () => {
  const offsets = fc.oneof(
    fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    // Just below a 2^32 boundary, so a run carries into the high half (and at 2^64, wraps).
    fc
      .tuple(fc.bigInt({ min: 1n, max: 1n << 32n }), fc.integer({ min: 1, max: 300 }))
      .map(([hi, back]) => ((hi << 32n) - BigInt(back)) & ((1n << 64n) - 1n)),
  );

  test.prop([fc.integer({ min: 0, max: 2 ** 32 - 1 }), offsets, fc.integer({ min: 0, max: 600 })])(
    'every byte equals the reference',
    (seed, offset, length) => {
      const got = patternBytes(parsePattern(`random:${seed}`), offset, length);
      expect([...got]).toEqual(referenceBytes(seed, offset, length));
    },
  );

  test('a run across the 2^32 carry', () => {
    expect([...patternBytes(parsePattern('random:42'), 0xffff_fffen, 4)]).toEqual(
      referenceBytes(42, 0xffff_fffen, 4),
    );
  });

  test.prop([fc.integer({ min: 0, max: 2 ** 32 - 1 }), offsets, fc.integer({ min: 1, max: 600 }), fc.nat()])(
    'firstMismatch finds the first byte that differs from the reference, without a copy',
    (seed, offset, length, flip) => {
      const bytes = Uint8Array.from(referenceBytes(seed, offset, length));
      const p = parsePattern(`random:${seed}`);
      expect(firstMismatch(p, offset, bytes)).toBe(-1);
      const at = flip % length;
      bytes[at] = bytes[at]! ^ 0x80;
      expect(firstMismatch(p, offset, bytes)).toBe(at);
    },
  );
});
