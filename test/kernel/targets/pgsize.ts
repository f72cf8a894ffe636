/**
 * Target 3: iommu_pgsize and the __iommu_map loop (drivers/iommu/iommu.c, both static, extracted by
 * name) against src/iommu/pgsize.ts and IoPageTable.map. `pg` cases compare one (pgsize, count) choice
 * over any bitmap; `map` cases compare every (pgsize, count) step the map loop hands to map_pages,
 * and its return code, on the model's real page table for x86 and ARM 4K/16K/64K formats. The model
 * writes a map's leaves in one walk (no map_pages call to watch), so its steps are the loop over
 * the model's iommuPgsize, and the table must hold each step's first and last leaf at its page
 * size, with as many leaves written as the steps count.
 */
import { join } from 'node:path';
import { ERRNO, isPhysrError, type SeededRandom } from '../../../src/core/index.ts';
import {
  armLpaeFormat,
  IOMMU_READ,
  IOMMU_WRITE,
  IoPageTable,
  iommuPgsize,
  type PageTableFormat,
  x86SecondStageFormat,
} from '../../../src/iommu/index.ts';
import { C_DIR, type DiffTarget, extractFunctions, gcc, writeGenerated } from '../harness.ts';

export interface PgsizeCase {
  readonly op: 'pg' | 'map';
  /** For map: which model format the bitmap is a subset of. */
  readonly format: string;
  readonly bitmap: bigint;
  readonly iova: bigint;
  readonly paddr: bigint;
  readonly size: bigint;
}

const FORMATS: Record<string, () => PageTableFormat> = {
  x86: () => x86SecondStageFormat(4),
  arm4k: () => armLpaeFormat({ granule: 4096 }),
  arm16k: () => armLpaeFormat({ granule: 16384 }),
  arm64k: () => armLpaeFormat({ granule: 65536 }),
};

function bits(value: bigint): number[] {
  const out: number[] = [];
  for (let b = 0; b < 64; b++) if ((value >> BigInt(b)) & 1n) out.push(b);
  return out;
}

function randomBitmap(rng: SeededRandom): bigint {
  let bitmap = 0n;
  const n = rng.int(1, 6);
  for (let i = 0; i < n; i++) bitmap |= 1n << BigInt(rng.next() < 0.8 ? rng.int(12, 40) : rng.int(0, 63));
  return bitmap;
}

/** An address aligned to `align`, sometimes at a big boundary, sometimes just past one. */
function randomAddress(rng: SeededRandom, align: bigint, topBits: number): bigint {
  const r = rng.next();
  const top = 1n << BigInt(topBits);
  const base = (rng.bigBelow(top) / align) * align;
  if (r < 0.3) return base;
  const big = 1n << BigInt(rng.int(Math.min(21, topBits - 1), topBits - 1));
  return ((base / big) * big + align * BigInt(rng.int(0, 3))) % top;
}

function generate(rng: SeededRandom): PgsizeCase {
  if (rng.next() < 0.5) {
    const bitmap = randomBitmap(rng);
    const min = 1n << BigInt(bits(bitmap)[0]!);
    const iova = randomAddress(rng, min, 63);
    const paddr = rng.next() < 0.5 ? iova : randomAddress(rng, min, 52);
    let size = min * (1n + rng.bigBelow(rng.next() < 0.5 ? 1024n : 1n << 30n));
    if (size >= 1n << 64n) size = min; // a size_t
    return { op: 'pg', format: '-', bitmap, iova, paddr, size };
  }
  const format = rng.pick(Object.keys(FORMATS));
  const all = bits(FORMATS[format]!().pgsizeBitmap);
  let bitmap = 0n;
  for (const b of all) if (rng.next() < 0.7) bitmap |= 1n << BigInt(b);
  if (bitmap === 0n) bitmap = 1n << BigInt(all[0]!);
  const sizes = bits(bitmap).map((b) => 1n << BigInt(b));
  const min = sizes[0]!;
  let iova = randomAddress(rng, min, 47);
  // Half the time paddr sits at iova's offset within 1G, so larger pages can be used.
  const giga = 1n << 30n;
  let paddr = rng.next() < 0.5 ? rng.bigBelow(1n << 13n) * giga + (iova % giga) : randomAddress(rng, min, 44);
  // Few leaves per case: the model really writes them.
  let size = min * BigInt(rng.int(1, 600));
  for (const s of sizes.slice(1)) if (s <= 1n << 30n && rng.next() < 0.5) size += s * BigInt(rng.int(0, 3));
  if (((iova ^ paddr) & ((1n << 21n) - 1n)) !== 0n && size > 64n * min) size = 64n * min;
  if (rng.next() < 0.08) iova += min / 2n || 1n;
  else if (rng.next() < 0.05) size += min / 2n || 1n;
  if (iova + size > 1n << 47n) iova = 0n;
  if (paddr + size > 1n << 44n) paddr = 0n;
  return { op: 'map', format, bitmap, iova, paddr, size };
}

function encode(c: PgsizeCase): string {
  return `${c.op} ${c.bitmap} ${c.iova} ${c.paddr} ${c.size}`;
}

function model(c: PgsizeCase): string {
  if (c.op === 'pg') {
    const step = iommuPgsize(c.bitmap, c.iova, c.paddr, c.size);
    return `${step.pgsize} ${step.count}`;
  }
  const table = new IoPageTable(FORMATS[c.format]!(), { pgsizeBitmap: c.bitmap });
  try {
    table.map(c.iova, c.paddr, c.size, IOMMU_READ | IOMMU_WRITE);
  } catch (e) {
    if (!isPhysrError(e)) throw e;
    return `steps rc=${-ERRNO[e.errno]}`;
  }
  const steps: string[] = [];
  let leaves = 0n;
  let wrong: string | undefined;
  for (let done = 0n; done < c.size; ) {
    const step = iommuPgsize(c.bitmap, c.iova + done, c.paddr + done, c.size - done);
    steps.push(`${step.pgsize}x${step.count}`);
    for (const k of [0n, step.count - 1n]) {
      const at = done + k * step.pgsize;
      const t = table.lookup(c.iova + at);
      if (t?.pageSize !== step.pgsize || t.leafIova !== c.iova + at || t.phys !== c.paddr + at) {
        wrong ??= `no ${step.pgsize} leaf for ${c.iova + at} -> ${c.paddr + at}`;
      }
    }
    leaves += step.count;
    done += step.pgsize * step.count;
  }
  const written = table.metrics.get('iommu.leaf_pte_writes');
  if (BigInt(written) !== leaves) wrong ??= `${written} leaves written for ${leaves} in the steps`;
  return `steps${steps.map((s) => ` ${s}`).join('')} rc=0${wrong ? ` | the table disagrees: ${wrong}` : ''}`;
}

export const pgsizeTarget: DiffTarget<PgsizeCase> = {
  name: 'pgsize',
  files: ['drivers/iommu/iommu.c'],
  cases: { ci: 4000, thorough: 200_000 },
  build(tree, outDir) {
    writeGenerated(
      outDir,
      'iommu-extracted.c',
      extractFunctions(join(tree, 'drivers/iommu/iommu.c'), ['iommu_pgsize', '__iommu_map']),
    );
    return gcc(
      [`-I${join(C_DIR, 'pgsize')}`, `-I${outDir}`, join(C_DIR, 'pgsize/driver.c')],
      outDir,
      'pgsize',
    );
  },
  generate,
  encode,
  model: (c) => model(c),
};
