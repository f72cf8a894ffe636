/**
 * Target 6: ib_umem_find_best_pgsz (drivers/infiniband/core/umem.c, extracted by name) against
 * src/rdma/best-pgsz.ts over random DMA segment lists, page-size bitmaps, user addresses and IOVAs.
 */
import { join } from 'node:path';
import { DmaRangeList, type SeededRandom } from '../../../src/core/index.ts';
import { ibUmemFindBestPgsz } from '../../../src/rdma/index.ts';
import { C_DIR, type DiffTarget, extractFunctions, gcc, upstreamChange, writeGenerated } from '../harness.ts';

export interface BestPgszCase {
  readonly bitmap: bigint;
  readonly virt: bigint;
  readonly address: bigint;
  readonly length: bigint;
  readonly dma: readonly (readonly [bigint, bigint])[];
}

const PAGE = 4096n;
const U64 = 1n << 64n;

function randomBitmap(rng: SeededRandom): bigint {
  const r = rng.next();
  if (r < 0.3) return PAGE | (1n << 21n) | (1n << 30n);
  if (r < 0.4) return 0xffff_ffff_ffff_f000n; // every size from 4K (mlx5-like)
  let bitmap = rng.next() < 0.5 ? PAGE : 0n;
  const n = rng.int(1, 5);
  for (let i = 0; i < n; i++) bitmap |= 1n << BigInt(rng.next() < 0.85 ? rng.int(12, 34) : rng.int(0, 63));
  return bitmap;
}

/** DMA segments covering the pages of [address, address + length): runs, breaks, odd sizes. */
function randomSegments(rng: SeededRandom, address: bigint, length: bigint): [bigint, bigint][] {
  const pgoff = address % PAGE;
  let left = ((pgoff + length + PAGE - 1n) / PAGE) * PAGE;
  const segs: [bigint, bigint][] = [];
  let dma = (rng.bigBelow(1n << 40n) / PAGE) * PAGE;
  // Often at the user address's offset within 1G, so large pages can pass.
  if (rng.next() < 0.5) dma = ((dma >> 30n) << 30n) + (address % (1n << 30n)) - pgoff;
  while (left > 0n) {
    const r0 = rng.next();
    let len = PAGE * BigInt(r0 < 0.7 ? rng.int(1, 8) : r0 < 0.95 ? rng.int(1, 1024) : rng.int(1, 65536));
    if (rng.next() < 0.01) len = BigInt(rng.int(1, 8191)); // a dma-buf piece not a page multiple
    if (len > left) len = left;
    segs.push([dma, len]);
    left -= len;
    const r = rng.next();
    if (r < 0.6)
      dma += len; // physically contiguous with the next one
    else if (r < 0.8) dma = (rng.bigBelow(1n << 40n) / PAGE) * PAGE;
    else if (r < 0.9)
      dma = ((rng.bigBelow(1n << 40n) >> 30n) << 30n) + ((address + length - left) % (1n << 30n));
    else
      dma =
        ((rng.bigBelow(1n << 40n) >> 21n) << 21n) + (rng.next() < 0.5 ? 0n : PAGE * BigInt(rng.int(1, 511)));
  }
  return segs;
}

function generate(rng: SeededRandom): BestPgszCase {
  const bitmap = randomBitmap(rng);
  const address = rng.bigBelow(1n << 47n);
  const r0 = rng.next();
  const length = BigInt(rng.int(1, r0 < 0.6 ? 2 ** 18 : r0 < 0.9 ? 2 ** 26 : 2 ** 31));
  const dma = randomSegments(rng, address, length);
  const r = rng.next();
  let virt: bigint;
  if (r < 0.4) virt = address;
  else if (r < 0.7) virt = (rng.bigBelow(1n << 40n) << 21n) + (address % (1n << 21n));
  // Near the top: length - 1 + virt may overflow (the kernel answers 0 then).
  else if (r < 0.8) virt = U64 - (rng.bigBelow(2n * length) + 1n);
  else virt = rng.bigBelow(U64);
  return { bitmap, virt, address, length, dma };
}

function encode(c: BestPgszCase): string {
  return [c.bitmap, c.virt, c.address, c.length, c.dma.length, ...c.dma.flat()].join(' ');
}

function model(c: BestPgszCase): string {
  const dma = DmaRangeList.fromRanges(c.dma.map(([a, l]) => [a, l] as [bigint, bigint]));
  return String(ibUmemFindBestPgsz({ address: c.address, length: c.length, dma }, c.bitmap, c.virt));
}

export const bestPgszTarget: DiffTarget<BestPgszCase> = {
  name: 'best-pgsz',
  files: [
    'drivers/infiniband/core/umem.c',
    'lib/scatterlist.c',
    'include/linux/scatterlist.h',
    'tools/include',
  ],
  cases: { ci: 4000, thorough: 200_000 },
  // Both rules the model follows (Linux 7.1) reached 6.12 through stable: Debian's 6.12.117 has them,
  // so the comparison is exact without a 6.12 mode of the model.
  knownDifferences: [
    upstreamChange(
      '6.15',
      'RDMA/core: Fix best page size finding when it can cross SG entries',
      'an SG entry physically contiguous with the previous one adds nothing to the mask (stable 6.12.32)',
    ),
    upstreamChange(
      '7.1',
      'Be careful about boundary conditions in',
      'length - 1 + virt overflowing u64 gives 0; a 64-bit span leaves the mask empty (posted June 2026, Cc: stable; in Debian 6.12.111)',
    ),
  ],
  build(tree, outDir) {
    writeGenerated(
      outDir,
      'umem-extracted.c',
      extractFunctions(join(tree, 'drivers/infiniband/core/umem.c'), ['ib_umem_find_best_pgsz']),
    );
    writeGenerated(
      outDir,
      'scatterlist-extracted.c',
      extractFunctions(join(tree, 'lib/scatterlist.c'), ['sg_next', 'sg_init_table']),
    );
    writeGenerated(
      join(outDir, 'include/linux'),
      'scatterlist.h',
      `#include "${join(tree, 'include/linux/scatterlist.h')}"\n`,
    );
    return gcc(
      [
        '-DCONFIG_NEED_SG_DMA_LENGTH',
        '-DCONFIG_NEED_SG_DMA_FLAGS',
        `-I${join(C_DIR, 'best-pgsz')}`,
        `-I${join(C_DIR, 'scatterlist/shim')}`,
        `-I${join(outDir, 'include')}`,
        `-I${outDir}`,
        `-I${join(tree, 'tools/include')}`,
        join(C_DIR, 'best-pgsz/driver.c'),
      ],
      outDir,
      'best-pgsz',
    );
  },
  generate,
  encode,
  model: (c) => model(c),
};
