// The vitest config Stryker runs: vitest.config.ts, with PHYSR_MUTATION_TESTS (comma-separated
// globs) narrowing the test set for a narrow run (stryker.narrow.config.mjs,
// stryker.iommu.config.mjs). (mergeConfig would append to the base include list and so run every
// test.) The shared module graph (isolate: false) is fine under Stryker: pgsize.ts and iova.ts
// against the iommu tests scored the same, mutant for mutant in count, with isolate true and false.
import { defineConfig } from 'vitest/config';
import base from './vitest.config.ts';

const narrowed = process.env.PHYSR_MUTATION_TESTS;
const include = narrowed === undefined ? base.test?.include : narrowed.split(',');

export default defineConfig({ ...base, test: { ...base.test, include } });
