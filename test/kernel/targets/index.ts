/** Every differential target, in order of value. */
import type { DiffTarget } from '../harness.ts';
import { bestPgszTarget } from './best-pgsz.ts';
import { ioPgtableArmTarget } from './io-pgtable-arm.ts';
import { iovaTarget } from './iova.ts';
import { p2pdmaTarget } from './p2pdma.ts';
import { pgsizeTarget } from './pgsize.ts';
import { scatterlistTarget } from './scatterlist.ts';
import { swiotlbTarget } from './swiotlb.ts';

export const TARGETS: readonly DiffTarget<unknown>[] = [
  scatterlistTarget,
  iovaTarget,
  pgsizeTarget,
  bestPgszTarget,
  swiotlbTarget,
  p2pdmaTarget,
  ioPgtableArmTarget,
];
