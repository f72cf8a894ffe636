// StrykerJS mutation testing (`npm run mutation`; not part of `npm test` or CI: it is slow).
// Stryker 9.6.1 is the last line that runs on Node 20. Traps (see README "Mutation testing"):
// - no checker: @stryker-mutator/typescript-checker needs the TS compiler API, which typescript@7
//   does not ship;
// - `tsconfigFile` names a file that does not exist, so Stryker skips rewriting tsconfig.json
//   through import('typescript') (which fails with typescript@7);
// - tests read ../shared: each sandbox sits in .stryker-tmp/, so .stryker-tmp/shared links back to
//   the repository's sibling shared/.
import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { resolve } from 'node:path';

const tempDirName = '.stryker-tmp';
mkdirSync(tempDirName, { recursive: true });
const sharedLink = resolve(tempDirName, 'shared');
const shared = resolve('..', 'shared');
if (!existsSync(sharedLink) && existsSync(shared)) symlinkSync(shared, sharedLink, 'dir');

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts', related: true },
  checkers: [],
  tsconfigFile: 'stryker.tsconfig-not-used.json',
  // The folders issue 13 names; narrow a run with `npm run mutation -- --mutate src/iommu/iova.ts`.
  mutate: ['src/core/**/*.ts', 'src/iommu/**/*.ts', 'src/platform/p2pdma.ts', 'src/dma/**/*.ts', 'src/rdma/**/*.ts'],
  coverageAnalysis: 'perTest',
  concurrency: 1,
  timeoutMS: 60_000,
  // The first run (all tests, per-test coverage) takes many minutes on a loaded 2-core box.
  dryRunTimeoutMinutes: 60,
  incremental: true,
  incrementalFile: 'reports/stryker-incremental.json',
  reporters: ['clear-text', 'progress', 'json'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName,
  cleanTempDir: true,
};
