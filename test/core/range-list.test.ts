/**
 * PhyrList / DmaRangeList and their builders against a trivial reference: a plain array of
 * [start, end) byte intervals (bigint, end exclusive and allowed to be 2^64).
 */
import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import {
  DmaRangeList,
  DmaRangeListBuilder,
  isPhysrError,
  PhyrList,
  PhyrListBuilder,
  U64_MAX,
} from '../../src/core/index.ts';

type Interval = { start: bigint; end: bigint };
const TOP = 1n << 64n;

/** Intervals of a list. */
const intervalsOf = (list: Iterable<{ address: bigint; length: bigint }>): Interval[] =>
  [...list].map((r) => ({ start: r.address, end: r.address + r.length }));

/** The byte sequence in canonical form: consecutive touching intervals joined. */
function canonical(intervals: readonly Interval[]): Interval[] {
  const out: Interval[] = [];
  for (const iv of intervals) {
    const last = out[out.length - 1];
    if (last !== undefined && last.end === iv.start) last.end = iv.end;
    else out.push({ ...iv });
  }
  return out;
}

/** Reference builder: join whole intervals while contiguous and within max. */
function referenceMerge(intervals: readonly Interval[], max?: bigint): Interval[] {
  const out: Interval[] = [];
  for (const iv of intervals) {
    const last = out[out.length - 1];
    const merged = last === undefined ? 0n : iv.end - last.start;
    if (
      last !== undefined &&
      last.end === iv.start &&
      (max === undefined || merged <= max) &&
      merged <= U64_MAX
    ) {
      last.end = iv.end;
    } else out.push({ ...iv });
  }
  return out;
}

// Math.min/max do not take bigints.
function bigMin(a: bigint, b: bigint): bigint {
  if (a < b) return a;
  return b;
}
function bigMax(a: bigint, b: bigint): bigint {
  if (a > b) return a;
  return b;
}

/** Reference slice: walk byte offsets interval by interval. */
function referenceSlice(intervals: readonly Interval[], offset: bigint, length: bigint): Interval[] {
  const out: Interval[] = [];
  let pos = 0n;
  const lo = offset;
  const hi = offset + length;
  for (const iv of intervals) {
    const size = iv.end - iv.start;
    const a = bigMax(lo, pos);
    const b = bigMin(hi, pos + size);
    if (a < b) out.push({ start: iv.start + (a - pos), end: iv.start + (b - pos) });
    pos += size;
  }
  return out;
}

/** Reference split: peel one byte-bounded piece at a time. */
function referenceSplit(intervals: readonly Interval[], max: bigint, boundary: bigint): Interval[] {
  const out: Interval[] = [];
  for (const iv of intervals) {
    let s = iv.start;
    while (s < iv.end) {
      const nextBoundary = (s / boundary + 1n) * boundary;
      let e = s + max;
      if (nextBoundary < e) e = nextBoundary;
      if (iv.end < e) e = iv.end;
      out.push({ start: s, end: e });
      s = e;
    }
  }
  return out;
}

const total = (ivs: readonly Interval[]) => ivs.reduce((sum, iv) => sum + iv.end - iv.start, 0n);

/**
 * Random range sequences: each range either continues the previous one, leaves a gap or jumps back,
 * placed low, in the middle or against the top of the 64-bit space.
 */
const rangesArb = fc
  .record({
    steps: fc.array(
      fc.record({
        gap: fc.oneof(fc.constant(0n), fc.constant(0n), fc.bigInt(1n, 0x3000n), fc.constant(-0x2000n)),
        length: fc.oneof(fc.constant(0x1000n), fc.bigInt(1n, 0x5000n)),
      }),
      { minLength: 0, maxLength: 40 },
    ),
    place: fc.oneof(fc.constant('low' as const), fc.constant('top' as const), fc.bigInt(0n, 1n << 63n)),
  })
  .map(({ steps, place }) => {
    const rel: Interval[] = [];
    let cursor = 0x10_0000n; // room for backward jumps
    for (const { gap, length } of steps) {
      const start = cursor + gap < 0n ? 0n : cursor + gap;
      rel.push({ start, end: start + length });
      cursor = start + length;
    }
    const span = rel.reduce((m, iv) => bigMax(m, iv.end), 0n);
    const base = place === 'low' ? 0n : place === 'top' ? TOP - span : place;
    return rel.map((iv) => ({ start: iv.start + base, end: iv.end + base }));
  });

const listOf = (ivs: readonly Interval[]) =>
  PhyrList.fromRanges(ivs.map((iv) => ({ address: iv.start, length: iv.end - iv.start })));

describe('PhyrListBuilder', () => {
  test.prop([rangesArb, fc.option(fc.bigInt(1n, 0x8000n), { nil: undefined })])(
    'merges exactly where contiguous and within max, covering the same bytes in order',
    (ivs, max) => {
      const builder = new PhyrListBuilder({ maxSegmentSize: max, capacity: 1 });
      for (const iv of ivs) builder.append(iv.start, iv.end - iv.start);
      const list = builder.build();
      expect(intervalsOf(list)).toEqual(referenceMerge(ivs, max));
      expect(canonical(intervalsOf(list))).toEqual(canonical(ivs));
      expect(list.totalLength).toBe(total(ivs));
      expect(list.metadataBytes).toBe(16 * list.count);
      // Two touching neighbours are only left apart because joining them would pass max.
      for (let i = 0; i + 1 < list.count; i++) {
        if (list.addressAt(i) + list.lengthAt(i) === list.addressAt(i + 1)) {
          expect(max).toBeDefined();
          expect(list.lengthAt(i) + list.lengthAt(i + 1)).toBeGreaterThan(max ?? 0n);
        }
      }
    },
  );

  test.prop([rangesArb])('merge: false keeps every range as appended', (ivs) => {
    const builder = new PhyrListBuilder({ merge: false });
    for (const iv of ivs) builder.append(iv.start, iv.end - iv.start);
    expect(builder.build().equals(listOf(ivs))).toBe(true);
  });

  test('a range ending at 0xffff_ffff_ffff_f000 + 4K round-trips; past 2^64 is EINVAL', () => {
    const builder = new PhyrListBuilder();
    builder.append(0xffff_ffff_ffff_e000n, 0x1000n).append(0xffff_ffff_ffff_f000n, 0x1000n);
    const list = builder.build();
    expect(list.count).toBe(1);
    expect(list.addressAt(0)).toBe(0xffff_ffff_ffff_e000n);
    expect(list.lastAt(0)).toBe(U64_MAX);
    expect(() => builder.append(0xffff_ffff_ffff_f001n, 0x1000n)).toThrowError(/past the end/);
    expect(() => new PhyrListBuilder().append(0n, 0n)).toThrowError(/must be positive/);
    expectEinval(() => new PhyrListBuilder().append(-1n, 1n));
    expect(() => PhyrList.fromRanges([[U64_MAX, 2n]])).toThrowError(/past the end/);
    expect(() => PhyrList.fromRanges([[0n, 1n << 64n]])).toThrowError(/does not fit 64 bits/);
    expect(() => PhyrList.fromRanges([[2 ** 60, 1]])).toThrowError(/safe integer/);
  });

  test('a range ending at 2^64 does not merge with one at 0; totals above 2^64 stay exact', () => {
    const builder = new PhyrListBuilder();
    builder.append(0xffff_ffff_ffff_f000n, 0x1000n).append(0n, 0x1000n);
    expect(builder.count).toBe(2);
    builder.append(0x1000n, U64_MAX - 0x1000n);
    builder.append(0n, U64_MAX);
    expect(builder.count).toBe(3);
    const expected = 0x2000n + (U64_MAX - 0x1000n) + U64_MAX;
    expect(builder.totalLength).toBe(expected);
    expect(builder.build().totalLength).toBe(expected);
  });

  test('merging never builds a length of 2^64', () => {
    const list = new PhyrListBuilder()
      .append(0n, 1n << 63n)
      .append(1n << 63n, 1n << 63n)
      .build();
    expect(list.count).toBe(2);
  });

  test('build() trims and leaves the builder usable; reset() empties it', () => {
    const builder = new PhyrListBuilder({ capacity: 1 });
    for (let i = 0n; i < 100n; i++) builder.append(i * 0x2000n, 0x1000n);
    const a = builder.build();
    builder.append(0x100_0000n, 0x1000n);
    expect(a.count).toBe(100);
    expect(builder.build().count).toBe(101);
    builder.reset();
    expect(builder.build().isEmpty).toBe(true);
    expect(builder.build()).toBe(PhyrList.empty());
  });

  test('DmaRangeListBuilder gives a DmaRangeList', () => {
    const list = new DmaRangeListBuilder().append(0x1000n, 0x1000n).append(0x2000n, 0x800n).build();
    expect(list).toBeInstanceOf(DmaRangeList);
    expect(list.toString()).toBe('DmaRangeList(1 range, 6K): [0x1000+6K]');
  });
});

/** Runs fn and checks it throws a PhysrError with EINVAL. */
function expectEinval(fn: () => unknown): void {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(isPhysrError(error, 'EINVAL'), String(error)).toBe(true);
}

describe('PhyrList operations', () => {
  const sliceArb = rangesArb.chain((ivs) => {
    const t = total(ivs);
    return fc
      .tuple(fc.constant(ivs), fc.bigInt(0n, t))
      .chain(([ivs2, off]) => fc.tuple(fc.constant(ivs2), fc.constant(off), fc.bigInt(0n, t - off)));
  });

  test.prop([sliceArb])('slice matches the reference', ([ivs, offset, length]) => {
    const sliced = listOf(ivs).slice(offset, length);
    expect(intervalsOf(sliced)).toEqual(referenceSlice(ivs, offset, length));
    expect(sliced.totalLength).toBe(length);
  });

  test.prop([rangesArb])('slice past the end is EINVAL', (ivs) => {
    const list = listOf(ivs);
    expectEinval(() => list.slice(list.totalLength, 1n));
    expectEinval(() => list.slice(-1n, 1n));
  });

  test.prop([rangesArb, fc.bigInt(0x100n, 0x6000n), fc.integer({ min: 9, max: 64 })])(
    'split: same bytes in order, no piece above max, none crossing a boundary',
    (ivs, max, boundaryBits) => {
      const mask = (1n << BigInt(boundaryBits)) - 1n;
      const list = listOf(ivs).split({ maxSegmentSize: max, segmentBoundaryMask: mask });
      expect(intervalsOf(list)).toEqual(referenceSplit(ivs, max, mask + 1n));
      expect(canonical(intervalsOf(list))).toEqual(canonical(ivs));
      for (const r of list) {
        expect(r.length).toBeLessThanOrEqual(max);
        expect(r.address >> BigInt(boundaryBits)).toBe((r.address + r.length - 1n) >> BigInt(boundaryBits));
      }
    },
  );

  test('split refuses a mask that is not 2^n - 1 and a zero maximum', () => {
    const list = PhyrList.fromRanges([[0x1000n, 0x3000n]]);
    expect(() => list.split({ segmentBoundaryMask: 0x1000n })).toThrowError(/not 2\^n - 1/);
    expect(() => list.split({ maxSegmentSize: 0n })).toThrowError(/positive/);
    expect(list.split({}).equals(list)).toBe(true);
  });

  test('mask 0 cuts into single bytes', () => {
    const pieces = PhyrList.fromRanges([[0xffn, 3n]]).split({ segmentBoundaryMask: 0n });
    expect(intervalsOf(pieces).map((iv) => iv.start)).toEqual([0xffn, 0x100n, 0x101n]);
  });

  test('split near 2^64 with the full mask', () => {
    const list = PhyrList.fromRanges([[0xffff_ffff_ffff_c000n, 0x4000n]]);
    const pieces = list.split({ maxSegmentSize: 0x1000n, segmentBoundaryMask: U64_MAX });
    expect(pieces.count).toBe(4);
    expect(pieces.lastAt(3)).toBe(U64_MAX);
  });

  test.prop([rangesArb, rangesArb])('concat appends ranges and lengths', (a, b) => {
    const joined = listOf(a).concat(listOf(b));
    expect(intervalsOf(joined)).toEqual([...a, ...b]);
    expect(joined.totalLength).toBe(total(a) + total(b));
    expect(joined.metadataBytes).toBe(16 * (a.length + b.length));
  });

  test.prop([rangesArb, rangesArb])('equals is range-by-range equality', (a, b) => {
    const same =
      JSON.stringify(a, (_, v) => (typeof v === 'bigint' ? v.toString() : v)) ===
      JSON.stringify(b, (_, v) => (typeof v === 'bigint' ? v.toString() : v));
    expect(listOf(a).equals(listOf(b))).toBe(same);
    expect(listOf(a).equals(listOf(a))).toBe(true);
  });

  test('accessors, iteration and toString', () => {
    const list = PhyrList.fromRanges([{ address: 0x1000, length: 0x1000 }, [0x10_0000n, 0x20_0000n]]);
    expect(list.count).toBe(2);
    expect(list.rangeAt(1)).toEqual({ address: 0x10_0000n, length: 0x20_0000n });
    expect(list.toArray().map((r) => r.length)).toEqual([0x1000n, 0x20_0000n]);
    expectEinval(() => list.addressAt(2));
    expect(list.toString()).toBe('PhyrList(2 ranges, 2052K): [0x1000+4K, 0x100000+2M]');
    const seen: number[] = [];
    list.forEachRange((_a, _l, i) => seen.push(i));
    expect(seen).toEqual([0, 1]);
    expect(PhyrList.empty().count).toBe(0);
    expect(PhyrList.empty().slice(0n, 0n).isEmpty).toBe(true);
  });
});

/** Bytes of the buffers under a list's chunks (the memory it really holds), each buffer once. */
function heldBytes(list: PhyrList): number {
  return [...new Set(list.packedChunks.map((c) => c.buffer))].reduce((sum, b) => sum + b.byteLength, 0);
}

describe('a builder that grew in place', () => {
  test('hands its storage to the list, and later appends (even a merge into the last range) leave that list alone', () => {
    const b = new PhyrListBuilder({ capacity: 2 });
    for (let i = 0n; i < 1000n; i++) b.append(0x10_0000n * (i + 1n), 0x1000n);
    const first = b.build();
    expect(first.count).toBe(1000);
    expect(first.metadataBytes).toBe(16_000);
    // Contiguous with the last range: merges in the builder, not in `first`.
    b.append(0x10_0000n * 1000n + 0x1000n, 0x1000n);
    b.append(0x1n << 40n, 0x1000n);
    const second = b.build();
    expect(first.count).toBe(1000);
    expect(first.lengthAt(999)).toBe(0x1000n);
    expect(first.totalLength).toBe(1000n * 0x1000n);
    expect(second.count).toBe(1001);
    expect(second.lengthAt(999)).toBe(0x2000n);
    expect(second.addressAt(1000)).toBe(0x1n << 40n);
    b.reset();
    b.append(0x5000n, 0x1000n);
    expect(b.build().toArray()).toEqual([{ address: 0x5000n, length: 0x1000n }]);
    expect(second.addressAt(0)).toBe(0x10_0000n);
  });

  test('writes each range once: no typed-array copy while 100k ranges go in, and the lists built on the way share the storage', () => {
    // Any copy of ranges goes through one of these (a chunk copied into a larger one, or trimmed).
    const proto = BigUint64Array.prototype;
    const saved = { set: proto.set, slice: proto.slice, from: BigUint64Array.from };
    let copies = 0;
    proto.set = function (this: BigUint64Array, ...args: Parameters<typeof saved.set>) {
      copies++;
      return saved.set.apply(this, args);
    };
    proto.slice = function (this: BigUint64Array, ...args: Parameters<typeof saved.slice>) {
      copies++;
      return saved.slice.apply(this, args);
    };
    let early: PhyrList;
    let list: PhyrList;
    const n = 100_000;
    try {
      const builder = new PhyrListBuilder();
      for (let i = 0; i < n; i++) {
        // Every fourth range merges into the one before (a merge writes the length word in place).
        builder.append(BigInt(i) * 0x3000n + ((i & 3) === 3 ? -0x2000n : 0n), 0x1000n);
        if (i === 999) early = builder.build();
      }
      list = builder.build();
    } finally {
      proto.set = saved.set;
      proto.slice = saved.slice;
    }
    expect(copies).toBe(0);
    expect(list.count).toBe(n - n / 4);
    expect(early!.count).toBe(750);
    // The early list's chunks are the first chunks of the final one, the same memory.
    const first = early!.packedChunks;
    const last = first.length - 1;
    for (let c = 0; c < last; c++) expect(list.packedChunks[c]).toBe(first[c]);
    expect(list.packedChunks[last]!.buffer).toBe(first[last]!.buffer);
    // Memory held: 16 B a range plus at most 1/16 more (the last chunk's unused tail).
    expect(heldBytes(list)).toBeLessThanOrEqual(list.metadataBytes + list.metadataBytes / 16);
    expect(list.addressAt(749)).toBe(early!.addressAt(749));
    expect(list.addressAt(74_999)).toBe(99_998n * 0x3000n);
  });

  test.prop([
    fc.array(
      fc.oneof(
        fc.record({
          op: fc.constant('append' as const),
          gap: fc.constantFrom(0n, 0n, 0x1000n),
          len: fc.constantFrom(0x1000n, 0x3000n),
        }),
        fc.record({ op: fc.constantFrom('build' as const, 'reset' as const) }),
      ),
      { maxLength: 120 },
    ),
    fc.integer({ min: 0, max: 20 }),
  ])(
    'every list built keeps the ranges it had, whatever the builder does later (copy on write)',
    (ops, capacity) => {
      const builder = new PhyrListBuilder({ capacity });
      let reference: Interval[] = [];
      let end = 0x1000_0000n;
      const built: [PhyrList, Interval[]][] = [];
      for (const o of ops) {
        if (o.op === 'append') {
          const start = end + o.gap;
          builder.append(start, o.len);
          end = start + o.len;
          reference.push({ start, end });
        } else if (o.op === 'build') {
          const list = builder.build();
          built.push([list, referenceMerge(reference)]);
          expect(builder.count).toBe(list.count);
        } else {
          builder.reset();
          reference = [];
        }
      }
      built.push([builder.build(), referenceMerge(reference)]);
      for (const [list, expected] of built) {
        expect(intervalsOf(list)).toEqual(expected);
        expect(list.totalLength).toBe(total(expected));
      }
    },
  );
});

describe('a builder told the count up front', () => {
  test.prop([rangesArb, fc.integer({ min: -2, max: 2 }), fc.boolean()])(
    'builds the reference list holding at most the announced storage (or 1/16 more than the list past it), and later writes never reach a built list',
    (ivs, off, merge) => {
      // Around the number of appends: exact, short (chunks) and long (slack).
      const capacity = Math.max(0, ivs.length + off);
      const builder = new PhyrListBuilder({ capacity, merge });
      for (const iv of ivs) builder.append(iv.start, iv.end - iv.start);
      const list = builder.build();
      const expected = merge ? referenceMerge(ivs) : ivs.map((iv) => ({ ...iv }));
      expect(intervalsOf(list)).toEqual(expected);
      // The memory really held, not just the words the list reports.
      const bound =
        list.count <= capacity
          ? 16 * Math.max(1, capacity)
          : list.metadataBytes + 16 * Math.max(16, Math.floor(list.count / 16));
      if (list.count > 0) expect(heldBytes(list)).toBeLessThanOrEqual(bound);
      // A merge into the last range, a new range, then a reset and refill: `list` keeps its ranges.
      const last = expected[expected.length - 1];
      if (last !== undefined && last.end + 0x1000n <= TOP) builder.append(last.end, 0x1000n);
      builder.append(0x1234_0000_0000n, 0x1000n);
      builder.reset();
      for (let i = 0n; i < BigInt(capacity); i++) builder.append(0x7700_0000_0000n + i * 0x2000n, 0x1000n);
      expect(intervalsOf(list)).toEqual(expected);
    },
  );

  test('a list of exactly the announced count is the builder storage itself, not a copy', () => {
    const builder = new PhyrListBuilder({ capacity: 100, merge: false });
    for (let i = 0n; i < 100n; i++) builder.append(i * 0x2000n, 0x1000n);
    const a = builder.build();
    const b = builder.build();
    expect(a.packedChunks).toHaveLength(1);
    expect(a.packedChunks[0]!.buffer).toBe(b.packedChunks[0]!.buffer);
    expect(a.packedChunks[0]!.buffer.byteLength).toBe(1600);
    // Unknown count: the same, in chunks of 16, 16, ... ranges, each built list holding them all.
    const chunked = new PhyrListBuilder({ merge: false });
    for (let i = 0n; i < 100n; i++) chunked.append(i * 0x2000n, 0x1000n);
    const c = chunked.build();
    expect(c.packedChunks.map((w) => w.length / 2)).toEqual([16, 16, 16, 16, 16, 16, 4]);
    expect(chunked.build().packedChunks[6]!.buffer).toBe(c.packedChunks[6]!.buffer);
    expect(c.equals(a)).toBe(true);
  });
});

describe('a list of several chunks', () => {
  /** The list in chunks of `size` ranges (concat shares each part's storage). */
  const chunkedOf = (ivs: readonly Interval[], size: number): PhyrList => {
    let list = PhyrList.empty();
    for (let i = 0; i < ivs.length; i += size) list = list.concat(listOf(ivs.slice(i, i + size)));
    return list;
  };

  test.prop([rangesArb, fc.integer({ min: 1, max: 5 })])(
    'reads every range where the reference has it: by index, by cursor from any index, by iteration, slice, split and equals',
    (ivs, size) => {
      const list = chunkedOf(ivs, size);
      expect(list.packedChunks).toHaveLength(Math.ceil(ivs.length / size));
      expect(intervalsOf(list)).toEqual(ivs);
      expect(list.equals(listOf(ivs))).toBe(true);
      const got: Interval[] = [];
      for (let i = 0; i < list.count; i++) got.push({ start: list.addressAt(i), end: list.lastAt(i) + 1n });
      expect(got).toEqual(ivs);
      for (let from = 0; from <= ivs.length; from++) {
        const cur = list.cursor(from);
        const walked: Interval[] = [];
        for (let i = from; i < ivs.length; i++, cur.next())
          walked.push({ start: cur.address, end: cur.address + cur.length });
        expect(walked).toEqual(ivs.slice(from));
      }
      const t = total(ivs);
      expect(intervalsOf(list.slice(t / 3n, t / 2n))).toEqual(referenceSlice(ivs, t / 3n, t / 2n));
      expect(intervalsOf(list.split({ maxSegmentSize: 0x800n }))).toEqual(referenceSplit(ivs, 0x800n, TOP));
      expectEinval(() => list.cursor(ivs.length + 1));
    },
  );
});
