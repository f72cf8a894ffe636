// The test set of the narrow mutation run (stryker.iommu.config.mjs): the iommu tests only.
import { defineConfig, mergeConfig } from 'vitest/config';
import base from './vitest.config.ts';

export default mergeConfig(base, defineConfig({ test: { include: ['test/iommu/**/*.test.ts'] } }));
