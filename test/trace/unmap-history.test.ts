import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { UnmapHistory } from '../../src/trace/unmap-history.ts';
import { propertyRuns } from '../thorough.ts';

describe('UnmapHistory against a list of the last N sets', () => {
  test.prop([fc.integer({ min: 1, max: 8 }), fc.array(fc.integer({ min: 0, max: 12 }), { maxLength: 60 })], {
    numRuns: propertyRuns(200),
  })(
    'holds exactly the keys among the last `capacity` sets, each with its latest value',
    (capacity, keys) => {
      const h = new UnmapHistory<number, number>(capacity);
      keys.forEach((k, i) => {
        h.set(k, i);
      });
      const last = keys.map((k, i) => [k, i] as const).slice(-capacity);
      const expected = new Map<number, number>();
      for (const [k, i] of last) expected.set(k, i);
      for (let k = 0; k <= 12; k++) expect(h.get(k)).toBe(expected.get(k));
      expect(h.size).toBe(expected.size);
      expect([...h.values()].sort((a, b) => a - b)).toEqual([...expected.values()].sort((a, b) => a - b));
    },
  );
});
