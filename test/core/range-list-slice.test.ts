/**
 * PhyrList/DmaRangeList windows and accessors worked by hand: slice across ranges, the refusals,
 * index bounds, toString's elision and the segment rules' argument checks.
 */
import { describe, expect, test } from 'vitest';
import { DmaRangeList, PhyrList, PhyrListBuilder } from '../../src/core/index.ts';
import { expectErrno } from '../errno.ts';

// Three ranges: 0x1000+0x3000 | 0x10000+0x2000 | 0x40000+0x1000 (0x6000 bytes in all).
const list = PhyrList.fromRanges([
  [0x1000n, 0x3000n],
  [0x10000n, 0x2000n],
  [0x40000n, 0x1000n],
]);

describe('slice', () => {
  test('a window starting inside the second range and ending inside the third', () => {
    // Byte 0x3800 is 0x800 into range 1 (which starts at byte 0x3000 of the buffer).
    const window = list.slice(0x3800n, 0x2000n);
    expect(window.toArray()).toEqual([
      { address: 0x10800n, length: 0x1800n },
      { address: 0x40000n, length: 0x800n },
    ]);
    expect(window.totalLength).toBe(0x2000n);
  });

  test('Numbers work as offsets; the last byte alone; a whole range exactly', () => {
    expect(list.slice(0x5fff, 1).toArray()).toEqual([{ address: 0x40fffn, length: 1n }]);
    expect(list.slice(0x3000n, 0x2000n).toArray()).toEqual([{ address: 0x10000n, length: 0x2000n }]);
    expect(list.slice(0n, 0x6000n).equals(list)).toBe(true);
  });

  test('length 0 is the empty list of the same flavour, wherever it starts', () => {
    const empty = list.slice(0x4000n, 0n);
    expect(empty.count).toBe(0);
    expect(empty).toBeInstanceOf(PhyrList);
    const dma = DmaRangeList.fromRanges([[0x8000_0000n, 0x1000n]]);
    expect(dma.slice(0x1000n, 0n)).toBeInstanceOf(DmaRangeList);
    expect(dma.slice(0x1000n, 0n).count).toBe(0);
  });

  test('refusals: negative, past the end, a Number that is not an exact integer', () => {
    expectErrno(() => list.slice(-1n, 1n), 'EINVAL', /^slice offset -1 and length 1 must not be negative$/);
    expectErrno(() => list.slice(0n, -1n), 'EINVAL', /must not be negative/);
    expectErrno(
      () => list.slice(0x5001n, 0x1000n),
      'EINVAL',
      /^slice 0x5001\+0x1000 runs past the 0x6000 bytes of the PhyrList$/,
    );
    expect(list.slice(0x5000n, 0x1000n).count).toBe(1); // exactly to the end is fine
    expectErrno(() => list.slice(0.5, 1), 'EINVAL', /slice offset 0\.5 is not a safe integer/);
    expectErrno(() => list.slice(0, 2 ** 60), 'EINVAL', /slice length .* is not a safe integer/);
  });
});

describe('indexes and text', () => {
  test('an index outside the list names the valid span', () => {
    expect(list.addressAt(2)).toBe(0x40000n);
    expectErrno(() => list.addressAt(3), 'EINVAL', /^PhyrList index 3 is outside 0\.\.2$/);
    expectErrno(() => list.lengthAt(-1), 'EINVAL', /index -1 is outside/);
    expectErrno(() => list.rangeAt(1.5), 'EINVAL', /index 1\.5 is outside/);
  });

  test('toString spells out at most `limit` ranges and counts the rest', () => {
    expect(list.toString(2)).toBe('PhyrList(3 ranges, 24K): [0x1000+12K, 0x10000+8K, ... 1 more]');
    expect(list.toString(3)).toBe('PhyrList(3 ranges, 24K): [0x1000+12K, 0x10000+8K, 0x40000+4K]');
    expect(PhyrList.fromRanges([[0n, 0x1000n]]).toString()).toBe('PhyrList(1 range, 4K): [0x0+4K]');
  });

  test('random access into a list of several chunks finds each chunk (binary search over chunk starts)', () => {
    const b = new PhyrListBuilder({ merge: false, capacity: 1 });
    for (let i = 0; i < 200; i++) b.append(BigInt(i) * 0x10000n, BigInt(i + 1) * 0x1000n);
    const big = b.build();
    expect(big.packedChunks.length).toBeGreaterThan(2);
    for (const i of [199, 0, 1, 17, 100, 150, 63]) {
      expect([big.addressAt(i), big.lengthAt(i)]).toEqual([BigInt(i) * 0x10000n, BigInt(i + 1) * 0x1000n]);
    }
  });

  test('split refuses a zero max segment and a boundary mask that is not 2^n - 1', () => {
    expectErrno(() => list.split({ maxSegmentSize: 0n }), 'EINVAL', /^max segment size must be positive$/);
    expectErrno(
      () => list.split({ segmentBoundaryMask: 0x1000n }),
      'EINVAL',
      /segment boundary mask 0x1000 is not 2\^n - 1/,
    );
    expectErrno(() => list.split({ maxSegmentSize: -1n }), 'EINVAL', /max segment size/);
  });
});

describe('construction refusals and shared storage', () => {
  test('fromRanges names the list and the index of the bad range', () => {
    expectErrno(
      () =>
        PhyrList.fromRanges([
          [0x1000n, 0x1000n],
          [0x2000n, 0x1000n],
          [0x9000n, 0n],
        ]),
      'EINVAL',
      /^PhyrList range 2 at 0x9000 has length 0, must be positive$/,
    );
    expectErrno(
      () => DmaRangeList.fromRanges([{ address: -2n, length: 1n }]),
      'EINVAL',
      /^DmaRangeList range 0 address -0x2 is outside 0\.\.2\^64-1$/,
    );
    expectErrno(
      () =>
        PhyrList.fromRanges([
          [0x1000n, 1n],
          [0.5, 1],
        ]),
      'EINVAL',
      /^PhyrList range 1 address 0\.5 is not a safe integer; pass a bigint$/,
    );
    expectErrno(
      () => PhyrList.fromRanges([[0x1000, 2 ** 60]]),
      'EINVAL',
      /^PhyrList range 0 length 1152921504606847000 is not a safe integer/,
    );
    expectErrno(
      () => PhyrList.fromRanges([[0n, 1n << 64n]]),
      'EINVAL',
      /^PhyrList range 0 length 0x10000000000000000 does not fit 64 bits$/,
    );
  });

  test('a range of length 2^64 - 1 from address 1 reaches the top exactly and is accepted', () => {
    const top = PhyrList.fromRanges([[1n, (1n << 64n) - 1n]]);
    expect([top.addressAt(0), top.lengthAt(0), top.lastAt(0)]).toEqual([
      1n,
      (1n << 64n) - 1n,
      (1n << 64n) - 1n,
    ]);
  });

  test('a builder names a bad range plainly', () => {
    expectErrno(
      () => new PhyrListBuilder().append(-1n, 1n),
      'EINVAL',
      /^range address -0x1 is outside 0\.\.2\^64-1$/,
    );
  });

  test('an empty window or list is the flavour’s one empty list', () => {
    expect(list.slice(0x2000n, 0n)).toBe(PhyrList.empty());
    expect(PhyrList.fromRanges([])).toBe(PhyrList.empty());
    const dma = DmaRangeList.fromRanges([[0x8000_0000n, 0x1000n]]);
    expect(dma.slice(0n, 0n)).toBe(DmaRangeList.empty());
    expect(DmaRangeList.fromRanges([])).toBe(DmaRangeList.empty());
  });

  test('split with nothing to cut shares every chunk of a list of several', () => {
    const joined = list.concat(PhyrList.fromRanges([[0x80000n, 0x1000n]]));
    expect(joined.packedChunks.length).toBe(2);
    const same = joined.split({ maxSegmentSize: 0x3000n, segmentBoundaryMask: 0xffff_ffffn });
    expect(same.packedChunks.length).toBe(2);
    expect(same.packedChunks[0]).toBe(joined.packedChunks[0]);
    expect(same.packedChunks[1]).toBe(joined.packedChunks[1]);
    const cut = joined.split({ maxSegmentSize: 0x2000n });
    expect(cut.packedChunks.length).toBe(1);
    expect(cut.toArray()).toEqual([
      { address: 0x1000n, length: 0x2000n },
      { address: 0x3000n, length: 0x1000n },
      { address: 0x10000n, length: 0x2000n },
      { address: 0x40000n, length: 0x1000n },
      { address: 0x80000n, length: 0x1000n },
    ]);
  });

  test('split names a bad rule argument', () => {
    expectErrno(
      () => list.split({ maxSegmentSize: 1n << 64n }),
      'EINVAL',
      /^max segment size 0x10000000000000000 is outside/,
    );
    expectErrno(
      () => list.split({ segmentBoundaryMask: -1n }),
      'EINVAL',
      /^segment boundary mask -0x1 is outside 0\.\.2\^64-1$/,
    );
    expectErrno(
      () => list.split({ maxSegmentSize: 0.5 }),
      'EINVAL',
      /^max segment size 0\.5 is not a safe integer/,
    );
  });
});

describe('cursor', () => {
  test('stepped past the last range it reads undefined (it never throws), in one chunk or several', () => {
    const c = list.cursor(2);
    expect([c.address, c.length]).toEqual([0x40000n, 0x1000n]);
    c.next();
    expect([c.address, c.length]).toEqual([undefined, undefined]);
    const joined = list.concat(PhyrList.fromRanges([[0x80000n, 0x2000n]]));
    const d = joined.cursor(2);
    d.next();
    expect([d.address, d.length]).toEqual([0x80000n, 0x2000n]);
    d.next();
    expect([d.address, d.length]).toEqual([undefined, undefined]);
  });
});
