import { accessSync, constants } from 'node:fs';
import { defineConfig } from 'vitest/config';

/** Scratch files (extracted sysfs captures: ~22,000 small files) go to tmpfs when there is one. */
function scratchDir(): string | undefined {
  try {
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return undefined;
  }
}

const tmp = scratchDir();

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    testTimeout: 60_000,
    pool: 'threads',
    // Test files share one module graph per worker: importing and transforming the model once per
    // worker instead of once per file cut the import phase from ~31 s to ~5 s. Tests that change a
    // global registry put back what they found (see test/sim/engine.test.ts).
    isolate: false,
    ...(tmp === undefined ? {} : { env: { TMPDIR: tmp } }),
  },
});
