import { fail } from '../../src/core/index.ts';
import type { LpaeGranule } from '../../src/iommu/index.ts';

export * from '../../src/iommu/index.ts';

/** The LPAE granule whose smallest page is the lowest bit of a pgsize bitmap. */
export function lowestGranule(bitmap: bigint): LpaeGranule {
  const low = bitmap & -bitmap;
  if (low === 4096n || low === 16384n || low === 65536n) return Number(low) as LpaeGranule;
  return fail('EINVAL', `no LPAE granule for bitmap 0x${bitmap.toString(16)}`);
}
