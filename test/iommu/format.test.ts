/**
 * Page-table formats as data (src/iommu/format.ts): the geometry generic_pt and io-pgtable-arm derive
 * for each format, and what each PTE encoding keeps of a prot when a leaf is written and read back.
 * Geometry values are worked by hand: bitsPerLevel = granule shift - 3 (8-byte entries), levels =
 * ceil((ias - granule shift) / bitsPerLevel), the top level takes what is left.
 */
import { describe, expect, test } from 'vitest';
import {
  armLpaeFormat,
  armLpaeStage1Pte,
  armLpaeStage2Pte,
  genmask,
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  levelOfPageSize,
  levelShift,
  type PageTableFormat,
  vtdSecondStagePte,
  x86SecondStageFormat,
} from '../../src/iommu/index.ts';

function geometry(f: PageTableFormat) {
  return {
    name: f.name,
    granuleShift: f.granuleShift,
    bitsPerLevel: f.bitsPerLevel,
    levels: f.levels,
    topLevelBits: f.topLevelBits,
    iasBits: f.iasBits,
    oasBits: f.oasBits,
    pgsizeBitmap: f.pgsizeBitmap,
    oaMask: f.oaMask,
    walker: f.walker,
  };
}

describe('format geometry', () => {
  test('x86-64 second stage: 4 levels for 48 bits, 5 for 57, 4K/2M/1G leaves, 52-bit output', () => {
    expect(geometry(x86SecondStageFormat())).toEqual({
      name: 'x86-64-ss-4level',
      granuleShift: 12,
      bitsPerLevel: 9,
      levels: 4,
      topLevelBits: 9, // 48 - 12 - 3 * 9
      iasBits: 48,
      oasBits: 52,
      pgsizeBitmap: 0x4020_1000n,
      oaMask: 0x000f_ffff_ffff_f000n,
      walker: 'generic_pt',
    });
    expect(geometry(x86SecondStageFormat(5))).toMatchObject({
      name: 'x86-64-ss-5level',
      levels: 5,
      topLevelBits: 9, // 57 - 12 - 4 * 9
      iasBits: 57,
    });
  });

  test('ARM LPAE: granule, ias and oas decide levels, top-level bits and block sizes', () => {
    expect(geometry(armLpaeFormat({}))).toEqual({
      name: 'arm-lpae-s1-4k-ias48-oas48',
      granuleShift: 12,
      bitsPerLevel: 9,
      levels: 4,
      topLevelBits: 9,
      iasBits: 48,
      oasBits: 48,
      pgsizeBitmap: 0x4020_1000n,
      oaMask: 0x0000_ffff_ffff_f000n,
      walker: 'io-pgtable-arm',
    });
    // 16K: 11 bits a level, ceil(34 / 11) = 4 levels, the top one resolves 48 - 14 - 33 = 1 bit;
    // leaves 16K and 32M.
    expect(geometry(armLpaeFormat({ granule: 16384, stage: 2 }))).toMatchObject({
      name: 'arm-lpae-s2-16k-ias48-oas48',
      granuleShift: 14,
      bitsPerLevel: 11,
      levels: 4,
      topLevelBits: 1,
      pgsizeBitmap: (1n << 14n) | (1n << 25n),
      oaMask: 0x0000_ffff_ffff_c000n,
    });
    // 64K, 42-bit input: 13 bits a level, 2 levels, top 42 - 16 - 13 = 13 bits; leaves 64K and 512M.
    expect(geometry(armLpaeFormat({ granule: 65536, iasBits: 42, oasBits: 40 }))).toMatchObject({
      name: 'arm-lpae-s1-64k-ias42-oas40',
      levels: 2,
      topLevelBits: 13,
      pgsizeBitmap: (1n << 16n) | (1n << 29n),
      oaMask: 0x0000_00ff_ffff_0000n,
    });
    // 4K with 32-bit input: ceil(20 / 9) = 3 levels, top 2 bits; the 1G block still fits 32-bit output.
    expect(geometry(armLpaeFormat({ iasBits: 32, oasBits: 32 }))).toMatchObject({
      levels: 3,
      topLevelBits: 2,
      pgsizeBitmap: 0x4020_1000n,
      oaMask: 0xffff_f000n,
    });
  });

  test('ias and oas outside 32..48 bits, or not whole, are EINVAL', () => {
    expect(() => armLpaeFormat({ iasBits: 31 })).toThrow('EINVAL: ARM LPAE ias 31 is outside 32..48 bits');
    expect(() => armLpaeFormat({ oasBits: 49 })).toThrow('EINVAL: ARM LPAE oas 49 is outside 32..48 bits');
    expect(() => armLpaeFormat({ iasBits: 40.5 })).toThrow(/^EINVAL: ARM LPAE ias 40.5 /);
    expect(armLpaeFormat({ iasBits: 32, oasBits: 48 }).iasBits).toBe(32);
    expect(armLpaeFormat({ iasBits: 48, oasBits: 32 }).oasBits).toBe(32);
  });

  test('levels by page size, and GENMASK', () => {
    const f = armLpaeFormat({ granule: 16384 });
    expect([levelShift(f, 0), levelShift(f, 1), levelShift(f, 3)]).toEqual([14, 25, 47]);
    expect(levelOfPageSize(f, 1n << 25n)).toBe(1);
    expect(levelOfPageSize(f, 1n << 14n)).toBe(0);
    expect(levelOfPageSize(f, 1n << 12n)).toBe(-1);
    expect(levelOfPageSize(f, 1n << 47n)).toBe(3);
    expect(levelOfPageSize(f, 1n << 58n)).toBe(-1); // a level above the top
    expect(genmask(63, 0)).toBe((1n << 64n) - 1n);
    expect(genmask(11, 4)).toBe(0xff0n);
    expect(genmask(5, 5)).toBe(0x20n);
  });
});

const ALL_PROTS = Array.from({ length: 64 }, (_, p) => p);
const has = (p: number, bit: number) => (p & bit) !== 0;
const PADDR = 0x1234_5000n;

describe('PTE encodings: what a leaf keeps of its prot, and tables and empty entries', () => {
  test('VT-d second stage keeps READ, WRITE and CACHE (snoop); PS marks a leaf above level 0', () => {
    const oa = x86SecondStageFormat().oaMask;
    for (const p of ALL_PROTS) {
      const want = p & (IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE);
      for (const level of [0, 1]) {
        const pte = vtdSecondStagePte.leaf(PADDR, p, level);
        const got = vtdSecondStagePte.decode(pte, level, oa);
        // A leaf with neither R nor W reads back as an empty entry.
        if ((p & (IOMMU_READ | IOMMU_WRITE)) === 0) expect(got.type).toBe('empty');
        else expect(got).toEqual({ type: 'leaf', address: PADDR, prot: want });
      }
    }
    expect(vtdSecondStagePte.leaf(PADDR, IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE, 1)).toBe(PADDR | 0x883n);
    expect(vtdSecondStagePte.leaf(PADDR, IOMMU_WRITE, 0)).toBe(PADDR | 0x2n);
    const table = vtdSecondStagePte.table(0x7000n);
    expect(table).toBe(0x7003n);
    expect(vtdSecondStagePte.decode(table, 1, oa)).toEqual({ type: 'table', address: 0x7000n, prot: 0 });
    expect(vtdSecondStagePte.decode(0n, 2, oa)).toEqual({ type: 'empty', address: 0n, prot: 0 });
  });

  test('ARM stage 1 always reads; write, priv, noexec as given; MMIO wins over CACHE in the MAIR index', () => {
    const oa = armLpaeFormat({}).oaMask;
    for (const p of ALL_PROTS) {
      let want = IOMMU_READ;
      if (has(p, IOMMU_WRITE)) want |= IOMMU_WRITE;
      if (has(p, IOMMU_PRIV)) want |= IOMMU_PRIV;
      if (has(p, IOMMU_NOEXEC)) want |= IOMMU_NOEXEC;
      if (has(p, IOMMU_MMIO)) want |= IOMMU_MMIO;
      else if (has(p, IOMMU_CACHE)) want |= IOMMU_CACHE;
      for (const level of [0, 1, 2]) {
        const got = armLpaeStage1Pte.decode(armLpaeStage1Pte.leaf(PADDR, p, level), level, oa);
        expect(got).toEqual({ type: 'leaf', address: PADDR, prot: want });
      }
    }
    const table = armLpaeStage1Pte.table(0x8000n);
    expect(table).toBe(0x8003n);
    expect(armLpaeStage1Pte.decode(table, 1, oa)).toEqual({ type: 'table', address: 0x8000n, prot: 0 });
    expect(armLpaeStage1Pte.decode(0x8002n, 1, oa).type).toBe('empty'); // not valid
  });

  test('ARM stage 2 keeps READ, WRITE and NOEXEC; memory attributes carry MMIO, else CACHE', () => {
    const oa = armLpaeFormat({ stage: 2 }).oaMask;
    for (const p of ALL_PROTS) {
      let want = p & (IOMMU_READ | IOMMU_WRITE | IOMMU_NOEXEC);
      if (has(p, IOMMU_MMIO)) want |= IOMMU_MMIO;
      else if (has(p, IOMMU_CACHE)) want |= IOMMU_CACHE;
      for (const level of [0, 2]) {
        const got = armLpaeStage2Pte.decode(armLpaeStage2Pte.leaf(PADDR, p, level), level, oa);
        expect(got).toEqual({ type: 'leaf', address: PADDR, prot: want });
      }
    }
    // Read/write cacheable 4K page: valid | page | S2AP 0b11 << 6 | MemAttr 0xf << 2 | inner
    // shareable 0b11 << 8 | AF.
    expect(armLpaeStage2Pte.leaf(PADDR, IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE, 0)).toBe(PADDR | 0x7ffn);
    // Read-only device memory 2M block, no-exec: valid | S2AP read | MemAttr 1 | outer shareable |
    // AF | XN (bits 54:53).
    expect(armLpaeStage2Pte.leaf(PADDR, IOMMU_READ | IOMMU_MMIO | IOMMU_NOEXEC, 1)).toBe(
      PADDR | 0x1n | 0x40n | 0x4n | 0x200n | 0x400n | (3n << 53n),
    );
    // Non-cacheable: MemAttr 0x5.
    expect(armLpaeStage2Pte.leaf(PADDR, IOMMU_READ, 1)).toBe(PADDR | 0x1n | 0x40n | 0x14n | 0x200n | 0x400n);
    expect(armLpaeStage2Pte.decode(armLpaeStage2Pte.table(0x9000n), 1, oa)).toEqual({
      type: 'table',
      address: 0x9000n,
      prot: 0,
    });
  });
});
