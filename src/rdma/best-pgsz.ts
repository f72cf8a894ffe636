/**
 * Page-size selection and block iteration for memory regions, as drivers/infiniband/core/umem.c
 * (ib_umem_find_best_pgsz), include/rdma/ib_umem.h (ib_umem_num_dma_blocks,
 * rdma_umem_for_each_dma_block) and drivers/infiniband/core/verbs.c (__rdma_block_iter_next) do it.
 * All arithmetic is unsigned 64-bit, wrapping as in C.
 */
import { type DmaRangeList, fail, U64_MAX } from '../core/index.ts';
import { genmask } from '../iommu/index.ts';

/** What the page-size rule needs of a umem: its user address (for the sub-page offset), length and DMA ranges. */
export interface UmemLayout {
  /** umem->address: the user VA (or dma-buf offset) the region starts at. */
  readonly address: bigint;
  /** umem->length in bytes. */
  readonly length: bigint;
  /** The mapped DMA segments, page-granular (the first starts at the page holding `address`). */
  readonly dma: DmaRangeList;
  /** An on-demand-paging umem's page_shift (umem->is_odp): its pages are mapped on fault. */
  readonly odpPageShift?: number;
}

const u64 = (v: bigint): bigint => BigInt.asUintN(64, v);

/** bits_per(n) (include/linux/log2.h): bits needed to hold n, and 1 for 0 and 1. */
export function bitsPer(n: bigint): number {
  return n < 2n ? 1 : n.toString(2).length;
}

function countTrailingZeros(v: bigint): number {
  let n = 0;
  while ((v & 1n) === 0n && n < 64) {
    v >>= 1n;
    n++;
  }
  return n;
}

function roundDownPowerOfTwo(v: bigint): bigint {
  return 1n << BigInt(v.toString(2).length - 1);
}

/**
 * ib_umem_find_best_pgsz: the largest page size in `pgszBitmap` with which the MR at IOVA `virt`
 * can be described by one page list. A bit of the result must be zero in every place where the IOVA
 * and the DMA address differ, at every VA where physical contiguity breaks (that VA starts a
 * new page), and in the span of the IOVA range itself (no page larger than the range needs).
 * Entries physically contiguous with the previous one add nothing (the 2025 rule that skips them).
 * Returns 0 when no size in the bitmap fits. An ODP umem gets 2^page_shift if the bitmap has it.
 */
export function ibUmemFindBestPgsz(umem: UmemLayout, pgszBitmap: bigint, virt: bigint): bigint {
  if (pgszBitmap < 0n || pgszBitmap > U64_MAX) fail('EINVAL', 'page size bitmap must be a u64');
  // An ODP umem is self-consistent: its own 2^page_shift when the device takes that size, else 0.
  if (umem.odpPageShift !== undefined) {
    const pageSize = 1n << BigInt(umem.odpPageShift);
    return (pgszBitmap & pageSize) === 0n ? 0n : pageSize;
  }
  let va = u64(virt);
  // An IOVA range that wraps past 2^64 fits no page size (check_add_overflow on the last VA).
  const lastVa = u64(umem.length - 1n) + va;
  if (lastVa > U64_MAX) return 0n;
  // Page sizes bigger than the bits the IOVA range spans are limited by the range itself.
  let mask = pgszBitmap & genmask(63, bitsPer(lastVa ^ va));
  let pgoff = umem.address & 0xfffn;
  let currBase = U64_MAX;
  let currLen = 0n;
  let i = 0;
  umem.dma.forEachRange((address, length) => {
    if (u64(currBase + currLen) !== address) {
      currBase = address;
      currLen = 0n;
      mask |= u64(currBase + pgoff) ^ va;
      // A VA where the physical run breaks must be the start of a page.
      if (i !== 0) mask |= va;
    }
    currLen = u64(currLen + length);
    va = u64(va + length - pgoff);
    pgoff = 0n;
    i++;
  });
  let bitmap = pgszBitmap;
  if (mask !== 0n) bitmap &= genmask(countTrailingZeros(mask), 0);
  return bitmap === 0n ? 0n : roundDownPowerOfTwo(bitmap);
}

/** ib_umem_num_dma_blocks: pages of `pgsz` the IOVA range [iova, iova+length) touches. */
export function ibUmemNumDmaBlocks(iova: bigint, length: bigint, pgsz: bigint): number {
  const mask = pgsz - 1n;
  const end = (iova + length + mask) & ~mask;
  const start = iova & ~mask;
  return Number((end - start) / pgsz);
}

/**
 * rdma_umem_for_each_dma_block: the DMA address of every `pgsz` block of the mapped segments, in
 * order, stopping after `numBlocks` (__rdma_block_iter_next: each step takes the block holding the
 * current DMA address and skips every segment that ends inside it).
 */
export function umemDmaBlocks(dma: DmaRangeList, pgsz: bigint, numBlocks: number): BigUint64Array {
  const out = new BigUint64Array(numBlocks);
  const blockMask = pgsz - 1n;
  let seg = 0;
  let advance = 0n;
  let n = 0;
  while (n < numBlocks && seg < dma.count) {
    const addr = dma.addressAt(seg) + advance;
    let delta = pgsz - (addr & blockMask);
    while (seg < dma.count && dma.lengthAt(seg) - advance <= delta) {
      delta -= dma.lengthAt(seg) - advance;
      advance = 0n;
      seg++;
    }
    advance += delta;
    out[n++] = addr & ~blockMask;
  }
  if (n !== numBlocks)
    fail('EINVAL', `DMA segments hold ${n} blocks of ${pgsz} bytes, the MR needs ${numBlocks}`);
  return out;
}
