/**
 * The kernel's own scatterlist test vectors (tools/testing/scatterlist/main.c, extracted into
 * ../shared/data/oracles/scatterlist.json) run against the SgTable model: error code, nents and
 * orig_nents must match for every case.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { isPhysrError, SgAppendTable, sgAllocTableFromPagesSegment } from '../../src/core/index.ts';

interface OracleCase {
  id: number;
  mode?: 'append';
  pages: number[];
  append_pages?: number[];
  num_pages: number;
  offset: number;
  size: number;
  max_segment: number | 'sgmax';
  first_call_left_pages?: number;
  second_call_left_pages?: number;
  expected_ret: 0 | '-EINVAL';
  expected_nents: number | null;
  expected_orig_nents?: number;
}

interface Oracle {
  constants: { PAGE_SIZE: number; sgmax_new: number };
  cases: OracleCase[];
}

const here = dirname(fileURLToPath(import.meta.url));
// test/core -> repo root -> ../shared (the repository's sibling folder).
const oraclePath = resolve(here, '../../../shared/data/oracles/scatterlist.json');
const oracle = JSON.parse(readFileSync(oraclePath, 'utf8')) as Oracle;

// The harness gives page k the pfn k + 1.
const pfnsOf = (pages: number[]): bigint[] => pages.map((k) => BigInt(k + 1));
const maxOf = (m: OracleCase['max_segment']): number => (m === 'sgmax' ? oracle.constants.sgmax_new : m);

describe('tools/testing/scatterlist vectors', () => {
  test('the oracle file has cases', () => {
    expect(oracle.cases.length).toBeGreaterThanOrEqual(20);
    expect(oracle.constants.PAGE_SIZE).toBe(4096);
  });

  for (const c of oracle.cases) {
    test(`case ${c.id}: pages [${c.pages.join(',')}]${c.append_pages ? ` + [${c.append_pages.join(',')}]` : ''} max ${c.max_segment}`, () => {
      const run = () => {
        if (c.mode === 'append') {
          const append = new SgAppendTable();
          append.appendFromPages(
            pfnsOf(c.pages),
            c.offset,
            c.size,
            maxOf(c.max_segment),
            c.first_call_left_pages,
          );
          append.appendFromPages(
            pfnsOf(c.append_pages ?? []),
            0,
            c.size,
            maxOf(c.max_segment),
            c.second_call_left_pages ?? 0,
          );
          return append.sgt;
        }
        expect(c.pages.length).toBe(c.num_pages);
        return sgAllocTableFromPagesSegment(pfnsOf(c.pages), c.offset, c.size, maxOf(c.max_segment));
      };
      if (c.expected_ret === '-EINVAL') {
        let error: unknown;
        try {
          run();
        } catch (e) {
          error = e;
        }
        expect(isPhysrError(error, 'EINVAL')).toBe(true);
        return;
      }
      const table = run();
      expect(table.nents).toBe(c.expected_nents);
      if (c.expected_orig_nents !== undefined) expect(table.origNents).toBe(c.expected_orig_nents);
      // The CPU side still covers exactly `size` bytes (append: both calls' bytes).
      const total = [...table.entries()].reduce((sum, e) => sum + e.length, 0);
      expect(total).toBe(c.mode === 'append' ? 2 * c.size : c.size);
    });
  }
});
