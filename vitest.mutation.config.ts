// The vitest config Stryker runs: vitest.config.ts, with PHYSR_MUTATION_TESTS (comma-separated
// globs) narrowing the test set for a narrow run (stryker.narrow.config.mjs,
// stryker.iommu.config.mjs). (mergeConfig would append to the base include list and so run every
// test.) The shared module graph (isolate: false) is fine under Stryker: against the iommu tests
// iova.ts scored the same counts with isolate true and false, pgsize.ts differed by one mutant.
// test/mutation-setup.ts fixes fast-check's seed: property tests are named after their seed, and
// Stryker finds a mutant's covering tests by name.
import { defineConfig } from 'vitest/config';
import base from './vitest.config.ts';

const narrowed = process.env.PHYSR_MUTATION_TESTS;
const include = narrowed === undefined ? base.test?.include : narrowed.split(',');

const setupFiles = [base.test?.setupFiles ?? []].flat().concat('test/mutation-setup.ts');

export default defineConfig({ ...base, test: { ...base.test, include, setupFiles } });
