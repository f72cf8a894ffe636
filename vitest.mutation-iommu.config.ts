// The test set of a narrow mutation run (stryker.iommu.config.mjs): the iommu tests only. (mergeConfig
// would append to the base include list and so run every test.)
import { defineConfig } from 'vitest/config';
import base from './vitest.config.ts';

export default defineConfig({ ...base, test: { ...base.test, include: ['test/iommu/**/*.test.ts'] } });
