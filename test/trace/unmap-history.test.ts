import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { UnmapHistory } from '../../src/trace/unmap-history.ts';
import { propertyRuns } from '../thorough.ts';

/** The reference: each key's latest value among the last `capacity` sets, in the order of those sets. */
function lastSets(sets: readonly (readonly [number, number])[], capacity: number): Map<number, number> {
  const expected = new Map<number, number>();
  for (const [k, v] of sets.slice(-capacity)) {
    expected.delete(k);
    expected.set(k, v);
  }
  return expected;
}

describe('UnmapHistory against a list of the last N sets', () => {
  test.prop(
    [
      fc.integer({ min: 1, max: 40 }),
      fc.array(fc.oneof(fc.integer({ min: 0, max: 12 }), fc.constant(-1)), { maxLength: 300 }),
    ],
    { numRuns: propertyRuns(150) },
  )(
    'holds exactly the keys among the last `capacity` sets, each with its latest value, read between sets (the index rebuilt lazily)',
    (capacity, ops) => {
      const h = new UnmapHistory<number, number>(capacity);
      const sets: [number, number][] = [];
      let firstWrong: string | undefined;
      ops.forEach((k, i) => {
        if (k >= 0) {
          h.set(k, i);
          sets.push([k, i]);
          return;
        }
        // -1: read every key now.
        const expected = lastSets(sets, capacity);
        for (let q = 0; q <= 12 && firstWrong === undefined; q++)
          if (h.get(q) !== expected.get(q))
            firstWrong = `op ${i} key ${q}: ${h.get(q)} != ${expected.get(q)}`;
      });
      expect(firstWrong).toBeUndefined();
      const expected = lastSets(sets, capacity);
      for (let k = 0; k <= 12; k++) expect(h.get(k)).toBe(expected.get(k));
      expect(h.size).toBe(expected.size);
      expect([...h.values()]).toEqual([...expected.values()]);
    },
  );
});
