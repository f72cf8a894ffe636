import { describe, expect, test } from 'vitest';
import { iommuPgsize } from '../../src/iommu/index.ts';
import { expectErrno } from '../errno.ts';

const K4 = 0x1000n;
const M2 = 0x20_0000n;
const BITMAP = K4 | M2 | (1n << 30n);

// iommu_pgsize (drivers/iommu/iommu.c): the run of the chosen size stops at the next larger
// size's boundary only when `offset + pgsize_next <= size`, i.e. when a whole larger page fits
// after the boundary.
describe('iommu_pgsize: where a run of small pages stops', () => {
  test('exactly one 2M page fits after the boundary: the 4K run stops there (offset + next == size)', () => {
    // iova and paddr 4K below a 2M boundary, 4K + 2M to map: one 4K page, then the 2M page.
    const step = iommuPgsize(BITMAP, M2 - K4, 0x4000_0000n - K4, K4 + M2);
    expect(step).toEqual({ pgsize: K4, count: 1n });
  });

  test('4K short of a whole 2M page after the boundary: the 4K run covers everything', () => {
    const step = iommuPgsize(BITMAP, M2 - K4, 0x4000_0000n - K4, M2);
    expect(step).toEqual({ pgsize: K4, count: 0x200n });
  });

  test('iova and paddr at different offsets in 2M: no larger page can ever be used, one run', () => {
    const step = iommuPgsize(BITMAP, M2 - K4, 0x4000_0000n - 2n * K4, K4 + 2n * M2);
    expect(step).toEqual({ pgsize: K4, count: 0x401n });
  });
});

describe('iommu_pgsize: a request no size fits', () => {
  // iommu_map (drivers/iommu/iommu.c) refuses iova/paddr/size not aligned to the smallest page
  // size before it asks iommu_pgsize; called directly, the model refuses instead of taking
  // __fls(0).
  test('a size or an address below the smallest page size is EINVAL', () => {
    expectErrno(() => iommuPgsize(BITMAP, 0n, 0n, 0x800n), 'EINVAL', /no page size/);
    expectErrno(() => iommuPgsize(BITMAP, 0x800n, 0n, K4), 'EINVAL', /no page size/);
  });
});
