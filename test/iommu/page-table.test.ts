import { fc, test as propTest } from '@fast-check/vitest';
import { describe, expect, test } from 'vitest';
import { COUNTER, isPhysrError, Metrics, SZ_1G, SZ_2M, SZ_4K } from '../../src/core/index.ts';
import {
  armLpaeFormat,
  IOMMU_READ,
  IOMMU_WRITE,
  IoPageTable,
  iommuPgsize,
  type PageTableFormat,
  pageSizes,
  x86SecondStageFormat,
} from '../../src/iommu/index.ts';
import { expectErrno } from '../errno.ts';

const RW = IOMMU_READ | IOMMU_WRITE;
const FORMATS: PageTableFormat[] = [
  x86SecondStageFormat(4),
  x86SecondStageFormat(5),
  armLpaeFormat({ granule: 4096, iasBits: 48, oasBits: 48 }),
  armLpaeFormat({ granule: 16384, iasBits: 48, oasBits: 48, stage: 2 }),
  armLpaeFormat({ granule: 65536, iasBits: 42, oasBits: 48 }),
];

function totalLeaves(pt: IoPageTable): number {
  let n = 0;
  for (const v of pt.countLeaves().values()) n += v;
  return n;
}

/** Table pages reachable from the top (the top counts): what tablePages must equal, no leaks. */
function reachableTables(pt: IoPageTable): number {
  let n = 1;
  for (const [level, , word] of pt.entries()) {
    if (level > 0 && pt.format.pte.decode(word, level, pt.format.oaMask).type === 'table') n++;
  }
  return n;
}

// The generic_pt KUnit sequences (drivers/iommu/generic_pt/kunit_iommu_pt.h), in our own code.
describe.each(FORMATS.map((f) => [f.name, f] as const))('generic_pt kunit sequences: %s', (_name, format) => {
  const sizes = pageSizes(format.pgsizeBitmap);
  const smallest = sizes[0]!;
  const testOa = 1n << 40n;

  test('map_simple: one leaf of every size, each translated page by page, then unmapped', () => {
    const pt = new IoPageTable(format);
    let va = smallest * 256n;
    for (const len of sizes) {
      va = (va + len - 1n) & -len;
      const pa = testOa;
      pt.map(va, pa, len, RW);
      if (len <= SZ_2M * 16n) {
        for (let off = 0n; off < len; off += smallest) expect(pt.iovaToPhys(va + off)).toBe(pa + off);
      }
      va += len;
    }
    const counts = pt.countLeaves();
    for (const len of sizes) expect(counts.get(len)).toBe(1);
    va = smallest * 256n;
    for (const len of sizes) {
      va = (va + len - 1n) & -len;
      expect(pt.unmap(va, len)).toBe(len);
      va += len;
    }
    expect(totalLeaves(pt)).toBe(0);
    // The walk to the smallest leaf made one table per level below the top. No unmap covered a
    // whole table (generic_pt iommu_pt.h __unmap_range frees only those) nor stepped at a level
    // holding one (io-pgtable-arm.c __arm_lpae_unmap), so every table is still there.
    expect(pt.tablePages).toBe(format.levels);
    expect(reachableTables(pt)).toBe(format.levels);
  });

  test('map_table_to_oa: small pages fill a large one, are unmapped, and the large one maps in their place', () => {
    const pt = new IoPageTable(format);
    const max = sizes.filter((s) => s <= 16n * SZ_1G).at(-1)!;
    for (const len of sizes) {
      if (len > max || max / len > 1n << 12n) continue;
      const va = (smallest * 256n + max - 1n) & -max;
      for (let off = 0n; off < max; off += len) pt.map(va + off, testOa + off, len, RW);
      const tables = pt.tablePages;
      expect(pt.iovaToPhys(va + max - 1n)).toBe(testOa + max - 1n);
      expect(pt.countLeaves().get(len)).toBe(Number(max / len));
      if (len === max) {
        expect(pt.unmap(va, max)).toBe(max);
      } else {
        expect(pt.unmap(va, max / 2n)).toBe(max / 2n);
        for (let off = max / 2n; off < max; off += len) expect(pt.unmap(va + off, len)).toBe(len);
      }
      expect(totalLeaves(pt)).toBe(0);
      // Unmapping leaf by leaf (or half the table) frees no table in either walker; the next,
      // larger size maps over the emptied table, which the map replaces (see the tests below).
      expect(pt.tablePages).toBe(tables);
      expect(reachableTables(pt)).toBe(tables);
    }
  });

  test.skipIf(format.walker !== 'generic_pt')(
    'unmap_split: unmapping the first small page of a large leaf removes the whole leaf, and no more',
    () => {
      const pt = new IoPageTable(format);
      for (const base of sizes) {
        for (const next of sizes.filter((s) => s > base)) {
          pt.map(0n, 0n, next, RW);
          expect(pt.unmap(0n, base)).toBe(next);
          pt.map(0n, 0n, next, RW);
          pt.map(next, 0n, next, RW);
          expect(pt.unmap(0n, base)).toBe(next);
          expect(pt.unmap(next, next)).toBe(next);
        }
      }
      expect(reachableTables(pt)).toBe(pt.tablePages);
    },
  );

  test.skipIf(format.walker !== 'io-pgtable-arm')(
    'io-pgtable-arm: unmapping the first small page of a block unmaps nothing (no split since 6.13)',
    () => {
      // __arm_lpae_unmap (io-pgtable-arm.c, 7.1): a step at a level above a block entry returns 0.
      const pt = new IoPageTable(format);
      for (const base of sizes) {
        for (const next of sizes.filter((s) => s > base)) {
          pt.map(0n, 0n, next, RW);
          expect(pt.unmap(0n, base)).toBe(0n);
          expect(pt.iovaToPhys(base)).toBe(base);
          expect(pt.unmap(0n, next)).toBe(next);
        }
      }
    },
  );

  test('an unmap starting inside a large leaf removes nothing; one reaching a hole stops there', () => {
    const pt = new IoPageTable(format);
    const large = sizes[1]!;
    pt.map(large, large, large, RW);
    expect(pt.unmap(large + smallest, smallest)).toBe(0n);
    expect(pt.iovaToPhys(large + smallest)).toBe(large + smallest);
    pt.map(0n, 0n, smallest, RW);
    // [0, smallest) mapped, then a hole: unmap stops after the first page.
    expect(pt.unmap(0n, 2n * smallest)).toBe(smallest);
  });
});

describe('x86 specific kunit cases', () => {
  test('pgsize_boundary: a 4K-aligned range below 4 GiB maps (AMD report)', () => {
    const pt = new IoPageTable(x86SecondStageFormat(4));
    pt.map(0xfef80000n, 0x208b95d000n, 0xfef9ffffn - 0xfef80000n + 1n, RW);
    expect(pt.iovaToPhys(0xfef9ffffn)).toBe(0x208b95d000n + 0x1ffffn);
  });

  test('mixed: 0x3fe400000..0x4c0600000 maps as 14 x 2M, 3 x 1G, 3 x 2M = 20 leaves', () => {
    const metrics = new Metrics();
    const pt = new IoPageTable(x86SecondStageFormat(4), { metrics });
    const start = 0x3fe400n << 12n;
    const end = 0x4c0600n << 12n;
    pt.map(start, start, end - start, RW);
    expect(totalLeaves(pt)).toBe(20);
    expect(pt.countLeaves().get(SZ_1G)).toBe(3);
    expect(pt.countLeaves().get(SZ_2M)).toBe(17);
    expect(metrics.get('iommu.leaf_pte_writes')).toBe(20);
    for (let va = start; va < end; va += SZ_2M) expect(pt.iovaToPhys(va + 0x123n)).toBe(va + 0x123n);
  });
});

describe('map refusals and unwinding', () => {
  test('EINVAL, ERANGE and EEXIST, and a failed map leaves nothing behind', () => {
    const metrics = new Metrics();
    const pt = new IoPageTable(x86SecondStageFormat(4), { metrics });
    const code = (fn: () => void) => {
      try {
        fn();
      } catch (e) {
        if (isPhysrError(e)) return e.errno;
        throw e;
      }
      return 'ok';
    };
    expect(code(() => pt.map(0x1000n, 0x2000n, 0x800n, RW))).toBe('EINVAL');
    expect(code(() => pt.map(0x1001n, 0x2000n, 0x1000n, RW))).toBe('EINVAL');
    expect(code(() => pt.map(0x1000n, 0x2000n, 0x1000n, 0))).toBe('EINVAL');
    expect(code(() => pt.map(1n << 48n, 0n, SZ_4K, RW))).toBe('ERANGE');
    expect(code(() => pt.map(0n, 1n << 52n, SZ_4K, RW))).toBe('ERANGE');
    pt.map(SZ_2M + 5n * SZ_4K, 0x9000_0000n, SZ_4K, RW);
    const before = pt.tablePages;
    // Maps 2M..2M+20K then hits the page at 2M+20K: everything it wrote is unwound.
    expect(code(() => pt.map(SZ_2M, 0x1000_0000n, SZ_2M, RW))).toBe('EEXIST');
    expect(pt.iovaToPhys(SZ_2M)).toBe(0n);
    expect(pt.iovaToPhys(SZ_2M + 5n * SZ_4K)).toBe(0x9000_0000n);
    expect(totalLeaves(pt)).toBe(1);
    expect(pt.tablePages).toBe(before);
    // A large leaf over a table with live entries is refused too.
    expect(code(() => pt.map(0n, 0n, 2n * SZ_2M, RW))).toBe('EEXIST');
    expect(totalLeaves(pt)).toBe(1);
  });

  test('ENOMEM from the table-page limit unwinds as well', () => {
    const pt = new IoPageTable(x86SecondStageFormat(4), { maxTablePages: 4 });
    expect(() => pt.map(SZ_1G - SZ_4K, SZ_4K, 2n * SZ_4K, RW)).toThrow(/ENOMEM/);
    expect(totalLeaves(pt)).toBe(0);
    // iommu_map unwinds with iommu_unmap of the one page mapped; that unmap covers no table, so the
    // top and the three tables the first page needed stay (generic_pt iommu_pt.h __unmap_range).
    expect(pt.tablePages).toBe(4);
  });

  test('PTE words encode what was mapped: present bits, permissions, leaf size, address', () => {
    const x86 = new IoPageTable(x86SecondStageFormat(4));
    x86.map(SZ_1G, 0x40_0000_0000n, SZ_1G, IOMMU_READ);
    expect(x86.pteAt(SZ_1G, 2)).toBe(0x40_0000_0000n | 1n | (1n << 7n)); // R, PS
    const arm = new IoPageTable(armLpaeFormat({}));
    arm.map(0n, 0x8000_0000n, SZ_4K, RW);
    const pte = arm.pteAt(0n, 0)!;
    expect(pte & 3n).toBe(3n); // valid + page
    expect(pte & (1n << 10n)).toBe(1n << 10n); // AF
    expect(pte & (1n << 7n)).toBe(0n); // writable
    expect(pte & 0xffff_ffff_f000n).toBe(0x8000_0000n);
    expect(arm.lookup(0x10n)).toMatchObject({ phys: 0x8000_0010n, pageSize: SZ_4K });
  });
});

describe('ARM LPAE stage-1 leaf words (arm_lpae_prot_to_pte; words from 6.12 run in userspace)', () => {
  // nG (bit 11) on every stage-1 leaf, AF, shareability inner only for IOMMU_CACHE (outer
  // otherwise), both execute-never bits (54:53), AP and the MAIR index.
  const PRIV = 1 << 5;
  const CACHE = 1 << 2;
  const NOEXEC = 1 << 3;
  const MMIO = 1 << 4;
  const RW = IOMMU_READ | IOMMU_WRITE;
  test.each([
    ['2M block, read/write', SZ_2M, SZ_1G, SZ_2M, RW, 1, 0x4000_0e41n],
    ['4K page, read-only', 0x2000n, 1n << 40n, SZ_4K, IOMMU_READ, 0, 0x100_0000_0ec3n],
    ['cacheable', 0x4000n, 0x1000n, SZ_4K, RW | CACHE, 0, 0x1f47n],
    ['no-exec', 0x6000n, 0x2000n, SZ_4K, RW | NOEXEC, 0, 0x60_0000_0000_2e43n],
    ['MMIO', 0x8000n, 0x3000n, SZ_4K, RW | MMIO, 0, 0x3e4bn],
    ['privileged', 0xa000n, 0x4000n, SZ_4K, RW | PRIV, 0, 0x4e03n],
  ] as const)('%s', (_name, iova, paddr, size, prot, level, word) => {
    const pt = new IoPageTable(armLpaeFormat({ granule: 4096 }));
    pt.map(iova, paddr, size, prot);
    expect(pt.pteAt(iova, level)).toBe(word);
    expect(pt.iovaToPhys(iova)).toBe(paddr);
  });
});

// --- properties ------------------------------------------------------------------------------

const PAGES = 1024; // a 4 MiB window of 4K pages, crossing a 2M boundary
const opArb = fc.record({
  map: fc.boolean(),
  page: fc.integer({ min: 0, max: PAGES - 1 }),
  pages: fc.integer({ min: 1, max: 600 }),
  frameShift: fc.integer({ min: 0, max: 3 }),
});

/**
 * Whether mapping pages [page, page + n) with frames shifted by `frameShift` puts a 2M block over a
 * span that holds live 4K leaves: the span is 2M aligned, wholly inside the request, and IOVA and
 * frame are 2M congruent (frameShift 0), so iommu_pgsize picks 2M there.
 */
function replacesLiveTable(
  ref: ReadonlyMap<number, bigint>,
  page: number,
  n: number,
  frameShift: number,
): boolean {
  if (frameShift !== 0) return false;
  const span = Number(SZ_2M / SZ_4K);
  for (let start = Math.ceil(page / span) * span; start + span <= page + n; start += span)
    for (let p = start; p < start + span; p++) if (ref.has(p)) return true;
  return false;
}

describe('page-table properties', () => {
  propTest.prop([fc.array(opArb, { maxLength: 40 }), fc.constantFrom(0, 2)], { numRuns: 40 })(
    'random map/unmap sequences agree with a page→frame map, and no table page leaks',
    (ops, formatIndex) => {
      const format = FORMATS[formatIndex]!;
      const metrics = new Metrics();
      const pt = new IoPageTable(format, { metrics });
      const ref = new Map<number, bigint>();
      const base = SZ_1G; // keep clear of 0 for readability
      for (const op of ops) {
        const n = Math.min(op.pages, PAGES - op.page);
        const iova = base + BigInt(op.page) * SZ_4K;
        if (op.map) {
          // Frames shifted by frameShift 4K pages: 0 lets 2M leaves happen, the others forbid them.
          const paddr = 0x80_0000_0000n + BigInt(op.page + op.frameShift) * SZ_4K;
          let free = true;
          for (let p = op.page; p < op.page + n; p++) if (ref.has(p)) free = false;
          // io-pgtable-arm lets a block replace a table and the leaves in it (arm_lpae_init_pte):
          // a map that covers a whole 2M block over live 4K leaves succeeds there. This page→frame
          // reference does not model that; `npm run test:kernel` (target io-pgtable-arm) compares
          // exactly those cases against the kernel's own C, so they are left to it here.
          if (
            format.walker === 'io-pgtable-arm' &&
            !free &&
            replacesLiveTable(ref, op.page, n, op.frameShift)
          )
            continue;
          try {
            pt.map(iova, paddr, BigInt(n) * SZ_4K, RW);
            expect(free).toBe(true);
            for (let p = 0; p < n; p++) ref.set(op.page + p, paddr + BigInt(p) * SZ_4K);
          } catch (e) {
            expect(isPhysrError(e, 'EEXIST')).toBe(true);
            expect(free).toBe(false);
          }
        } else {
          const unmapped = pt.unmap(iova, BigInt(n) * SZ_4K);
          // Whatever was reported unmapped must be gone from the reference too. generic_pt reports
          // only what was mapped; io-pgtable-arm reports a whole block for a table it freed at
          // block size (__arm_lpae_unmap), however little that table held.
          for (let p = 0; p < Number(unmapped / SZ_4K); p++) {
            if (format.walker === 'generic_pt') expect(ref.has(op.page + p)).toBe(true);
            ref.delete(op.page + p);
          }
        }
        // Every page of the window, compared at once (one expect a page would dominate the run).
        const got: bigint[] = [];
        const want: bigint[] = [];
        for (let p = 0; p < PAGES; p++) {
          got.push(pt.iovaToPhys(base + BigInt(p) * SZ_4K + 8n));
          want.push(ref.has(p) ? ref.get(p)! + 8n : 0n);
        }
        expect(got).toEqual(want);
      }
      // Tear down through unmap of the whole window (leaves may cover more than asked).
      let guard = 0;
      while (totalLeaves(pt) > 0 && guard++ < PAGES) {
        const first = [...ref.keys()].sort((a, b) => a - b)[0]!;
        // Unmap the whole leaf there: io-pgtable-arm unmaps nothing of a block asked for in part.
        const leaf = pt.lookup(base + BigInt(first) * SZ_4K)!;
        expect(leaf.leafIova).toBe(base + BigInt(first) * SZ_4K);
        const got = pt.unmap(leaf.leafIova, leaf.pageSize);
        for (let p = 0; p < Number(got / SZ_4K); p++) ref.delete(first + p);
      }
      expect(ref.size).toBe(0);
      expect(reachableTables(pt)).toBe(pt.tablePages);
      expect(metrics.get(COUNTER.tablePagesAllocated) - metrics.get(COUNTER.tablePagesFreed)).toBe(
        pt.tablePages,
      );
    },
  );

  /** Brute force: the fewest leaves covering [iova, iova+size) given the bitmap and alignments. */
  function minimumLeaves(bitmap: bigint, iova: bigint, paddr: bigint, size: bigint): number {
    const sizes = pageSizes(bitmap);
    const unit = sizes[0]!;
    const n = Number(size / unit);
    const best = new Array<number>(n + 1).fill(Number.POSITIVE_INFINITY);
    best[0] = 0;
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(best[i]!)) continue;
      const off = BigInt(i) * unit;
      for (const s of sizes) {
        const j = i + Number(s / unit);
        if (j > n) continue;
        if ((iova + off) % s !== 0n || (paddr + off) % s !== 0n) continue;
        best[j] = Math.min(best[j]!, best[i]! + 1);
      }
    }
    return best[n]!;
  }

  // A small mock format (generic_pt has one for tests): 4K/32K/256K leaves, 3 index bits a level.
  const smallBitmap = (1n << 12n) | (1n << 15n) | (1n << 18n);
  propTest.prop(
    [
      fc.integer({ min: 0, max: 200 }),
      fc.integer({ min: 0, max: 200 }),
      fc.integer({ min: 1, max: 200 }),
      fc.boolean(),
    ],
    { numRuns: 300 },
  )('iommu_pgsize writes the minimum number of leaves for the bitmap and alignments', (a, b, len, x86) => {
    const bitmap = x86 ? x86SecondStageFormat(4).pgsizeBitmap : smallBitmap;
    const unit = x86 ? SZ_4K * 64n : SZ_4K; // scale so 2M/1G choices occur in small cases
    const granule = SZ_4K;
    const iova = BigInt(a) * unit + (x86 ? BigInt(a % 3) * granule : 0n);
    const paddr = BigInt(b) * unit + (x86 ? BigInt(a % 3) * granule : 0n);
    const size = BigInt(len) * (x86 ? SZ_2M / 4n : granule);
    let leaves = 0;
    let done = 0n;
    while (done < size) {
      const step = iommuPgsize(bitmap, iova + done, paddr + done, size - done);
      leaves += Number(step.count);
      done += step.pgsize * step.count;
    }
    expect(done).toBe(size);
    if (!x86 || size / SZ_4K <= 4096n) expect(leaves).toBe(minimumLeaves(bitmap, iova, paddr, size));
  });

  propTest.prop(
    [fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 1, max: 3000 })],
    {
      numRuns: 100,
    },
  )('map writes exactly the minimum leaf PTEs (x86, counted by the metrics)', (a, b, len) => {
    const metrics = new Metrics();
    const pt = new IoPageTable(x86SecondStageFormat(4), { metrics });
    const iova = BigInt(a) * SZ_4K * 64n + BigInt(a % 5) * SZ_4K;
    const paddr = BigInt(b) * SZ_4K * 64n + BigInt(a % 5) * SZ_4K;
    const size = BigInt(len) * SZ_4K;
    pt.map(iova, paddr, size, RW);
    expect(metrics.get('iommu.leaf_pte_writes')).toBe(minimumLeaves(pt.pgsizeBitmap, iova, paddr, size));
    expect(pt.unmap(iova, size)).toBe(size);
    expect(totalLeaves(pt)).toBe(0);
    expect(reachableTables(pt)).toBe(pt.tablePages);
  });
});

// When table pages go (Linux 7.1): generic_pt drivers/iommu/generic_pt/iommu_pt.h __unmap_range frees
// a table only when the unmap covers all of it; io-pgtable-arm.c __arm_lpae_unmap only when a step
// at block size meets a table; neither when the last leaf of a table is unmapped on its own.
describe('table pages are freed as the kernel frees them', () => {
  const x86 = x86SecondStageFormat(4);
  const arm = armLpaeFormat({ granule: 4096, iasBits: 48, oasBits: 48 });
  const base = 4n * SZ_1G;

  test('generic_pt: leaf-by-leaf unmaps keep the table; an unmap covering it frees it', () => {
    const metrics = new Metrics();
    const pt = new IoPageTable(x86, { metrics });
    pt.map(base, 0x80_0000_0000n + SZ_4K, SZ_2M, RW); // misaligned paddr: 512 4K leaves
    expect(pt.tablePages).toBe(4); // top, L2, L1, one L0 table
    for (let off = 0n; off < SZ_2M; off += SZ_4K) expect(pt.unmap(base + off, SZ_4K)).toBe(SZ_4K);
    expect(totalLeaves(pt)).toBe(0);
    expect(pt.tablePages).toBe(4);
    expect(metrics.get(COUNTER.tablePagesFreed)).toBe(0);
    pt.map(base, 0x80_0000_0000n + SZ_4K, SZ_2M, RW);
    // [base, base + 2M) covers the L0 table exactly: it is freed with its 512 leaves.
    expect(pt.unmap(base, SZ_2M)).toBe(SZ_2M);
    expect(pt.tablePages).toBe(3);
    expect(metrics.get(COUNTER.tablePagesFreed)).toBe(1);
    expect(reachableTables(pt)).toBe(3);
  });

  test('generic_pt: an unmap over a hole stops there and frees nothing it did not finish', () => {
    const pt = new IoPageTable(x86);
    pt.map(base, 0x80_0000_1000n, SZ_2M - SZ_4K, RW); // the table's last page left empty
    expect(pt.unmap(base, SZ_2M)).toBe(SZ_2M - SZ_4K);
    expect(pt.tablePages).toBe(4);
  });

  test('generic_pt: a large leaf replaces an emptied table, and is refused over a live one', () => {
    const metrics = new Metrics();
    const pt = new IoPageTable(x86, { metrics });
    pt.map(base, 0x80_0000_1000n, 2n * SZ_4K, RW);
    expect(pt.unmap(base, SZ_4K)).toBe(SZ_4K);
    // clear_contig: a table with a mapping below it is in the way (the kernel's -EADDRINUSE).
    expect(() => pt.map(base, 0x80_0000_0000n, SZ_2M, RW)).toThrow(/EEXIST/);
    expect(pt.unmap(base + SZ_4K, SZ_4K)).toBe(SZ_4K);
    expect(pt.tablePages).toBe(4);
    pt.map(base, 0x80_0000_0000n, SZ_2M, RW);
    expect(pt.tablePages).toBe(3);
    expect(metrics.get(COUNTER.tablePagesFreed)).toBe(1);
    expect(pt.lookup(base + 0x1234n)).toMatchObject({ phys: 0x80_0000_1234n, pageSize: SZ_2M });
  });

  test('io-pgtable-arm: only a step at block size frees a table, with what it holds', () => {
    const metrics = new Metrics();
    const pt = new IoPageTable(arm, { metrics });
    pt.map(base, 0x80_0000_1000n, SZ_2M, RW); // 512 4K pages under one level-1 entry
    for (let off = 0n; off < SZ_2M; off += SZ_4K) expect(pt.unmap(base + off, SZ_4K)).toBe(SZ_4K);
    expect(pt.tablePages).toBe(4);
    pt.map(base, 0x80_0000_1000n, SZ_2M, RW);
    // iommu_pgsize(iova, iova, 2M) steps at 2M: the level-1 entry is a table, freed whole.
    const cleared = metrics.get(COUNTER.pteClears);
    expect(pt.unmap(base, SZ_2M)).toBe(SZ_2M);
    expect(metrics.get(COUNTER.pteClears) - cleared).toBe(1);
    expect(pt.tablePages).toBe(3);
    expect(pt.iovaToPhys(base + SZ_4K)).toBe(0n);
  });

  test('io-pgtable-arm: a block maps over a table, freeing it even with live pages (arm_lpae_init_pte)', () => {
    const pt = new IoPageTable(arm);
    pt.map(base, 0x80_0000_1000n, 4n * SZ_4K, RW);
    expect(pt.tablePages).toBe(4);
    pt.map(base, 0x80_0020_0000n, SZ_2M, RW);
    expect(pt.tablePages).toBe(3);
    expect(pt.lookup(base + SZ_4K)).toMatchObject({ phys: 0x80_0020_1000n, pageSize: SZ_2M });
  });
});

describe('table storage grows in chunks and is given back', () => {
  // A chunk is 32 table pages of 512 PTE words of 8 bytes, plus 17 bytes of bookkeeping a page.
  // Pages above level 0 also keep a kind byte a PTE; level-0 pages sit in chunks without them.
  const UPPER_CHUNK_BYTES = 32 * (512 * 9 + 17); // 148000
  const LAST_LEVEL_CHUNK_BYTES = 32 * (512 * 8 + 17); // 131616

  test('a 256 MiB map of 4K pages holds only the chunks its tables need', () => {
    const pt = new IoPageTable(x86SecondStageFormat(4));
    const size = 256n << 20n;
    pt.map(SZ_1G, 0x40_0000_1000n, size, RW); // misaligned paddr: 65536 4K leaves
    // top + L2 + L1 in one chunk, 128 leaf tables in 4 level-0 chunks (no doubling, no copy).
    expect(pt.tablePages).toBe(131);
    expect(pt.storageBytes).toBe(UPPER_CHUNK_BYTES + 4 * LAST_LEVEL_CHUNK_BYTES);
    expect(pt.storageBytes).toBe(674_464);
    expect(pt.unmap(SZ_1G, size)).toBe(size);
    expect(pt.tablePages).toBe(3);
    // Four emptied chunks are fewer than the eight kept spare: nothing is released or reallocated.
    expect(pt.storageBytes).toBe(UPPER_CHUNK_BYTES + 4 * LAST_LEVEL_CHUNK_BYTES);
  });

  test('past eight spare chunks, emptied chunks are released', () => {
    const pt = new IoPageTable(x86SecondStageFormat(4));
    const size = 1n << 30n;
    pt.map(SZ_1G, 0x40_0000_1000n, size, RW); // 512 leaf tables in 16 chunks, + 3 pages in one
    expect(pt.storageBytes).toBe(UPPER_CHUNK_BYTES + 16 * LAST_LEVEL_CHUNK_BYTES);
    expect(pt.unmap(SZ_1G, size)).toBe(size);
    // The first chunk holds the 3 tables left; 8 emptied chunks are kept for reuse.
    expect(pt.storageBytes).toBe(UPPER_CHUNK_BYTES + 8 * LAST_LEVEL_CHUNK_BYTES);
    pt.map(SZ_1G, 0x40_0000_1000n, size, RW);
    expect(pt.storageBytes).toBe(UPPER_CHUNK_BYTES + 16 * LAST_LEVEL_CHUNK_BYTES);
    expect(pt.iovaToPhys(SZ_1G + size - 1n)).toBe(0x40_0000_1000n + size - 1n);
  });

  test('a format whose leaf word could be 0 is refused: a level-0 entry of 0 must mean empty', () => {
    const x86 = x86SecondStageFormat(4);
    const bare = { ...x86, pte: { ...x86.pte, leaf: (paddr: bigint) => paddr } };
    const pt = new IoPageTable(bare);
    expectErrno(() => pt.map(0n, 0n, SZ_4K, RW), 'EINVAL', /encodes a leaf with prot 3 as 0/);
    expect(pt.iovaToPhys(0n)).toBe(0n);
  });

  test('level-0 pages take chunks of their own, even where an upper chunk has room', () => {
    const pt = new IoPageTable(x86SecondStageFormat(4), { pgsizeBitmap: SZ_4K | SZ_2M });
    // 2M leaves only: top, L2 and 64 L1 tables (upper pages) in 3 chunks, no level-0 chunk at all.
    pt.map(0n, 0x1_0000_0000n, 64n * SZ_1G, RW);
    expect(pt.tablePages).toBe(1 + 1 + 64);
    expect(pt.storageBytes).toBe(3 * UPPER_CHUNK_BYTES);
    // One 4K page: its L1 table goes in the third chunk's room, its level-0 table in a new chunk.
    pt.map(100n * SZ_1G, 0x1000n, SZ_4K, RW);
    expect(pt.tablePages).toBe(68);
    expect(pt.storageBytes).toBe(3 * UPPER_CHUNK_BYTES + LAST_LEVEL_CHUNK_BYTES);
    expect(pt.iovaToPhys(100n * SZ_1G + 0x123n)).toBe(0x1123n);
    expect(pt.iovaToPhys(63n * SZ_1G + 0x123n)).toBe(0x1_0000_0000n + 63n * SZ_1G + 0x123n);
  });
});

describe('generic_pt map_range / unmap_range (Linux 7.1: iommu_map_nosync calls them for iommupt domains)', () => {
  test('map_range fills a range of any alignment with the best page sizes; unmap_range cannot split them', () => {
    // pt_compute_best_pgsize (generic_pt/pt_iter.h): at each point the largest size VA and OA are
    // both aligned to that fits the rest. 4K up to the 2M boundary, 2M leaves, then 4K.
    const metrics = new Metrics();
    const pt = new IoPageTable(x86SecondStageFormat(4), { metrics });
    const iova = 4n * SZ_1G + SZ_2M - 2n * SZ_4K;
    const size = 2n * SZ_4K + 2n * SZ_2M + 3n * SZ_4K;
    pt.map(iova, 0x80_0000_0000n + SZ_2M - 2n * SZ_4K, size, RW);
    expect(pt.countLeaves().get(SZ_4K)).toBe(5);
    expect(pt.countLeaves().get(SZ_2M)).toBe(2);
    expect(metrics.get('iommu.leaf_pte_writes')).toBe(7);
    // include/linux/generic_pt/iommu.h: unmap_range "cannot subdivide a mapping created by
    // map_range()": from a 2M leaf's first byte the whole leaf goes, from inside it nothing does.
    const leaf = iova + 2n * SZ_4K;
    expect(pt.unmap(leaf + SZ_4K, SZ_4K)).toBe(0n);
    expect(pt.unmap(leaf, SZ_4K)).toBe(SZ_2M);
    expect(pt.iovaToPhys(leaf + SZ_4K)).toBe(0n);
    expect(pt.iovaToPhys(leaf + SZ_2M)).toBe(0x80_0000_0000n + 2n * SZ_2M);
  });
});
