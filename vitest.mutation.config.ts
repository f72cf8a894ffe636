// The vitest config Stryker runs. Two differences from vitest.config.ts:
// - `isolate: true`: with test files sharing one module graph (isolate: false) Stryker's per-test
//   coverage and mutant switching go wrong, and mutants that the iommu tests kill by hand were
//   reported as survivors (measured 2026-11-30: iova.ts 55.95 % shared, see README).
// - PHYSR_MUTATION_TESTS (comma-separated globs) narrows the test set for a narrow run
//   (stryker.narrow.config.mjs, stryker.iommu.config.mjs). (mergeConfig would append to the base
//   include list and so run every test.)
import { defineConfig } from 'vitest/config';
import base from './vitest.config.ts';

const narrowed = process.env.PHYSR_MUTATION_TESTS;
const include = narrowed === undefined ? base.test?.include : narrowed.split(',');

export default defineConfig({ ...base, test: { ...base.test, include, isolate: true } });
