// A narrow mutation run that finishes in minutes: the IOVA allocator and iommu_pgsize against the
// iommu tests only (`npx stryker run stryker.iommu.config.mjs`). Mutants only other folders' tests
// would kill count as survivors here, so this score is a lower bound for these two files.
import base from './stryker.config.mjs';

export default {
  ...base,
  // iommu_pgsize whole, and the IOVA allocator's rcache (alloc_iova_fast, free_iova_fast, the
  // magazines): the code the three named surviving mutants lived in.
  mutate: ['src/iommu/pgsize.ts', 'src/iommu/iova.ts:193-307'],
  // The iommu tests take seconds; a mutant that loops forever should not cost a minute.
  timeoutMS: 5000,
  vitest: { configFile: 'vitest.mutation-iommu.config.ts', related: false },
  incrementalFile: 'reports/stryker-iommu-incremental.json',
  jsonReporter: { fileName: 'reports/mutation/iommu.json' },
};
