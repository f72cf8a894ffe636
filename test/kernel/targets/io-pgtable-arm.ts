/**
 * Target 4: drivers/iommu/io-pgtable-arm.c (ARM LPAE stage 1, 4K/16K/64K granules, 48-bit IAS/OAS,
 * coherent walk), mapped and unmapped through __iommu_map / __iommu_unmap (extracted by name from
 * drivers/iommu/iommu.c), against IoPageTable with armLpaeFormat. Compared: every map's return code,
 * every unmap's returned size, and for probe addresses iova_to_phys and the leaf PTE word with its
 * level.
 *
 * Not compared, on purpose: where an empty walk ends (6.12 keeps empty table pages after an unmap;
 * the model frees them), unmaps of part of a block (6.12 splits the block; the generator unmaps whole
 * mappings), maps over a live mapping (6.12 refuses a leaf with EEXIST but lets a block replace a
 * table and what it maps; the model refuses both; the generator keeps mappings apart) and ranges
 * crossing the top of the input address space.
 */

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERRNO, isPhysrError, type SeededRandom } from '../../../src/core/index.ts';
import { armLpaeFormat, IoPageTable } from '../../../src/iommu/index.ts';
import { C_DIR, type DiffTarget, extractFunctions, gcc, writeGenerated } from '../harness.ts';

type PtOp =
  | {
      readonly op: 'm';
      readonly iova: bigint;
      readonly paddr: bigint;
      readonly size: bigint;
      readonly prot: number;
    }
  | { readonly op: 'u'; readonly iova: bigint; readonly size: bigint }
  | { readonly op: 'p'; readonly iova: bigint };

export interface PtCase {
  readonly granule: 4096 | 16384 | 65536;
  readonly bitmap: bigint;
  readonly ops: readonly PtOp[];
}

const SIZES: Record<number, bigint[]> = {
  4096: [1n << 12n, 1n << 21n, 1n << 30n],
  16384: [1n << 14n, 1n << 25n],
  65536: [1n << 16n, 1n << 29n],
};

function generate(rng: SeededRandom): PtCase {
  const granule = rng.pick([4096, 16384, 65536] as const);
  const sizes = SIZES[granule]!;
  let bitmap = sizes[0]!;
  for (const s of sizes.slice(1)) if (rng.next() < 0.8) bitmap |= s;
  const g = BigInt(granule);
  const big = sizes[1]!;
  const ops: PtOp[] = [];
  const maps: { iova: bigint; size: bigint }[] = [];
  const n = rng.int(1, 25);
  // A window of a few large pages, so mappings meet, overlap and share tables.
  const base = (rng.bigBelow(1n << 47n) / (big * 8n)) * big * 8n;
  for (let i = 0; i < n; i++) {
    const r = rng.next();
    if (r < 0.55 || maps.length === 0) {
      const iova = base + rng.bigBelow((big * 4n) / g) * g;
      const congruent = rng.next() < 0.6;
      const paddr = congruent
        ? ((rng.bigBelow(1n << 40n) / big) * big + (iova % big)) % (1n << 48n)
        : rng.bigBelow((1n << 40n) / g) * g;
      let size = g * BigInt(rng.int(1, 40));
      if (rng.next() < 0.3) size += big * BigInt(rng.int(0, 2));
      // Mappings never overlap a live one: see the file comment.
      if (maps.some((m) => m.iova < iova + size && iova < m.iova + m.size)) continue;
      const prot = rng.pick([1, 2, 3, 3, 3, 7, 11, 19, 35, 0]);
      ops.push({ op: 'm', iova, paddr, size, prot });
      maps.push({ iova, size });
    } else if (r < 0.75) {
      const m = maps.splice(rng.int(0, maps.length - 1), 1)[0]!;
      ops.push({ op: 'u', iova: m.iova, size: m.size });
    } else {
      const m = rng.pick(maps);
      ops.push({ op: 'p', iova: m.iova + rng.bigBelow(m.size) });
    }
  }
  for (const m of maps.slice(0, 6)) ops.push({ op: 'p', iova: m.iova + rng.bigBelow(m.size) });
  return { granule, bitmap, ops };
}

function encode(c: PtCase): string {
  const ops = c.ops.map((o) =>
    o.op === 'm'
      ? `m ${o.iova} ${o.paddr} ${o.size} ${o.prot}`
      : o.op === 'u'
        ? `u ${o.iova} ${o.size}`
        : `p ${o.iova}`,
  );
  return `${c.granule} ${c.bitmap} ${c.ops.length} ${ops.join(' ')}`;
}

function model(c: PtCase): string {
  const table = new IoPageTable(armLpaeFormat({ granule: c.granule, stage: 1 }), { pgsizeBitmap: c.bitmap });
  const levels = table.format.levels;
  const out = c.ops.map((o) => {
    if (o.op === 'm') {
      try {
        table.map(o.iova, o.paddr, o.size, o.prot);
        return '0';
      } catch (e) {
        if (!isPhysrError(e)) throw e;
        return String(-ERRNO[e.errno]);
      }
    }
    if (o.op === 'u') return String(table.unmap(o.iova, o.size));
    const phys = table.iovaToPhys(o.iova);
    for (let l = levels - 1; l >= 0; l--) {
      const pte = table.pteAt(o.iova, l);
      if (pte === undefined || pte === 0n) return `${phys}/-`;
      // A valid entry with the table bit above the last level is a table: walk on.
      if (l > 0 && (pte & 3n) === 3n) continue;
      return `${phys}/${3 - l}:${pte}`;
    }
    return `${phys}/-`;
  });
  return out.join(' ');
}

export const ioPgtableArmTarget: DiffTarget<PtCase> = {
  name: 'io-pgtable-arm',
  files: [
    'drivers/iommu/io-pgtable-arm.c',
    'drivers/iommu/io-pgtable-arm.h',
    'include/linux/io-pgtable.h',
    'drivers/iommu/iommu.c',
    'tools/include',
  ],
  cases: { ci: 1500, thorough: 30_000 },
  build(tree, outDir) {
    // As the kernel's own harness does with sed: the file, with its two local includes pointed at
    // the tree's io-pgtable-arm.h and at the project's shim for iommu-pages.h.
    const source = readFileSync(join(tree, 'drivers/iommu/io-pgtable-arm.c'), 'utf8')
      .replace('#include "io-pgtable-arm.h"', `#include "${join(tree, 'drivers/iommu/io-pgtable-arm.h')}"`)
      .replace('#include "iommu-pages.h"', '#include "iommu-shim.h"');
    writeGenerated(
      outDir,
      'io-pgtable-arm-source.c',
      `#line 1 "${join(tree, 'drivers/iommu/io-pgtable-arm.c')}"\n${source}`,
    );
    writeGenerated(
      join(outDir, 'include/linux'),
      'io-pgtable.h',
      `#include "${join(tree, 'include/linux/io-pgtable.h')}"\n`,
    );
    writeGenerated(
      outDir,
      'iommu-extracted.c',
      extractFunctions(join(tree, 'drivers/iommu/iommu.c'), ['iommu_pgsize', '__iommu_map', '__iommu_unmap']),
    );
    const dir = join(C_DIR, 'io-pgtable-arm');
    return gcc(
      [
        '-DCONFIG_PHYS_ADDR_T_64BIT',
        `-I${dir}`,
        `-I${join(dir, 'shim')}`,
        `-I${join(outDir, 'include')}`,
        `-I${outDir}`,
        `-I${join(tree, 'tools/include')}`,
        join(dir, 'driver.c'),
      ],
      outDir,
      'io-pgtable-arm',
    );
  },
  generate,
  encode,
  model: (c) => model(c),
};
