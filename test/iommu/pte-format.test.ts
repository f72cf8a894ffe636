/**
 * Leaf PTE words of the VT-d second-stage and ARM LPAE stage-2 encodings, worked by hand from the
 * bit layouts, and the permissions a walk decodes back from them.
 */
import { describe, expect, test } from 'vitest';
import {
  armLpaeFormat,
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_READ,
  IOMMU_WRITE,
  IoPageTable,
  type PageTableFormat,
  type Prot,
  x86SecondStageFormat,
} from '../../src/iommu/index.ts';

function leafWord(
  format: PageTableFormat,
  iova: bigint,
  paddr: bigint,
  size: bigint,
  prot: Prot,
  level: number,
) {
  const pt = new IoPageTable(format);
  pt.map(iova, paddr, size, prot);
  return { word: pt.pteAt(iova, level), walk: pt.lookup(iova) };
}

describe('VT-d second-stage leaves (VT-d spec 9.8, generic_pt fmt/vtdss.h: R bit 0, W bit 1, PS bit 7, SNP bit 11)', () => {
  const format = x86SecondStageFormat(4);
  test.each([
    // paddr | W (0x2): no R without IOMMU_READ
    ['4K write-only', 0x4000n, 0x1000n, IOMMU_WRITE, 0, 0x4002n],
    // paddr | R (0x1) | SNP (0x800): snoop for a cacheable mapping
    ['4K read, cacheable', 0x5000n, 0x1000n, IOMMU_READ | IOMMU_CACHE, 0, 0x5801n],
    // 2M at level 1: paddr | R | W | PS (0x80)
    ['2M read/write', 0x20_0000n, 0x20_0000n, IOMMU_READ | IOMMU_WRITE, 1, 0x20_0083n],
  ] as const)('%s', (_name, paddr, size, prot, level, word) => {
    const got = leafWord(format, 0x4000_0000n + paddr, paddr, size, prot, level);
    expect(got.word).toBe(word);
    expect(got.walk?.prot).toBe(prot);
    expect(got.walk?.pageSize).toBe(size);
  });
});

describe('ARM LPAE stage-2 leaves (io-pgtable-arm.c arm_lpae_prot_to_pte, stage 2)', () => {
  const format = armLpaeFormat({ granule: 4096, stage: 2 });
  // Every 4K leaf: valid (0x1) | page type (0x2) | AF (0x400); shareability inner (0x300) when
  // cacheable, else outer (0x200); S2AP read 0x40, write 0x80; MemAttr in bits 5:2 (OIWB 0xf,
  // NC 0x5, device 0x1); XN both bits 54:53.
  test.each([
    // 0x4000 | 0x3 | 0x400 | 0x300 | 0x40 | 0x80 | (0xf << 2 = 0x3c)
    ['read/write cacheable', IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE, 0x47ffn],
    // 0x4000 | 0x3 | 0x400 | 0x200 | 0x40 | (0x5 << 2 = 0x14)
    ['read-only non-cacheable', IOMMU_READ, 0x4657n],
    // 0x4000 | 0x3 | 0x400 | 0x200 | 0x80 | (0x1 << 2 = 0x4) | 3 << 53
    ['write-only MMIO no-exec', IOMMU_WRITE | IOMMU_MMIO | IOMMU_NOEXEC, 0x0060_0000_0000_4687n],
  ] as const)('%s', (_name, prot, word) => {
    const got = leafWord(format, 0x8000n, 0x4000n, 0x1000n, prot, 0);
    expect(got.word).toBe(word);
    // The walk decodes the same permissions and attributes back.
    expect(got.walk?.prot).toBe(prot);
    expect(got.walk?.phys).toBe(0x4000n);
  });
});
