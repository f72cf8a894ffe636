/**
 * Target 1: lib/scatterlist.c sg_alloc_append_table_from_pages (one table, several appends) and
 * sg_alloc_table_from_pages_segment, against src/core/sg-table.ts. Compares the return codes,
 * nents, orig_nents, total_nents, the last entry written, and every allocated struct scatterlist
 * (page frame, offset, length, end mark, chain target) in allocation order.
 */
import { join } from 'node:path';
import {
  ERRNO,
  isPhysrError,
  type SeededRandom,
  SgAppendTable,
  type SgTable,
  sgAllocTableFromPagesSegment,
} from '../../../src/core/index.ts';
import { C_DIR, type DiffTarget, extractFunctions, gcc, writeGenerated } from '../harness.ts';

interface AppendCall {
  readonly offset: number;
  readonly size: bigint;
  readonly maxSegment: number;
  readonly leftPages: number;
  readonly pfns: readonly bigint[];
}

export interface SgCase {
  readonly mode: 'seg' | 'app';
  readonly calls: readonly AppendCall[];
}

const PAGE = 4096;
const UINT_MAX = 0xffff_ffff;

/** Page frames in runs: mostly contiguous, with jumps, repeats and backward steps. */
function randomPfns(rng: SeededRandom, count: number, start: bigint): bigint[] {
  const pfns: bigint[] = [];
  let pfn = start;
  for (let i = 0; i < count; i++) {
    pfns.push(pfn);
    const r = rng.next();
    if (r < 0.75) pfn += 1n;
    else if (r < 0.85) pfn += BigInt(rng.int(2, 600));
    else if (r < 0.9) pfn = BigInt(rng.int(1, 2 ** 30)) * 16n;
    else if (r < 0.95) pfn = pfn > 5n ? pfn - BigInt(rng.int(1, 5)) : pfn + 7n;
    // else the same page again
  }
  return pfns;
}

function randomMaxSegment(rng: SeededRandom): number {
  return rng.pick([
    0,
    100,
    PAGE,
    PAGE + 1,
    2 * PAGE,
    3 * PAGE + 5,
    64 * 1024,
    1 << 20,
    rng.int(1, 1 << 22),
    UINT_MAX - (PAGE - 1),
    UINT_MAX,
  ]);
}

/** size: usually what the pages hold after offset, sometimes short of it or past it. */
function randomSize(rng: SeededRandom, pages: number, offset: number): bigint {
  const full = pages * PAGE - offset;
  const r = rng.next();
  if (r < 0.6) return BigInt(full);
  if (r < 0.85) return BigInt(Math.max(1, full - rng.int(0, PAGE - 1)));
  if (r < 0.95) return BigInt(rng.int(1, full));
  return BigInt(full + rng.int(1, 3 * PAGE));
}

function generate(rng: SeededRandom): SgCase {
  const mode = rng.next() < 0.3 ? 'seg' : 'app';
  const ncalls = mode === 'seg' ? 1 : rng.int(1, 6);
  const big = rng.next() < 0.15;
  const counts = Array.from({ length: ncalls }, () => (big ? rng.int(100, 700) : rng.int(1, 40)));
  const baseMax = randomMaxSegment(rng);
  let pfn = BigInt(rng.int(1, 2 ** 28));
  const calls: AppendCall[] = [];
  for (let i = 0; i < ncalls; i++) {
    // Later appends usually continue where the previous call ended, so they can merge into it.
    if (i > 0 && rng.next() < 0.3) pfn = BigInt(rng.int(1, 2 ** 28));
    const pfns = randomPfns(rng, counts[i]!, pfn);
    pfn = pfns[pfns.length - 1]! + 1n;
    const offset = i === 0 ? (rng.next() < 0.5 ? 0 : rng.int(0, PAGE - 1)) : rng.next() < 0.04 ? 8 : 0;
    const exactLeft = counts.slice(i + 1).reduce((a, b) => a + b, 0);
    const leftPages = exactLeft > 0 && rng.next() < 0.2 ? rng.int(1, exactLeft + 5) : exactLeft;
    // Whole pages unless this is the last call: a later append merges only from a page boundary.
    const size = i + 1 < ncalls ? BigInt(counts[i]! * PAGE - offset) : randomSize(rng, counts[i]!, offset);
    calls.push({
      offset,
      size,
      maxSegment: rng.next() < 0.8 ? baseMax : randomMaxSegment(rng),
      leftPages: mode === 'seg' ? 0 : leftPages,
      pfns,
    });
  }
  return { mode, calls };
}

function encode(c: SgCase): string {
  const call = (a: AppendCall, withLeft: boolean) =>
    [a.offset, a.size, a.maxSegment, ...(withLeft ? [a.leftPages] : []), a.pfns.length, ...a.pfns].join(' ');
  if (c.mode === 'seg') return `seg ${call(c.calls[0]!, false)}`;
  return `app ${c.calls.length} ${c.calls.map((a) => call(a, true)).join(' ')}`;
}

/** A refusal as the kernel's negative errno; anything else is a model bug and propagates. */
function rcOf(fn: () => void): number {
  try {
    fn();
    return 0;
  } catch (e) {
    if (isPhysrError(e)) return -ERRNO[e.errno];
    throw e;
  }
}

function slotsOf(t: SgTable): string {
  const out: string[] = [];
  for (let s = 0; s < t.slotCount; s++) {
    if (t.isChain(s)) out.push(`c${t.pfnAt(s)}`);
    else out.push(`${t.pfnAt(s)}+${t.offsetAt(s)}:${t.lengthAt(s)}${t.isLast(s) ? 'e' : ''}`);
  }
  return `slots=${t.slotCount} |${out.map((s) => ` ${s}`).join('')}`;
}

function model(c: SgCase): string {
  if (c.mode === 'seg') {
    const a = c.calls[0]!;
    let table: SgTable | undefined;
    const rc = rcOf(() => {
      table = sgAllocTableFromPagesSegment(a.pfns, a.offset, a.size, a.maxSegment);
    });
    if (!table) return `rc=${rc}`;
    return `rc=0 nents=${table.nents} orig=${table.origNents} ${slotsOf(table)}`;
  }
  const app = new SgAppendTable();
  const rcs = c.calls.map((a) =>
    rcOf(() => app.appendFromPages(a.pfns, a.offset, a.size, a.maxSegment, a.leftPages)),
  );
  const t = app.sgt;
  return `rc=${rcs.join(',')} nents=${t.nents} orig=${t.origNents} total=${app.totalNents} prv=${app.prv} ${slotsOf(t)}`;
}

const EXTRACTED = [
  'sg_next',
  'sg_init_table',
  'sg_kmalloc',
  'sg_kfree',
  '__sg_free_table',
  'sg_free_append_table',
  'get_next_sg',
  'pages_are_mergeable',
  'sg_alloc_append_table_from_pages',
  'sg_alloc_table_from_pages_segment',
];

export const scatterlistTarget: DiffTarget<SgCase> = {
  name: 'scatterlist',
  files: ['lib/scatterlist.c', 'include/linux/scatterlist.h', 'tools/include'],
  cases: { ci: 3000, thorough: 100_000 },
  build(tree, outDir) {
    writeGenerated(
      outDir,
      'scatterlist-extracted.c',
      extractFunctions(join(tree, 'lib/scatterlist.c'), EXTRACTED),
    );
    // scatterlist.h is read from a folder of its own so the rest of include/ stays out of the build.
    writeGenerated(
      join(outDir, 'include/linux'),
      'scatterlist.h',
      `#include "${join(tree, 'include/linux/scatterlist.h')}"\n`,
    );
    return gcc(
      [
        // The model's layout: 64-bit with dma_length and dma_flags (32-byte entries, 128 a page).
        '-DCONFIG_NEED_SG_DMA_LENGTH',
        '-DCONFIG_NEED_SG_DMA_FLAGS',
        `-I${join(C_DIR, 'scatterlist/shim')}`,
        `-I${join(outDir, 'include')}`,
        `-I${outDir}`,
        `-I${join(tree, 'tools/include')}`,
        join(C_DIR, 'scatterlist/driver.c'),
      ],
      outDir,
      'scatterlist',
    );
  },
  generate,
  encode,
  model: (c) => model(c),
};
