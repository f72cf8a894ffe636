/**
 * PhyrListBuilder at its edges, worked by hand: option and range refusals (64-bit limits), merges
 * across a chunk boundary and after a build (copy on write), a merge whose length would wrap 2^64,
 * totals above 2^64, appendList and reset.
 */
import { describe, expect, test } from 'vitest';
import { PhyrList, PhyrListBuilder, U64_MAX } from '../../src/core/index.ts';
import { expectErrno } from '../errno.ts';

const TOP = 1n << 64n;

describe('refusals', () => {
  test('options: max segment size 1..2^64-1, capacity a count', () => {
    expectErrno(
      () => new PhyrListBuilder({ maxSegmentSize: 0n }),
      'EINVAL',
      /^max segment size 0x0 must be 1\.\.2\^64-1$/,
    );
    expectErrno(
      () => new PhyrListBuilder({ maxSegmentSize: TOP }),
      'EINVAL',
      /max segment size 0x10000000000000000 must be/,
    );
    expectErrno(() => new PhyrListBuilder({ maxSegmentSize: -1n }), 'EINVAL', /max segment size/);
    expect(() => new PhyrListBuilder({ maxSegmentSize: U64_MAX })).not.toThrow();
    expect(() => new PhyrListBuilder({ maxSegmentSize: 1 })).not.toThrow();
    expectErrno(() => new PhyrListBuilder({ capacity: -1 }), 'EINVAL', /^capacity -1 is not a count$/);
    expectErrno(() => new PhyrListBuilder({ capacity: 1.5 }), 'EINVAL', /^capacity 1\.5 is not a count$/);
    expect(new PhyrListBuilder({ capacity: 0 }).append(0x1000n, 1n).build().count).toBe(1);
  });

  test('ranges: positive length, inside 0..2^64, never running past 2^64', () => {
    const b = new PhyrListBuilder();
    expectErrno(() => b.append(0x1000n, 0n), 'EINVAL', /^range at 0x1000 has length 0, must be positive$/);
    expectErrno(() => b.append(-1n, 1n), 'EINVAL', /address -0x1 is outside/);
    expectErrno(() => b.append(TOP, 1n), 'EINVAL', /address 0x10000000000000000 is outside/);
    expectErrno(() => b.append(0n, TOP), 'EINVAL', /length 0x10000000000000000 does not fit 64 bits/);
    expectErrno(
      () => b.append(TOP - 0x1000n, 0x1001n),
      'EINVAL',
      /^range 0xfffffffffffff000 \+ 0x1001 runs past the end of the 64-bit space$/,
    );
    // The edges of the fast check (a truncated add): length 0 at address 0 (its last byte wraps to
    // 2^64 - 1), and length 2^64 - 1 from an address above 1 (its last byte wraps to address - 2).
    expectErrno(() => b.append(0n, 0n), 'EINVAL', /^range at 0x0 has length 0, must be positive$/);
    expectErrno(() => b.append(2n, U64_MAX), 'EINVAL', /^range 0x2 \+ 0xffffffffffffffff runs past/);
    expectErrno(() => b.append(0x10n, U64_MAX), 'EINVAL', /^range 0x10 \+ 0xffffffffffffffff runs past/);
    expect(b.count).toBe(0);
    // Address 0 is valid; so is a range ending exactly at 2^64 and one of length 2^64 - 1.
    b.append(0n, 1n)
      .append(TOP - 0x1000n, 0x1000n)
      .append(1n, U64_MAX);
    expect(b.build().toArray()).toEqual([
      { address: 0n, length: 1n },
      { address: TOP - 0x1000n, length: 0x1000n },
      { address: 1n, length: U64_MAX },
    ]);
  });
});

describe('merging', () => {
  test('a range contiguous with the last one of a full chunk merges into it', () => {
    // capacity 1: the first chunk holds one range, so the second append starts a new chunk.
    const b = new PhyrListBuilder({ capacity: 1 });
    b.append(0x1000n, 0x1000n);
    b.append(0x5000n, 0x1000n); // not contiguous: fills the next chunk's first slot
    b.append(0x6000n, 0x1000n); // contiguous with 0x5000: merges
    const list = b.build();
    expect(list.toArray()).toEqual([
      { address: 0x1000n, length: 0x1000n },
      { address: 0x5000n, length: 0x2000n },
    ]);
    // Right after a chunk filled: the previous range is the last word pair of the full chunk.
    const c = new PhyrListBuilder({ capacity: 1 });
    c.append(0x1000n, 0x1000n).append(0x2000n, 0x1000n);
    expect(c.build().toArray()).toEqual([{ address: 0x1000n, length: 0x2000n }]);
  });

  test('a merge into a range a built list holds leaves that list as it was', () => {
    for (const capacity of [1, 16]) {
      const b = new PhyrListBuilder({ capacity });
      b.append(0x1000n, 0x1000n);
      const before = b.build();
      b.append(0x2000n, 0x1000n);
      const after = b.build();
      expect(before.toArray()).toEqual([{ address: 0x1000n, length: 0x1000n }]);
      expect(after.toArray()).toEqual([{ address: 0x1000n, length: 0x2000n }]);
      // The chunk the old range was alone in is dropped, not kept empty: a list's chunks are never empty.
      expect(after.packedChunks.map((c) => c.length)).toEqual([2]);
      // reset after a build: the built list keeps its ranges, the builder starts empty.
      b.reset();
      b.append(0x9000n, 0x1000n);
      expect(after.toArray()).toEqual([{ address: 0x1000n, length: 0x2000n }]);
      expect(b.build().toArray()).toEqual([{ address: 0x9000n, length: 0x1000n }]);
    }
  });

  test('a merge no built list can see is written in place: the list stays one chunk', () => {
    const b = new PhyrListBuilder();
    b.append(0x1000n, 0x1000n).append(0x8000n, 0x1000n).append(0x9000n, 0x1000n);
    const list = b.build();
    expect(list.packedChunks.map((c) => c.length)).toEqual([4]);
    expect(list.toArray()).toEqual([
      { address: 0x1000n, length: 0x1000n },
      { address: 0x8000n, length: 0x2000n },
    ]);
  });

  test('after reset, a range contiguous with a forgotten one does not merge into it', () => {
    // capacity 2: both ranges fill the first chunk, which reset keeps (no built list holds it).
    const b = new PhyrListBuilder({ capacity: 2 });
    b.append(0x1000n, 0x1000n).append(0x8000n, 0x1000n);
    b.reset();
    b.append(0x9000n, 0x1000n).append(0x2000n, 0x1000n);
    expect(b.build().toArray()).toEqual([
      { address: 0x9000n, length: 0x1000n },
      { address: 0x2000n, length: 0x1000n },
    ]);
  });

  test('lengths that would wrap 2^64 when merged stay two ranges', () => {
    const half = 1n << 63n;
    const b = new PhyrListBuilder();
    b.append(0n, half).append(half, half);
    const list = b.build();
    expect(list.count).toBe(2);
    expect(list.totalLength).toBe(TOP); // the total is exact past 2^64
  });

  test('totals of many huge ranges keep their carries', () => {
    const b = new PhyrListBuilder({ merge: false });
    for (let i = 0; i < 5; i++) b.append(0n, U64_MAX);
    expect(b.totalLength).toBe(5n * U64_MAX);
    expect(b.build().totalLength).toBe(5n * U64_MAX);
  });

  test('appendList merges at the seam and inside, by the same rule', () => {
    const b = new PhyrListBuilder();
    b.append(0x1000n, 0x1000n);
    b.appendList(
      PhyrList.fromRanges([
        [0x2000n, 0x1000n],
        [0x8000n, 0x1000n],
      ]),
    );
    expect(b.build().toArray()).toEqual([
      { address: 0x1000n, length: 0x2000n },
      { address: 0x8000n, length: 0x1000n },
    ]);
  });
});
