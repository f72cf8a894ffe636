/**
 * How hard the property tests push. `npm test` stays near a minute on 2 cores with the quick
 * counts; `PHYSR_THOROUGH=1 npm test` (for CI runs that can afford it, and before a release) runs
 * each slow property many times more.
 */
export const THOROUGH = process.env.PHYSR_THOROUGH === '1';

/** fast-check's numRuns: `quick` normally, `thorough` (default 10x) under PHYSR_THOROUGH=1. */
export function propertyRuns(quick: number, thorough = quick * 10): number {
  return THOROUGH ? thorough : quick;
}
