/** Every differential target, in order of value. */
import type { DiffTarget } from '../harness.ts';
import { bestPgszTarget } from './best-pgsz.ts';
import { pgsizeTarget } from './pgsize.ts';
import { scatterlistTarget } from './scatterlist.ts';

export const TARGETS: readonly DiffTarget<unknown>[] = [scatterlistTarget, pgsizeTarget, bestPgszTarget];
