/**
 * Page-table formats as data, after drivers/iommu/generic_pt: a format is its geometry (granule, index
 * bits per level, number of levels, input/output address widths), the page sizes it can hold as leaves
 * (the pgsize bitmap) and its PTE encoding. Levels are numbered as generic_pt does: level 0 holds the
 * smallest pages, the top level is `levels - 1`.
 *
 * Invariant: every leaf size in `pgsizeBitmap` equals the item size of exactly one level, i.e.
 * `1 << (granuleShift + level * bitsPerLevel)`, and the output address sits in the PTE in place
 * (bits granuleShift..oasBits-1), so consecutive leaves differ by exactly their size.
 */
import { fail } from '../core/index.ts';
import {
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_NOEXEC,
  IOMMU_PRIV,
  IOMMU_READ,
  IOMMU_WRITE,
  type Prot,
} from './prot.ts';

export type PteType = 'empty' | 'table' | 'leaf';

export interface DecodedPte {
  readonly type: PteType;
  /** Output address (leaf) or next table's physical address (table); 0 when empty. */
  readonly address: bigint;
  /** Permissions a leaf grants (0 for tables and empty entries). */
  readonly prot: Prot;
}

/** How a format lays out its PTE bits. */
export interface PteEncoding {
  readonly name: string;
  leaf(paddr: bigint, prot: Prot, level: number): bigint;
  table(tablePhys: bigint): bigint;
  decode(pte: bigint, level: number, oaMask: bigint): DecodedPte;
}

export interface PageTableFormat {
  readonly name: string;
  /** log2 of the smallest page and of a table page's size. */
  readonly granuleShift: number;
  /** Index bits consumed by every level below the top. */
  readonly bitsPerLevel: number;
  readonly levels: number;
  /** Index bits of the top-level table (may be fewer than bitsPerLevel). */
  readonly topLevelBits: number;
  /** Input (IOVA) address width: the aperture is 0 .. 2^iasBits - 1. */
  readonly iasBits: number;
  /** Output (physical) address width. */
  readonly oasBits: number;
  /** Leaf sizes the hardware supports, one bit per size (the kernel's pgsize_bitmap). */
  readonly pgsizeBitmap: bigint;
  /** PTE bits that hold the output address. */
  readonly oaMask: bigint;
  readonly pte: PteEncoding;
  /**
   * The kernel code that walks this format, which decides when table pages are freed and what a
   * map over an existing table does: generic_pt (drivers/iommu/generic_pt, the x86 formats in 7.1)
   * or io-pgtable-arm (drivers/iommu/io-pgtable-arm.c).
   */
  readonly walker: PageTableWalker;
}

export type PageTableWalker = 'generic_pt' | 'io-pgtable-arm';

const EMPTY: DecodedPte = { type: 'empty', address: 0n, prot: 0 };

function bit(n: number): bigint {
  return 1n << BigInt(n);
}

/** Bits lo..hi inclusive set (GENMASK_ULL). */
export function genmask(hi: number, lo: number): bigint {
  return bit(hi + 1) - bit(lo);
}

// Intel VT-d second-level (second-stage) entries, VT-d spec 9.8 and generic_pt fmt/vtdss.h:
// bit 0 read, bit 1 write, bit 7 page size (a leaf above level 0), bit 11 snoop, address in 51:12.
const VTD_R = bit(0);
const VTD_W = bit(1);
const VTD_PS = bit(7);
const VTD_SNP = bit(11);

export const vtdSecondStagePte: PteEncoding = {
  name: 'vtd-second-stage',
  leaf(paddr, prot, level) {
    let pte = paddr;
    if (prot & IOMMU_READ) pte |= VTD_R;
    if (prot & IOMMU_WRITE) pte |= VTD_W;
    if (prot & IOMMU_CACHE) pte |= VTD_SNP;
    if (level > 0) pte |= VTD_PS;
    return pte;
  },
  // A table entry grants both; the leaf decides the final permission.
  table: (tablePhys) => tablePhys | VTD_R | VTD_W,
  decode(pte, level, oaMask) {
    if ((pte & (VTD_R | VTD_W)) === 0n) return EMPTY;
    const address = pte & oaMask;
    if (level > 0 && (pte & VTD_PS) === 0n) return { type: 'table', address, prot: 0 };
    let prot = 0;
    if (pte & VTD_R) prot |= IOMMU_READ;
    if (pte & VTD_W) prot |= IOMMU_WRITE;
    if (pte & VTD_SNP) prot |= IOMMU_CACHE;
    return { type: 'leaf', address, prot };
  },
};

// ARM VMSAv8-64 long-descriptor entries (io-pgtable-arm.c): bit 0 valid; bit 1 is "table" above the
// last level and must be set for a last-level page; AF (bit 10) set on every leaf; shareability in
// bits 9:8, inner for a cacheable mapping (IOMMU_CACHE) and outer otherwise; execute-never in both
// bits 54:53. Stage 1 leaves are not global (nG, bit 11) and put AP[2:1] in bits 7:6 (bit 7
// read-only, bit 6 unprivileged) and a MAIR index in bits 4:2; stage 2 puts S2AP in bits 7:6 (6
// read, 7 write) and the memory attributes in bits 5:2. (arm_lpae_prot_to_pte; the differential
// test against 6.12 checks every leaf word.)
const LPAE_VALID = bit(0);
const LPAE_TYPE = bit(1);
const LPAE_AF = bit(10);
const LPAE_NG = bit(11);
const LPAE_SH_IS = 3n << 8n;
const LPAE_SH_OS = 2n << 8n;
const LPAE_XN = 3n << 53n;
const LPAE_AP_UNPRIV = bit(6);
const LPAE_AP_RDONLY = bit(7);
const LPAE_S2_READ = bit(6);
const LPAE_S2_WRITE = bit(7);
/** MAIR indexes the Linux SMMU drivers program: 0 non-cacheable, 1 cacheable, 2 device. */
const LPAE_ATTRIDX_SHIFT = 2n;
const S2_MEMATTR_SHIFT = 2n;
const S2_MEMATTR_OIWB = 0xfn;
const S2_MEMATTR_NC = 0x5n;
const S2_MEMATTR_DEV = 0x1n;

function lpaeCommon(paddr: bigint, level: number, prot: Prot): bigint {
  const sh = prot & IOMMU_CACHE ? LPAE_SH_IS : LPAE_SH_OS;
  return paddr | LPAE_VALID | LPAE_AF | sh | (level === 0 ? LPAE_TYPE : 0n);
}

function lpaeDecode(pte: bigint, level: number, oaMask: bigint, protOf: (pte: bigint) => Prot): DecodedPte {
  if ((pte & LPAE_VALID) === 0n) return EMPTY;
  const address = pte & oaMask;
  if (level > 0 && (pte & LPAE_TYPE) !== 0n) return { type: 'table', address, prot: 0 };
  return { type: 'leaf', address, prot: protOf(pte) };
}

export const armLpaeStage1Pte: PteEncoding = {
  name: 'arm-lpae-s1',
  leaf(paddr, prot, level) {
    let pte = lpaeCommon(paddr, level, prot) | LPAE_NG;
    // Stage 1 cannot express write-only: a mapping without READ but with WRITE is read/write, as in
    // arm_lpae_prot_to_pte.
    if ((prot & IOMMU_WRITE) === 0) pte |= LPAE_AP_RDONLY;
    if ((prot & IOMMU_PRIV) === 0) pte |= LPAE_AP_UNPRIV;
    if (prot & IOMMU_NOEXEC) pte |= LPAE_XN;
    const attrIdx = prot & IOMMU_MMIO ? 2n : prot & IOMMU_CACHE ? 1n : 0n;
    return pte | (attrIdx << LPAE_ATTRIDX_SHIFT);
  },
  table: (tablePhys) => tablePhys | LPAE_VALID | LPAE_TYPE,
  decode: (pte, level, oaMask) =>
    lpaeDecode(pte, level, oaMask, (p) => {
      let prot = IOMMU_READ;
      if ((p & LPAE_AP_RDONLY) === 0n) prot |= IOMMU_WRITE;
      if ((p & LPAE_AP_UNPRIV) === 0n) prot |= IOMMU_PRIV;
      if (p & LPAE_XN) prot |= IOMMU_NOEXEC;
      const attrIdx = (p >> LPAE_ATTRIDX_SHIFT) & 7n;
      if (attrIdx === 1n) prot |= IOMMU_CACHE;
      if (attrIdx === 2n) prot |= IOMMU_MMIO;
      return prot;
    }),
};

export const armLpaeStage2Pte: PteEncoding = {
  name: 'arm-lpae-s2',
  leaf(paddr, prot, level) {
    let pte = lpaeCommon(paddr, level, prot);
    if (prot & IOMMU_READ) pte |= LPAE_S2_READ;
    if (prot & IOMMU_WRITE) pte |= LPAE_S2_WRITE;
    if (prot & IOMMU_NOEXEC) pte |= LPAE_XN;
    const memAttr = prot & IOMMU_MMIO ? S2_MEMATTR_DEV : prot & IOMMU_CACHE ? S2_MEMATTR_OIWB : S2_MEMATTR_NC;
    return pte | (memAttr << S2_MEMATTR_SHIFT);
  },
  table: (tablePhys) => tablePhys | LPAE_VALID | LPAE_TYPE,
  decode: (pte, level, oaMask) =>
    lpaeDecode(pte, level, oaMask, (p) => {
      let prot = 0;
      if (p & LPAE_S2_READ) prot |= IOMMU_READ;
      if (p & LPAE_S2_WRITE) prot |= IOMMU_WRITE;
      if (p & LPAE_XN) prot |= IOMMU_NOEXEC;
      const memAttr = (p >> S2_MEMATTR_SHIFT) & 0xfn;
      if (memAttr === S2_MEMATTR_OIWB) prot |= IOMMU_CACHE;
      if (memAttr === S2_MEMATTR_DEV) prot |= IOMMU_MMIO;
      return prot;
    }),
};

function makeFormat(spec: {
  name: string;
  granuleShift: number;
  iasBits: number;
  oasBits: number;
  leafLevels: readonly number[];
  pte: PteEncoding;
  walker: PageTableWalker;
  levels?: number;
}): PageTableFormat {
  const bitsPerLevel = spec.granuleShift - 3; // 8-byte entries fill one granule-sized table page
  const levels = spec.levels ?? Math.ceil((spec.iasBits - spec.granuleShift) / bitsPerLevel);
  const topLevelBits = spec.iasBits - spec.granuleShift - (levels - 1) * bitsPerLevel;
  if (topLevelBits <= 0 || topLevelBits > bitsPerLevel) {
    fail('EINVAL', `format ${spec.name}: ias ${spec.iasBits} does not fit ${levels} levels`);
  }
  let pgsizeBitmap = 0n;
  for (const level of spec.leafLevels) {
    const lg2 = spec.granuleShift + level * bitsPerLevel;
    // A leaf larger than the output space cannot be used (generic_pt hides those sizes).
    if (level < levels && lg2 < spec.oasBits) pgsizeBitmap |= bit(lg2);
  }
  return {
    name: spec.name,
    granuleShift: spec.granuleShift,
    bitsPerLevel,
    levels,
    topLevelBits,
    iasBits: spec.iasBits,
    oasBits: spec.oasBits,
    pgsizeBitmap,
    oaMask: genmask(spec.oasBits - 1, spec.granuleShift),
    pte: spec.pte,
    walker: spec.walker,
  };
}

/**
 * x86-64 second-stage tables (VT-d second level; AMD v1 has the same geometry): 4 levels for a
 * 48-bit IOVA space or 5 for 57 bits, 4K/2M/1G leaves, 52-bit output.
 */
export function x86SecondStageFormat(levels: 4 | 5 = 4): PageTableFormat {
  return makeFormat({
    name: `x86-64-ss-${levels}level`,
    granuleShift: 12,
    iasBits: levels === 4 ? 48 : 57,
    oasBits: 52,
    leafLevels: [0, 1, 2],
    pte: vtdSecondStagePte,
    walker: 'generic_pt',
    levels,
  });
}

export type LpaeGranule = 4096 | 16384 | 65536;

/**
 * ARM LPAE (io-pgtable-arm.c): 4K granule with 4K/2M/1G leaves, 16K with 16K/32M, 64K with 64K/512M;
 * ias and oas from 32 to 48 bits. Stage 2 here uses the same geometry as stage 1 (the concatenated
 * stage-2 top level is not modelled) and differs in its permission bits.
 */
export function armLpaeFormat(options: {
  granule?: LpaeGranule;
  iasBits?: number;
  oasBits?: number;
  stage?: 1 | 2;
}): PageTableFormat {
  const granule = options.granule ?? 4096;
  const iasBits = options.iasBits ?? 48;
  const oasBits = options.oasBits ?? 48;
  const stage = options.stage ?? 1;
  for (const [what, value] of [
    ['ias', iasBits],
    ['oas', oasBits],
  ] as const) {
    if (!Number.isInteger(value) || value < 32 || value > 48) {
      fail('EINVAL', `ARM LPAE ${what} ${value} is outside 32..48 bits`);
    }
  }
  const granuleShift = granule === 4096 ? 12 : granule === 16384 ? 14 : 16;
  // Block sizes per granule in io-pgtable-arm: 4K: 2M and 1G; 16K: 32M; 64K: 512M.
  const leafLevels = granule === 4096 ? [0, 1, 2] : [0, 1];
  return makeFormat({
    name: `arm-lpae-s${stage}-${granule >> 10}k-ias${iasBits}-oas${oasBits}`,
    granuleShift,
    iasBits,
    oasBits,
    leafLevels,
    pte: stage === 1 ? armLpaeStage1Pte : armLpaeStage2Pte,
    walker: 'io-pgtable-arm',
  });
}

/** log2 of the item size at a level. */
export function levelShift(format: PageTableFormat, level: number): number {
  return format.granuleShift + level * format.bitsPerLevel;
}

/** The level whose items are `pgsize` bytes, or -1. */
export function levelOfPageSize(format: PageTableFormat, pgsize: bigint): number {
  for (let level = 0; level < format.levels; level++) {
    if (bit(levelShift(format, level)) === pgsize) return level;
  }
  return -1;
}
