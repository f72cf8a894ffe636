/**
 * Setup for mutation runs only (vitest.mutation.config.ts). @fast-check/vitest names each property
 * test `<label> (with seed=N)` with a fresh random N whenever the file is collected; Stryker's
 * mutant runs select the covering tests by the names it saw in its dry run, so without one fixed
 * seed no property test ever ran against a mutant (every mutant only a property could kill
 * "survived"). A fixed global seed keeps the names, and the generated cases, the same in every run.
 * `endOnFailure` skips shrinking: a mutant is killed by the first failing case, and shrinking a
 * counterexample through a slow model outlasted Stryker's timeout, so real kills were counted as
 * timeouts (dma: 78 of 407).
 */
import { fc } from '@fast-check/vitest';

fc.configureGlobal({ ...fc.readConfigureGlobal(), seed: 20261130, endOnFailure: true });
