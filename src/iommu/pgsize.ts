/**
 * The kernel's page-size choice for one step of a map or unmap (iommu_pgsize in
 * drivers/iommu/iommu.c), in numbered conditions:
 *  1. only sizes in the bitmap no larger than the remaining size;
 *  2. only sizes the alignment of (iova | paddr) allows;
 *  3. take the largest of those;
 *  4. count how many of them to write in one map_pages call: up to the point where iova and paddr
 *     reach the boundary of the next larger supported size (if both sit at the same offset within
 *     that size and enough remains to use it), else the whole remaining size.
 */
import { fail, formatHex, highestSetBit, lowestSetBit } from '../core/index.ts';

export interface PageSizeStep {
  readonly pgsize: bigint;
  readonly count: bigint;
}

/** GENMASK(hi, 0) without `~`. */
function lowMask(hi: number): bigint {
  return (1n << BigInt(hi + 1)) - 1n;
}

export function iommuPgsize(pgsizeBitmap: bigint, iova: bigint, paddr: bigint, size: bigint): PageSizeStep {
  const addrMerge = iova | paddr;
  let pgsizes = pgsizeBitmap & lowMask(highestSetBit(size)); // 1.
  if (addrMerge !== 0n) pgsizes &= lowMask(lowestSetBit(addrMerge)); // 2.
  if (pgsizes === 0n) {
    fail(
      'EINVAL',
      `no page size in ${formatHex(pgsizeBitmap)} fits iova ${formatHex(iova)} paddr ${formatHex(paddr)} size ${formatHex(size)}`,
    );
  }
  const pgsizeIdx = highestSetBit(pgsizes); // 3.
  const pgsize = 1n << BigInt(pgsizeIdx);

  // 4.
  let runSize = size;
  const bigger = pgsizeBitmap - (pgsizeBitmap & lowMask(pgsizeIdx));
  if (bigger !== 0n) {
    const next = 1n << BigInt(lowestSetBit(bigger));
    if (((iova ^ paddr) & (next - 1n)) === 0n) {
      const offset = next - (addrMerge & (next - 1n));
      if (offset + next <= size) runSize = offset;
    }
  }
  return { pgsize, count: runSize >> BigInt(pgsizeIdx) };
}

/** The smallest size in a bitmap (what map and unmap requests must be aligned to). */
export function minPageSize(pgsizeBitmap: bigint): bigint {
  return 1n << BigInt(lowestSetBit(pgsizeBitmap));
}

/** Page sizes in a bitmap, smallest first. */
export function pageSizes(pgsizeBitmap: bigint): bigint[] {
  const out: bigint[] = [];
  for (let b = 0n; b < 64n; b++) if ((pgsizeBitmap >> b) & 1n) out.push(1n << b);
  return out;
}
