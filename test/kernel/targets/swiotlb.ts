/**
 * Target 7: the swiotlb slot search (kernel/dma/swiotlb.c: swiotlb_tbl_map_single, swiotlb_find_slots,
 * swiotlb_search_pool_area, swiotlb_release_slots, extracted by name) against src/dma/swiotlb.ts.
 * One pool of one area (a one-CPU machine; the model has no areas yet), random original addresses,
 * sizes, alloc_align_mask, min_align_mask and segment boundaries; maps and releases interleaved.
 * Compared: every bounce address (the slot index and the offset in it), and every failure.
 */
import { join } from 'node:path';
import { isPhysrError, Metrics, type SeededRandom } from '../../../src/core/index.ts';
import { Swiotlb, type SwiotlbBounce } from '../../../src/dma/index.ts';
import { ByteStore } from '../../../src/platform/index.ts';
import { C_DIR, type DiffTarget, extractFunctions, gcc, writeGenerated } from '../harness.ts';

type SwiotlbOp =
  | { readonly op: 'm'; readonly orig: bigint; readonly size: number; readonly alignMask: number }
  | { readonly op: 'u'; readonly index: number };

export interface SwiotlbCase {
  readonly start: bigint;
  readonly nslabs: number;
  readonly minAlignMask: number;
  readonly boundary: bigint;
  readonly ops: readonly SwiotlbOp[];
}

const U64_MAX = (1n << 64n) - 1n;

function generate(rng: SeededRandom): SwiotlbCase {
  const nslabs = 128 * rng.pick([1, 2, 4, 8]);
  const start = BigInt(rng.int(1, 0x7_ffff)) << 12n;
  const minAlignMask = rng.pick([0, 0, 0xfff, 0x7ff, 0x3, 0xffff, 0x1fff]);
  const boundary = rng.pick([U64_MAX, U64_MAX, 0xffffn, 0xf_ffffn, 0x3_ffffn]);
  const ops: SwiotlbOp[] = [];
  const maps: number[] = [];
  const n = rng.int(1, rng.next() < 0.8 ? 40 : 300);
  for (let i = 0; i < n; i++) {
    if (maps.length > 0 && rng.next() < 0.4) {
      ops.push({ op: 'u', index: maps.splice(rng.int(0, maps.length - 1), 1)[0]! });
      continue;
    }
    const r = rng.next();
    const size = r < 0.6 ? rng.int(1, 4096) : r < 0.93 ? rng.int(1, 32768) : rng.int(1, 300_000);
    const alignMask = rng.pick([0, 0, 0, 0xfff, 0x7ff, 0x3fff, 0xffff]);
    ops.push({ op: 'm', orig: BigInt(rng.int(0, 2 ** 40)), size, alignMask });
    maps.push(ops.length - 1);
  }
  return { start, nslabs, minAlignMask, boundary, ops };
}

function encode(c: SwiotlbCase): string {
  const ops = c.ops.map((o) => (o.op === 'm' ? `m ${o.orig} ${o.size} ${o.alignMask}` : `u ${o.index}`));
  return `${c.start} ${c.nslabs} ${c.minAlignMask} ${c.boundary} ${c.ops.length} ${ops.join(' ')}`;
}

function model(c: SwiotlbCase): string {
  const pool = new Swiotlb(c.start, BigInt(c.nslabs) << 11n, new ByteStore(), new Metrics());
  const done: (SwiotlbBounce | undefined)[] = [];
  const out: string[] = [];
  for (const o of c.ops) {
    if (o.op === 'm') {
      try {
        const b = pool.map(o.orig, BigInt(o.size), {
          minAlignMask: BigInt(c.minAlignMask),
          allocAlignMask: BigInt(o.alignMask),
          segmentBoundaryMask: c.boundary,
        });
        done.push(b);
        out.push(String(b.tlbAddr));
      } catch (e) {
        // The kernel answers DMA_MAPPING_ERROR both when no slots are free and when it never fits.
        if (!isPhysrError(e, 'ENOMEM') && !isPhysrError(e, 'EINVAL')) throw e;
        done.push(undefined);
        out.push('E');
      }
      continue;
    }
    const b = done[o.index];
    done.push(undefined);
    if (!b) {
      out.push('-');
      continue;
    }
    pool.unmap(b, 'TO_DEVICE', true);
    done[o.index] = undefined;
    out.push('u');
  }
  return out.join(' ');
}

const EXTRACTED = [
  'io_tlb_offset',
  'nr_slots',
  'slot_addr',
  'get_max_slots',
  'wrap_area_index',
  'swiotlb_align_offset',
  'swiotlb_search_pool_area',
  // The second definition: the one for kernels without CONFIG_SWIOTLB_DYNAMIC (one pool).
  'swiotlb_find_slots#2',
  'swiotlb_tbl_map_single',
  'swiotlb_release_slots',
];

export const swiotlbTarget: DiffTarget<SwiotlbCase> = {
  name: 'swiotlb',
  files: ['kernel/dma/swiotlb.c', 'include/linux/iommu-helper.h', 'tools/include'],
  cases: { ci: 2000, thorough: 50_000 },
  build(tree, outDir) {
    writeGenerated(
      outDir,
      'swiotlb-extracted.c',
      extractFunctions(join(tree, 'kernel/dma/swiotlb.c'), EXTRACTED),
    );
    writeGenerated(
      join(outDir, 'include/linux'),
      'iommu-helper.h',
      `#include "${join(tree, 'include/linux/iommu-helper.h')}"\n`,
    );
    return gcc(
      [
        // phys_addr_t is 64-bit, as on every machine the model describes.
        '-DCONFIG_PHYS_ADDR_T_64BIT',
        `-I${join(C_DIR, 'swiotlb')}`,
        `-I${join(outDir, 'include')}`,
        `-I${outDir}`,
        `-I${join(tree, 'tools/include')}`,
        join(C_DIR, 'swiotlb/driver.c'),
      ],
      outDir,
      'swiotlb',
    );
  },
  generate,
  encode,
  model: (c) => model(c),
};
