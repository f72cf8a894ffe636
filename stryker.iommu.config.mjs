// A narrow mutation run that finishes in minutes: the IOVA allocator and iommu_pgsize against the
// iommu tests only (`npx stryker run stryker.iommu.config.mjs`). Mutants only other folders' tests
// would kill count as survivors here, so this score is a lower bound for these two files.
import base from './stryker.config.mjs';

// The test set vitest.mutation.config.ts runs (the worker processes inherit it).
process.env.PHYSR_MUTATION_TESTS ??= 'test/iommu/**/*.test.ts';

export default {
  ...base,
  // iommu_pgsize and the IOVA allocator (alloc_iova, the rcache, the magazines), whole.
  mutate: ['src/iommu/pgsize.ts', 'src/iommu/iova.ts'],
  // The iommu tests take seconds; a mutant that loops forever should not cost a minute.
  timeoutMS: 5000,
  vitest: { configFile: 'vitest.mutation.config.ts', related: false },
  incrementalFile: 'reports/stryker-iommu-incremental.json',
  jsonReporter: { fileName: 'reports/mutation/iommu.json' },
};
