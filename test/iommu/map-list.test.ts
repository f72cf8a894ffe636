import { fc, test as propTest } from '@fast-check/vitest';
import { describe, expect, test } from 'vitest';
import { Metrics, PhyrList, SZ_2M, SZ_4K } from '../../src/core/index.ts';
import {
  armLpaeFormat,
  IOMMU_CACHE,
  IOMMU_READ,
  IOMMU_WRITE,
  IoPageTable,
  type PageTableFormat,
  x86SecondStageFormat,
} from '../../src/iommu/index.ts';

import { errnoOf } from '../errno.ts';
import { propertyRuns } from '../thorough.ts';

const RW = IOMMU_READ | IOMMU_WRITE;
const RUNS = propertyRuns(20, 300);
const FORMATS: PageTableFormat[] = [x86SecondStageFormat(4), armLpaeFormat({ granule: 4096 })];

/** One range of a random list: where its frames are and how long it is. */
const rangeArb = fc.record({
  frame: fc.integer({ min: 0, max: 4095 }),
  /** 0: 4K-granular frame; 1: 2M-aligned frame (large leaves become possible). */
  huge: fc.boolean(),
  pages: fc.constantFrom(1, 2, 3, 16, 512, 513),
});

interface Case {
  readonly words: BigUint64Array;
  /** The same ranges as a list of two chunks (cut at a random range), as a grown builder leaves them. */
  readonly list: PhyrList;
  readonly iova: bigint;
}

/** Ranges `from..to-1` of packed words as a list. */
function listOfWords(words: BigUint64Array, from = 0, to = words.length / 2): PhyrList {
  const pairs: [bigint, bigint][] = [];
  for (let i = from; i < to; i++) pairs.push([words[i * 2]!, words[i * 2 + 1]!]);
  return PhyrList.fromRanges(pairs);
}

/** A list laid out as dma_iova_link needs: only the first may start, and the last end, mid-page. */
const caseArb = fc
  .record({
    ranges: fc.array(rangeArb, { minLength: 1, maxLength: 6 }),
    head: fc.integer({ min: 0, max: 4095 }),
    tail: fc.integer({ min: 0, max: 4095 }),
    iovaPage: fc.integer({ min: 1, max: 1 << 20 }),
    iovaHuge: fc.boolean(),
    cut: fc.nat(),
  })
  .map(({ ranges, head, tail, iovaPage, iovaHuge, cut }): Case => {
    const words = new BigUint64Array(ranges.length * 2);
    ranges.forEach((r, i) => {
      let address =
        0x40_0000_0000n +
        BigInt(i) * 0x1_0000_0000n +
        (r.huge ? BigInt(r.frame) * SZ_2M : BigInt(r.frame) * SZ_4K);
      let length = BigInt(r.pages) * SZ_4K;
      if (i === 0 && head > 0) {
        address += BigInt(head);
        length -= BigInt(head) < length ? BigInt(head) : 0n;
      }
      if (i === ranges.length - 1 && tail > 0 && length > BigInt(tail)) length -= BigInt(tail);
      words[i * 2] = address;
      words[i * 2 + 1] = length;
    });
    const base = iovaHuge ? BigInt(iovaPage) * SZ_2M : BigInt(iovaPage) * SZ_4K;
    const at = cut % (ranges.length + 1);
    const list = listOfWords(words, 0, at).concat(listOfWords(words, at));
    return { words, list, iova: base + (words[0]! & (SZ_4K - 1n)) };
  });

/** The per-range reference: one iommu_map per range, each rounded out to 4K, back to back. */
function mapPerRange(pt: IoPageTable, c: Case, prot: number): bigint {
  let va = c.iova - (c.words[0]! & (SZ_4K - 1n));
  for (let i = 0; i < c.words.length / 2; i++) {
    const a = c.words[i * 2]!;
    const pad = a & (SZ_4K - 1n);
    const size = (c.words[i * 2 + 1]! + pad + SZ_4K - 1n) & -SZ_4K;
    pt.map(va, a - pad, size, prot);
    va += size;
  }
  return va;
}

describe.each(FORMATS.map((f) => [f.name, f] as const))('mapList on %s', (_name, format) => {
  propTest.prop([caseArb], { numRuns: RUNS })(
    'writes the same PTE words and counters as a map per range, and every 4K page translates as the list says',
    (c) => {
      const bulkMetrics = new Metrics();
      const refMetrics = new Metrics();
      const bulk = new IoPageTable(format, { metrics: bulkMetrics });
      const ref = new IoPageTable(format, { metrics: refMetrics });
      const prot = RW | IOMMU_CACHE;
      const end = mapPerRange(ref, c, prot);
      const start = c.iova - (c.words[0]! & (SZ_4K - 1n));
      expect(bulk.mapList(c.iova, c.list, 0, c.words.length / 2, prot)).toBe(end - start);
      expect([...bulk.entries()]).toEqual([...ref.entries()]);
      expect(bulkMetrics.snapshot()).toEqual(refMetrics.snapshot());
      // Independent reference: page p of the IOVA holds the frame the list puts there.
      let va = start;
      for (let i = 0; i < c.words.length / 2; i++) {
        const a = c.words[i * 2]! & -SZ_4K;
        const pages = (c.words[i * 2 + 1]! + (c.words[i * 2]! & (SZ_4K - 1n)) + SZ_4K - 1n) >> 12n;
        for (let p = 0n; p < pages; p++) {
          expect(bulk.iovaToPhys(va + p * SZ_4K + 0x18n)).toBe(a + p * SZ_4K + 0x18n);
          expect(ref.iovaToPhys(va + p * SZ_4K + 0x18n)).toBe(a + p * SZ_4K + 0x18n);
        }
        va += pages * SZ_4K;
      }
      expect(bulk.iovaToPhys(va)).toBe(0n);
      // Unmapping the whole IOVA gives the same result on both.
      expect(bulk.unmap(start, end - start)).toBe(ref.unmap(start, end - start));
      expect([...bulk.entries()]).toEqual([...ref.entries()]);
      expect(bulkMetrics.snapshot()).toEqual(refMetrics.snapshot());
    },
  );
});

describe('mapList refusals', () => {
  const words = (...pairs: [bigint, bigint][]) => PhyrList.fromRanges(pairs);
  test('a range other than the first starting mid-page, or other than the last ending mid-page, is EINVAL', () => {
    const pt = new IoPageTable(x86SecondStageFormat(4));
    const w1 = words([0x1000_0000n, 0x1000n], [0x2000_0800n, 0x1000n]);
    expect(errnoOf(() => pt.mapList(SZ_2M, w1, 0, 2, RW))).toBe('EINVAL');
    const w2 = words([0x1000_0000n, 0x800n], [0x2000_0000n, 0x1000n]);
    expect(errnoOf(() => pt.mapList(SZ_2M, w2, 0, 2, RW))).toBe('EINVAL');
    expect(pt.tablePages).toBe(1);
  });

  test('an IOVA whose page offset differs from the first range, or no read/write, is EINVAL', () => {
    const pt = new IoPageTable(x86SecondStageFormat(4));
    const w = words([0x1000_0010n, 0x1000n]);
    expect(errnoOf(() => pt.mapList(SZ_2M, w, 0, 1, RW))).toBe('EINVAL');
    expect(errnoOf(() => pt.mapList(SZ_2M + 0x10n, w, 0, 1, 0))).toBe('EINVAL');
    expect(errnoOf(() => pt.mapList(SZ_2M + 0x10n, w, 1, 1, RW))).toBe('EINVAL');
  });

  test('an EEXIST partway leaves nothing of the call mapped, and what was there stays', () => {
    const pt = new IoPageTable(x86SecondStageFormat(4));
    pt.map(SZ_2M + 3n * SZ_4K, 0x9000_0000n, SZ_4K, RW);
    const w = words([0x1000_0000n, 2n * SZ_4K], [0x2000_0000n, 4n * SZ_4K]);
    expect(errnoOf(() => pt.mapList(SZ_2M, w, 0, 2, RW))).toBe('EEXIST');
    expect(pt.iovaToPhys(SZ_2M)).toBe(0n);
    expect(pt.iovaToPhys(SZ_2M + 2n * SZ_4K)).toBe(0n);
    expect(pt.iovaToPhys(SZ_2M + 3n * SZ_4K)).toBe(0x9000_0000n);
  });
});
