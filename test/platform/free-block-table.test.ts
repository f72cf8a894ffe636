import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { FreeBlockTable } from '../../src/platform/free-block-table.ts';
import { propertyRuns } from '../thorough.ts';

/**
 * Heads aligned like buddy blocks (low bits zero), some above 2^32 pages. Unbiased: the small values
 * fast-check favours hash to evenly spread buckets, and deletion needs runs of colliding heads.
 */
const pfnArb = fc
  .noBias(
    fc.tuple(
      fc.integer({ min: 0, max: 2 ** 20 - 1 }),
      fc.integer({ min: 0, max: 10 }),
      fc.constantFrom(0, 2 ** 33),
    ),
  )
  .map(([index, shift, base]) => base + index * 2 ** shift);

// Three inserts to a removal, so the table fills up and probe runs form.
const opArb = fc.oneof(
  {
    arbitrary: fc.record({
      op: fc.constant('insert' as const),
      pfn: pfnArb,
      order: fc.integer({ min: 0, max: 20 }),
    }),
    weight: 3,
  },
  // A head taken from those inserted (most of the time) or any head (a miss).
  {
    arbitrary: fc.record({
      op: fc.constant('remove' as const),
      pfn: pfnArb,
      pick: fc.option(fc.nat(), { freq: 4 }),
    }),
    weight: 1,
  },
);

describe('FreeBlockTable against a Map', () => {
  test.prop([fc.array(opArb, { minLength: 200, maxLength: 600 })], { numRuns: propertyRuns(20, 400) })(
    'finds exactly the heads inserted and not removed, with their orders, through growth and deletion',
    (ops) => {
      const table = new FreeBlockTable();
      const model = new Map<number, number>();
      for (const step of ops) {
        if (step.op === 'insert') {
          if (model.has(step.pfn)) continue; // the allocator never inserts a head twice
          const slot = table.insert(step.pfn, step.order);
          expect(table.prev[slot]).toBe(-1);
          model.set(step.pfn, step.order);
        } else {
          const keys = [...model.keys()];
          const pfn = step.pick !== null && keys.length > 0 ? keys[step.pick % keys.length]! : step.pfn;
          const slot = table.find(pfn);
          expect(slot === -1).toBe(!model.has(pfn));
          if (slot !== -1) table.remove(slot);
          model.delete(pfn);
        }
      }
      expect(table.size).toBe(model.size);
      const found = new Map<number, number>();
      for (const step of ops) {
        if (step.op === 'remove') continue;
        const slot = table.find(step.pfn);
        if (slot !== -1) found.set(table.head[slot]!, table.order[slot]!);
      }
      expect(found).toEqual(model);
    },
  );
});
