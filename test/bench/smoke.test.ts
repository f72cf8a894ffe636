import { describe, expect, test } from 'vitest';
import { createContext } from '../../bench/harness.ts';
import { suite } from '../../bench/suite.ts';

// One tiny iteration of every benchmark so none of them can rot; the figures are not checked for speed.
describe('benchmark smoke run', () => {
  const ctx = createContext({ smoke: true });
  test('the suite has benchmarks with unique names', () => {
    expect(new Set(suite.map((b) => b.name)).size).toBe(suite.length);
  });
  for (const benchmark of suite) {
    test(benchmark.name, async () => {
      const figures = await benchmark.run(ctx);
      expect(figures.length).toBeGreaterThan(0);
      for (const f of figures) {
        expect(Number.isFinite(f.median), `${f.name} median`).toBe(true);
        expect(f.min).toBeLessThanOrEqual(f.max);
      }
    });
  }
});
