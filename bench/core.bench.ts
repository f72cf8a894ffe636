/**
 * `core`: what a packed PhyrList costs against the scatterlist baseline.
 *  - real heap bytes a range of a 10-million-range PhyrList (process.memoryUsage heap + arrayBuffers
 *    delta after a full GC; target <= 17);
 *  - the modelled kernel bytes a range of the same list as an sg_table (32-byte entries plus chain
 *    slots plus the header), and the ratio sg / physr (both as kernel memory: 16 B a range for physr);
 *  - builder throughput with merging;
 *  - the same with the count told to the builder up front (one chunk of exactly that size);
 *  - a scaling sweep: CPU time a range to build and walk lists of 1e3..1e7 ranges (target max/min
 *    <= 2), count not told (the builder's chunks handed to the list as written, no copy).
 */

import { type PhyrList, PhyrListBuilder, phyrListToSgTable } from '../src/core/index.ts';
import {
  type BenchContext,
  type Benchmark,
  collectGarbage,
  cpuSeconds,
  type Figure,
  figure,
  heapBytes,
  timeSeconds,
} from './harness.ts';

const PAGE = 0x1000n;
const BASE = 0x1_0000_0000n;

/**
 * n single-page ranges, each one page apart (never contiguous: n ranges, n sg entries); `known`
 * tells the builder the count up front.
 */
function buildScattered(n: number, known = false): PhyrList {
  const builder = new PhyrListBuilder(known ? { capacity: n } : {});
  let address = BASE;
  for (let i = 0; i < n; i++) {
    builder.append(address, PAGE);
    address += 2n * PAGE;
  }
  return builder.build();
}

/** Heap + ArrayBuffer bytes a range that a built list of n ranges really holds, per run. */
function heapPerRange(n: number, runs: number, known: boolean): [number[], PhyrList] {
  const perRange: number[] = [];
  let list: PhyrList | undefined;
  for (let r = 0; r < runs; r++) {
    list = undefined;
    collectGarbage();
    const before = heapBytes();
    list = buildScattered(n, known);
    collectGarbage();
    perRange.push((heapBytes() - before) / list.count);
  }
  if (list === undefined) throw new Error('no list built');
  return [perRange, list];
}

function memoryFigures(ctx: BenchContext): Figure[] {
  const n = ctx.size(10_000_000, 2_000);
  const runs = ctx.smoke ? 1 : 3;
  const [knownPerRange] = heapPerRange(n, runs, true);
  const [perRange, list] = heapPerRange(n, runs, false);
  const physrKernel = list.metadataBytes / list.count;
  const table = phyrListToSgTable(list);
  const sgPerEntry = table.metadataBytes / table.origNents;
  const label = n >= 1_000_000 ? `${n / 1_000_000}M` : `${n}`;
  return [
    figure(`PhyrList heap bytes/range @${label}`, 'B', perRange, {
      target: { op: '<=', value: 17, label: '<= 17 B a range' },
      note: `storage ${physrKernel} B/range`,
    }),
    figure(`PhyrList heap bytes/range @${label}, count known`, 'B', knownPerRange, {
      target: { op: '<=', value: 17, label: '<= 17 B a range' },
      note: 'the builder storage handed to the list, no copy',
    }),
    figure(`sg_table kernel bytes/entry @${label}`, 'B', [sgPerEntry], {
      note: `${table.origNents} entries, ${table.slotCount - table.origNents} chain slots, ${table.allocatedBytes} B with slab rounding`,
    }),
    figure('sg_table / PhyrList metadata', 'x', [table.metadataBytes / list.metadataBytes], {
      note: `${table.metadataBytes} B vs ${list.metadataBytes} B`,
    }),
  ];
}

function builderThroughput(ctx: BenchContext): Figure {
  const n = ctx.size(10_000_000, 5_000);
  const samples: number[] = [];
  for (let r = 0; r < ctx.warmup + ctx.runs; r++) {
    let count = 0;
    const seconds = timeSeconds(() => {
      // Runs of four contiguous pages, then a gap: three of four appends merge.
      const builder = new PhyrListBuilder({ maxSegmentSize: 0x1_0000n });
      let address = BASE;
      for (let i = 0; i < n; i++) {
        builder.append(address, PAGE);
        address += (i & 3) === 3 ? 2n * PAGE : PAGE;
      }
      count = builder.build().count;
    });
    if (count !== Math.ceil(n / 4)) throw new Error(`builder merged to ${count} ranges`);
    if (r >= ctx.warmup) samples.push(n / seconds);
  }
  return figure('builder appends/s (merging 4:1)', 'ranges/s', samples, {
    target: { op: '>=', value: 5_000_000, label: '>= 5M appends/s' },
  });
}

/** Build + walk n ranges `reps` times; CPU seconds a range. */
function buildAndWalk(n: number, reps: number): number {
  let checksum = 0n;
  const seconds = cpuSeconds(() => {
    for (let r = 0; r < reps; r++) {
      const list = buildScattered(n);
      list.forEachRange((address, length) => {
        checksum ^= address + length;
      });
    }
  });
  if (checksum === 1n) process.stdout.write(''); // keep the walk observable
  return seconds / (n * reps);
}

function scalingSweep(ctx: BenchContext): Figure[] {
  const sizes = ctx.smoke ? [1_000, 10_000] : [1_000, 10_000, 100_000, 1_000_000, 10_000_000];
  // Every size does about the same total work, so the small ones are not all warm-up.
  const work = ctx.smoke ? 10_000 : 10_000_000;
  const runs = ctx.smoke ? 1 : 5;
  for (const n of sizes) buildAndWalk(n, 1); // JIT warm-up at every size
  const figures: Figure[] = [];
  const medians: number[] = [];
  for (const n of sizes) {
    const samples: number[] = [];
    for (let r = 0; r < runs; r++) {
      collectGarbage();
      samples.push(buildAndWalk(n, Math.max(1, Math.round(work / n))) * 1e9);
    }
    const f = figure(`build+walk @${n.toExponential(0)} ranges`, 'ns/range', samples, { note: 'CPU time' });
    medians.push(f.median);
    figures.push(f);
  }
  const ratio = Math.max(...medians) / Math.min(...medians);
  figures.push(
    figure('scaling: max/min time a range', 'x', [ratio], {
      target: { op: '<=', value: 2, label: '<= 2 (linear)' },
    }),
  );
  return figures;
}

export const coreBenchmark: Benchmark = {
  name: 'core',
  description: 'PhyrList memory vs sg_table, builder throughput, linear scaling 1e3..1e7',
  run(ctx) {
    return [...memoryFigures(ctx), builderThroughput(ctx), ...scalingSweep(ctx)];
  },
};
