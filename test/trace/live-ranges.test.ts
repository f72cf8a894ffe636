import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { LiveRanges } from '../../src/trace/live-ranges.ts';
import { propertyRuns } from '../thorough.ts';

const RUNS = propertyRuns(150);

/** Disjoint ranges in page units, inserted in random order; a plain array is the reference. */
const disjoint = fc
  .array(fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 1, max: 4 })), {
    minLength: 1,
    maxLength: 24,
  })
  .map((steps) => {
    let at = 0n;
    return steps.map(([gap, len]) => {
      const start = (at + BigInt(gap)) * 0x1000n + 0xffff_0000_0000_0000n;
      at += BigInt(gap + len);
      return { start, last: start + BigInt(len) * 0x1000n - 1n };
    });
  });

describe('LiveRanges against a plain list', () => {
  test.prop(
    [disjoint.chain((rs) => fc.tuple(fc.constant(rs), fc.shuffledSubarray(rs, { minLength: rs.length })))],
    {
      numRuns: RUNS,
    },
  )('holding and overlapping agree with a linear scan, before and after removals', ([ranges, order]) => {
    const set = new LiveRanges<number>();
    const ids = new Map(ranges.map((r, i) => [r, i]));
    for (const r of order) set.insert(r.start, r.last, ids.get(r)!);
    const live = new Set(ranges);
    const check = () => {
      for (const r of ranges) {
        for (const probe of [r.start - 1n, r.start, r.last, r.last + 1n]) {
          const ref = [...live].find((x) => x.start <= probe && probe <= x.last);
          expect(set.holding(probe)?.value).toBe(ref === undefined ? undefined : ids.get(ref));
        }
        const refOverlap = [...live].some((x) => x.start <= r.last + 0x800n && x.last >= r.start - 0x800n);
        expect(set.overlapping(r.start - 0x800n, r.last + 0x800n) !== undefined).toBe(refOverlap);
      }
    };
    check();
    for (const r of order.filter((_, i) => i % 2 === 0)) {
      expect(set.remove(r.start, ids.get(r)!)).toBe(true);
      live.delete(r);
    }
    expect(set.size).toBe(live.size);
    check();
  });

  test.prop([disjoint], { numRuns: RUNS })(
    'removeWithin takes exactly the ranges inside the span',
    (ranges) => {
      const set = new LiveRanges<number>();
      ranges.forEach((r, i) => {
        set.insert(r.start, r.last, i);
      });
      const lo = ranges[0]!.start + 0x1000n;
      const hi = ranges[ranges.length - 1]!.last - 0x1000n;
      const inside = ranges.map((r, i) => [r, i] as const).filter(([r]) => r.start >= lo && r.last <= hi);
      expect(set.removeWithin(lo, hi).map((r) => r.value)).toEqual(inside.map(([, i]) => i));
      expect(set.size).toBe(ranges.length - inside.length);
    },
  );
});
