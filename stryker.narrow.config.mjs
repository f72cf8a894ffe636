// A narrow mutation run: the files given with --mutate, against only the test files named by
// PHYSR_MUTATION_TESTS (comma-separated globs), so a run takes minutes. Mutants that only other
// folders' tests would kill count as survivors here: the score is a lower bound. Example:
//   PHYSR_MUTATION_TESTS='test/rdma/**/*.test.ts' npx stryker run stryker.narrow.config.mjs \
//     --mutate src/rdma/best-pgsz.ts
// Each test set keeps its own incremental file (reports/, not in git).
import base from './stryker.config.mjs';

/** The name a test set's reports go by (test/mutation/main.ts reads the JSON report back by it). */
export function reportName(tests) {
  return tests
    .replace(/\*\*\/\*\.test\.ts/g, '')
    .replace(/[^A-Za-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
}

const tests = process.env.PHYSR_MUTATION_TESTS ?? 'test/iommu/**/*.test.ts';
const name = reportName(tests);

export default {
  ...base,
  concurrency: 2,
  // A mutant's run may take timeoutFactor x its tests' dry-run time + timeoutMS. Stryker's 1.5x + 5 s
  // turned slow-but-passing runs into "timeouts" (counted as kills) whenever the shared 2-core
  // machine was loaded; with fast-check ending on the first failure a killed mutant fails fast, so
  // a wide margin costs little and leaves only real hangs (a loop that never ends) as timeouts.
  timeoutFactor: 3,
  timeoutMS: 20000,
  // A static mutant (a value computed at module load: the format tables, constants) re-runs every
  // test of the set for itself; ignoring them (Stryker reports them as Ignored, out of the score)
  // keeps a folder's run in minutes. test:kernel checks those tables against the kernel's C.
  ignoreStatic: true,
  vitest: { configFile: 'vitest.mutation.config.ts', related: false },
  incrementalFile: `reports/stryker-${name}-incremental.json`,
  jsonReporter: { fileName: `reports/mutation/${name}.json` },
};
