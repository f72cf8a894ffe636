/**
 * ib_umem_find_best_pgsz vectors. Each expected value is worked out by hand from the kernel's rule
 * (drivers/infiniband/core/umem.c), the steps written beside it:
 *   mask = bitmap & GENMASK(63, bits_per((len - 1 + virt) ^ virt))
 *   per segment not contiguous with the previous: mask |= (dma + pgoff) ^ va; if not first: mask |= va
 *   va += len - pgoff; pgoff = 0
 *   result = rounddown_pow_of_two(bitmap & GENMASK(ctz(mask), 0)), or 0.
 */
import { describe, expect, it } from 'vitest';
import { DmaRangeList } from '../../src/core/index.ts';
import { genmask } from '../../src/iommu/index.ts';
import {
  bitsPer,
  IB_ACCESS_HUGETLB,
  IB_ACCESS_LOCAL_WRITE,
  IB_ACCESS_ON_DEMAND,
  ibUmemFindBestPgsz,
  ibUmemNumDmaBlocks,
  ibUmemOdpGet,
  umemDmaBlocks,
} from '../../src/rdma/index.ts';
import { expectErrno } from '../errno.ts';
import { rdmaMachine } from './fixture.ts';

const K4 = 0x1000n;
const M2 = 0x20_0000n;
const G1 = 0x4000_0000n;
const ALL = K4 | M2 | G1;
const VA = 0x7f00_0000_0000n; // 1G aligned

function layout(address: bigint, length: bigint, dma: [bigint, bigint][]) {
  return { address, length, dma: DmaRangeList.fromRanges(dma) };
}

describe('helpers', () => {
  it('bits_per and GENMASK', () => {
    expect(bitsPer(0n)).toBe(1);
    expect(bitsPer(1n)).toBe(1);
    expect(bitsPer(0x1fffffn)).toBe(21);
    expect(bitsPer(0x200000n)).toBe(22);
    expect(genmask(63, 21)).toBe(0xffff_ffff_ffe0_0000n);
    expect(genmask(12, 0)).toBe(0x1fffn);
  });
});

describe('ib_umem_find_best_pgsz vectors', () => {
  it('an IOVA range that wraps past 2^64 fits no page size (check_add_overflow on length - 1 + virt)', () => {
    // Found by the differential test against 6.12's umem.c: the kernel returns 0 before looking at
    // the segments; with the sum wrapped instead, 2M would come out here.
    const top = (1n << 64n) - M2;
    expect(ibUmemFindBestPgsz(layout(0n, 4n * M2, [[0n, 4n * M2]]), K4 | M2, top)).toBe(0n);
    // The last byte exactly at 2^64 - 1 does not overflow.
    expect(ibUmemFindBestPgsz(layout(0n, M2, [[0n, M2]]), K4 | M2, top)).toBe(M2);
  });

  it('bitmap with only 4K gives 4K for a 2M-aligned 2M buffer', () => {
    // span: 0x1fffff → 21 bits; GENMASK(63,21) & 4K = 0. seg: 0x2_0000_0000 ^ VA → ctz 33.
    // bitmap & GENMASK(33,0) = 4K.
    expect(ibUmemFindBestPgsz(layout(VA, M2, [[0x2_0000_0000n, M2]]), K4, VA)).toBe(K4);
  });

  it('one 2M-aligned segment under a 2M-aligned VA gives 2M', () => {
    // GENMASK(63,21) & ALL = 2M|1G → ctz(mask) = 21 → 4K|2M → 2M.
    expect(ibUmemFindBestPgsz(layout(VA, M2, [[0x2_0000_0000n, M2]]), ALL, VA)).toBe(M2);
  });

  it('IOVA differing from VA: only its alignment against the DMA address counts', () => {
    const umem = layout(VA, (4n * M2) / 2n, [[0x2_0000_0000n, 2n * M2]]);
    // virt 0x1000: span (0x3fffff + 0x1000) ^ 0x1000 = 0x401fff → 23 bits → mask 1G;
    // seg 0x2_0000_0000 ^ 0x1000 → bit 12 → 4K.
    expect(ibUmemFindBestPgsz(umem, ALL, 0x1000n)).toBe(K4);
    // virt 2M: span 0x5fffff ^ 0x200000 = 0x7fffff → 23 bits → 1G; seg ^ 0x200000 → ctz 21 → 2M.
    expect(ibUmemFindBestPgsz(umem, ALL, M2)).toBe(M2);
  });

  it('sub-page offset: pgoff joins the first DMA address and must match the IOVA offset', () => {
    const umem = layout(VA + 0x100n, 0x2000n, [[0x3_0000_0000n, 0x3000n]]);
    // span 0x21ff → 14 bits → mask 2M; seg (0x3_0000_0100) ^ (VA + 0x100) = 0x7f03_0000_0000 → ctz 21 → 2M.
    expect(ibUmemFindBestPgsz(umem, K4 | M2, VA + 0x100n)).toBe(M2);
    // IOVA offset 0x200 against DMA offset 0x100: ... ^ → 0x...0300 → ctz 8 → GENMASK(8,0) & bitmap = 0.
    expect(ibUmemFindBestPgsz(umem, K4 | M2, VA + 0x200n)).toBe(0n);
  });

  it('mixed-size segments: a physical break at an unaligned VA limits the page to 4K', () => {
    const umem = layout(VA, 2n * M2, [
      [0x1_0000_0000n, M2],
      [0x1_0020_0000n, 0x1000n], // contiguous with the first: skipped
      [0x5_0000_1000n, M2 - 0x1000n],
    ]);
    // seg0: 0x1_0000_0000 ^ VA → ctz 32. seg1 skipped. seg2 at va VA+0x201000:
    // 0x5_0000_1000 ^ 0x7f00_0020_1000 → ctz 21, and mask |= va → ctz 12 → 4K.
    expect(ibUmemFindBestPgsz(umem, ALL, VA)).toBe(K4);
  });

  it('contiguous segments are one run: 2 x 2M at a 1G-aligned DMA address gives 1G', () => {
    const umem = layout(VA, 2n * M2, [
      [0x1_0000_0000n, M2],
      [0x1_0020_0000n, M2],
    ]);
    // span 0x3fffff → 22 bits → mask = 1G bit; seg0 ^ VA → ctz 32; seg1 contiguous → nothing.
    // ctz(mask) = 30 → 4K|2M|1G → 1G (the smallest size not below the range's span bits).
    expect(ibUmemFindBestPgsz(umem, ALL, VA)).toBe(G1);
    // Without 1G in the bitmap: GENMASK(63,22) & (4K|2M) = 0 → ctz 32 → 2M.
    expect(ibUmemFindBestPgsz(umem, K4 | M2, VA)).toBe(M2);
  });

  it('huge segments: two discontiguous 1G folios give 1G', () => {
    const umem = layout(VA, 2n * G1, [
      [0x4000_0000n, G1],
      [0x1_0000_0000n, G1],
    ]);
    // span 0x7fffffff → 31 bits → GENMASK(63,31) & ALL = 0. seg0 ^ VA → ctz 30;
    // seg1 at va VA+1G: 0x1_0000_0000 ^ 0x7f00_4000_0000 → ctz 30, va itself → ctz 30 → 1G.
    expect(ibUmemFindBestPgsz(umem, ALL, VA)).toBe(G1);
    // IOVA 2M aligned only: 0x4000_0000 ^ 0x20_0000 → ctz 21 → 2M.
    expect(ibUmemFindBestPgsz(umem, ALL, M2)).toBe(M2);
  });

  it('returns 0 when the bitmap holds only sizes the layout cannot use', () => {
    const umem = layout(VA + 0x1000n, 0x1000n, [[0x3_0000_5000n, 0x1000n]]);
    // span 0xfff → 12 bits → GENMASK(63,12) & 2M = 2M; seg 0x3_0000_5000 ^ (VA+0x1000) → ctz 14
    // → 2M & GENMASK(14,0) = 0.
    expect(ibUmemFindBestPgsz(umem, M2, VA + 0x1000n)).toBe(0n);
    expect(ibUmemFindBestPgsz(umem, K4 | M2, VA + 0x1000n)).toBe(K4);
  });
});

describe('dma blocks', () => {
  it('ib_umem_num_dma_blocks counts the pages the IOVA range touches', () => {
    expect(ibUmemNumDmaBlocks(VA + 0x100n, 0x2000n, K4)).toBe(3);
    expect(ibUmemNumDmaBlocks(VA + 0x100n, 0x2000n, M2)).toBe(1);
    expect(ibUmemNumDmaBlocks(VA + M2 - 0x1000n, 0x2000n, M2)).toBe(2);
  });

  it('rdma_umem_for_each_dma_block walks blocks across segments', () => {
    const dma = DmaRangeList.fromRanges([
      [0x1_0000_0000n, M2],
      [0x1_0020_0000n, 0x1000n],
      [0x5_0000_1000n, M2 - 0x1000n],
    ]);
    const blocks = umemDmaBlocks(dma, K4, 1024);
    expect(blocks[0]).toBe(0x1_0000_0000n);
    expect(blocks[512]).toBe(0x1_0020_0000n);
    expect(blocks[513]).toBe(0x5_0000_1000n);
    expect(blocks[1023]).toBe(0x5_001f_f000n);
    const huge = DmaRangeList.fromRanges([
      [0x4000_0000n, G1],
      [0x1_0000_0000n, G1],
    ]);
    expect([...umemDmaBlocks(huge, G1, 2)]).toEqual([0x4000_0000n, 0x1_0000_0000n]);
    // A 2M block made of two contiguous 1M segments is one block.
    const halves = DmaRangeList.fromRanges([
      [0x20_0000n, 0x10_0000n],
      [0x30_0000n, 0x10_0000n],
    ]);
    expect([...umemDmaBlocks(halves, M2, 1)]).toEqual([0x20_0000n]);
  });
});

describe('on-demand paging umems (umem.c: if (umem->is_odp) return the page_shift size or 0)', () => {
  const empty = DmaRangeList.fromRanges([]);
  it('2^page_shift when the bitmap holds it, whatever the VA and length', () => {
    // A region that alone would allow 1G pages still gets 4K: ODP maps page by page.
    expect(ibUmemFindBestPgsz({ address: VA, length: G1, dma: empty, odpPageShift: 12 }, ALL, VA)).toBe(K4);
    expect(ibUmemFindBestPgsz({ address: VA, length: G1, dma: empty, odpPageShift: 21 }, ALL, VA)).toBe(M2);
    // An unaligned VA does not matter either.
    expect(
      ibUmemFindBestPgsz({ address: VA + 0x10n, length: K4, dma: empty, odpPageShift: 21 }, M2, VA),
    ).toBe(M2);
  });

  it('0 when the bitmap lacks that size, even if a smaller one is there', () => {
    expect(ibUmemFindBestPgsz({ address: VA, length: G1, dma: empty, odpPageShift: 21 }, K4 | G1, VA)).toBe(
      0n,
    );
    expect(ibUmemFindBestPgsz({ address: VA, length: G1, dma: empty, odpPageShift: 12 }, M2, VA)).toBe(0n);
  });

  it('ib_umem_odp_get: PAGE_SHIFT, HPAGE_SHIFT with IB_ACCESS_HUGETLB, EINVAL without ON_DEMAND', () => {
    const { device } = rdmaMachine();
    const odp = ibUmemOdpGet(device, VA, M2, IB_ACCESS_ON_DEMAND | IB_ACCESS_LOCAL_WRITE);
    expect(odp.pageShift).toBe(12);
    expect(odp.writable).toBe(true);
    expect(ibUmemOdpGet(device, VA, M2, IB_ACCESS_ON_DEMAND | IB_ACCESS_HUGETLB).pageShift).toBe(21);
    expectErrno(() => ibUmemOdpGet(device, VA, M2, IB_ACCESS_LOCAL_WRITE), 'EINVAL', /ON_DEMAND/);
    expectErrno(() => odp.mappedRanges(), 'EINVAL', /on fault/);
  });
});

describe('rules the mutation run found untested (issue 13)', () => {
  it('after an unaligned first page, the next break VA is virt + len - pgoff (umem.c: va += sg_dma_len - pgoff)', () => {
    // virt = VA + 0x800 (pgoff 0x800), length 4M - 0x800, two 2M DMA segments that do not touch.
    // span: last = VA + 4M - 1; (last ^ virt) = 0x3ff7ff → 22 bits; ALL & GENMASK(63,22) = 1G.
    // seg 0: (0x2_0000_0000 + 0x800) ^ (VA + 0x800) = 0x7f02_0000_0000 → ctz 33; va = VA + 2M.
    // seg 1: 0x3_0020_0000 ^ (VA + 2M) = 0x7f03_0000_0000 → ctz 32; | va = VA + 2M → ctz 21.
    // ALL & GENMASK(21,0) = 4K | 2M → 2M. (With va = VA + 0x800 ± 2M the break is not 4K aligned: 0.)
    const umem = layout(VA + 0x800n, 4n * 0x10_0000n - 0x800n, [
      [0x2_0000_0000n, M2],
      [0x3_0020_0000n, M2],
    ]);
    expect(ibUmemFindBestPgsz(umem, ALL, VA + 0x800n)).toBe(M2);
  });

  it('the break VA is virt plus the segment lengths walked, not minus (va += sg_dma_len)', () => {
    // virt = VA + 6M (ctz 21), two 2M segments that do not touch, sizes 4K, 2M, 4M, 8M offered.
    // span: last = VA + 10M - 1; (last ^ virt) = 0xffffff → 24 bits; GENMASK(63,24) & bitmap = 0.
    // seg 0: 0x2_0060_0000 ^ (VA + 6M) = 0x7f02_0000_0000 → ctz 33; va = VA + 8M.
    // seg 1: 0x3_0080_0000 ^ (VA + 8M) = 0x7f03_0000_0000 → ctz 32; | va = VA + 8M → ctz 23.
    // bitmap & GENMASK(23,0) = everything offered → 8M (two 8M pages cover VA..VA+16M).
    const M4 = 0x40_0000n;
    const M8 = 0x80_0000n;
    const virt = VA + 3n * M2;
    const umem = layout(virt, 2n * M2, [
      [0x2_0060_0000n, M2],
      [0x3_0080_0000n, M2],
    ]);
    expect(ibUmemFindBestPgsz(umem, K4 | M2 | M4 | M8, virt)).toBe(M8);
  });

  it('an empty page-size bitmap fits nothing: 0, not an error', () => {
    expect(ibUmemFindBestPgsz(layout(VA, M2, [[0x2_0000_0000n, M2]]), 0n, VA)).toBe(0n);
  });

  it('the page-size bitmap is an unsigned long: all 64 bits are taken, anything outside is EINVAL', () => {
    // Only bit 12 of 2^64 - 1 and below the range span matter: a 4K buffer at VA gets 4K.
    const umem = layout(VA, K4, [[0x2_0000_0000n, K4]]);
    expect(ibUmemFindBestPgsz(umem, (1n << 64n) - 1n, VA)).toBe(K4);
    expectErrno(() => ibUmemFindBestPgsz(umem, -1n, VA), 'EINVAL', /u64/);
    expectErrno(() => ibUmemFindBestPgsz(umem, 1n << 64n, VA), 'EINVAL', /u64/);
  });

  it('rdma_umem_for_each_dma_block stops after ib_umem_num_dma_blocks blocks (verbs.c: __sg_numblocks)', () => {
    // Three mapped 4K pages, an MR that needs two: the walk ends after 0x10000 and 0x11000.
    const dma = DmaRangeList.fromRanges([[0x10000n, 0x3000n]]);
    expect([...umemDmaBlocks(dma, K4, 2)]).toEqual([0x10000n, 0x11000n]);
    // Asking for more blocks than the segments hold is refused.
    expectErrno(() => umemDmaBlocks(dma, K4, 4), 'EINVAL', /hold 3 blocks/);
  });

  it('a segment that starts inside a block advances by what is left of the block (delta = pgsz - offset)', () => {
    // pgsz 8K, one segment 0x1000..0x3fff: block 0x0 (delta 0x2000 - 0x1000 = 0x1000, 0x2000 left
    // in the segment), then block 0x2000 (delta 0x2000 covers the rest).
    const dma = DmaRangeList.fromRanges([[0x1000n, 0x3000n]]);
    expect([...umemDmaBlocks(dma, 0x2000n, 2)]).toEqual([0x0n, 0x2000n]);
  });
});
