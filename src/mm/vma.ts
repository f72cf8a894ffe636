/**
 * Virtual memory areas as include/linux/mm.h and mm_types.h describe them: `[start, end)` with
 * vm_flags, a kind of backing, and (for files) the page offset of `start` in the file. VA page
 * numbers are kept as Numbers inside: user addresses stay below TASK_SIZE (2^47, or 2^56 with
 * 5-level paging), so a page number is below 2^44 and exact in a double.
 */
import type { Folio } from '../platform/index.ts';

// vm_flags bits (include/linux/mm.h).
export const VM_READ = 0x1;
export const VM_WRITE = 0x2;
export const VM_EXEC = 0x4;
export const VM_SHARED = 0x8;
export const VM_MAYREAD = 0x10;
export const VM_MAYWRITE = 0x20;
export const VM_PFNMAP = 0x400;
export const VM_IO = 0x4000;
export const VM_DONTEXPAND = 0x40000;
export const VM_HUGETLB = 0x400000;

/** x86-64 4-level TASK_SIZE_MAX: (1 << 47) - PAGE_SIZE (arch/x86/include/asm/page_64_types.h). */
export const TASK_SIZE_MAX_4LEVEL = (1n << 47n) - 0x1000n;
/** With 5-level paging (LA57). */
export const TASK_SIZE_MAX_5LEVEL = (1n << 56n) - 0x1000n;

export const PAGE_SHIFT_MM = 12;
export const PAGE_BYTES = 4096;

export type VmaKind = 'anon' | 'hugetlb' | 'file' | 'pfnmap';

/**
 * A page-cache file (an inode's address_space): folios indexed by file page, created on first
 * access. `needsDirtyTracking` says whether the filesystem write-protects shared mappings to learn
 * about writes (vma_needs_dirty_tracking in mm/mmap.c: ext4, xfs, ... yes; shmem/tmpfs no).
 */
export interface PageCacheFile {
  readonly name: string;
  /** i_size in bytes. */
  readonly size: bigint;
  readonly needsDirtyTracking: boolean;
  /** Largest folio order the filesystem uses in its page cache (0 = small folios only). */
  readonly maxFolioOrder: number;
  /** index (file page) → the folio holding it: the key is the folio's first index. */
  readonly cache: Map<number, Folio>;
}

export interface Vma {
  readonly start: bigint;
  /** Exclusive end. */
  readonly end: bigint;
  readonly startVpn: number;
  readonly endVpn: number;
  readonly flags: number;
  readonly kind: VmaKind;
  /** hugetlb: order of the huge page (9 = 2M, 18 = 1G); 0 otherwise. */
  readonly hugeOrder: number;
  readonly file: PageCacheFile | undefined;
  /** File page index of `start` (vm_pgoff). */
  readonly pgoff: number;
  /** pfnmap: the first physical frame mapped at `start` (remap_pfn_range). */
  readonly pfnBase: number;
}

export function vmaIsAnonymous(vma: Vma): boolean {
  return vma.kind === 'anon';
}

/** is_cow_mapping(): private and may be written. */
export function isCowMapping(flags: number): boolean {
  return (flags & (VM_SHARED | VM_MAYWRITE)) === VM_MAYWRITE;
}

/** The part of `vma` from page `fromVpn` to `toVpn` (exclusive), with the file/pfn offsets moved. */
export function vmaSlice(vma: Vma, fromVpn: number, toVpn: number): Vma {
  const delta = fromVpn - vma.startVpn;
  return {
    ...vma,
    start: BigInt(fromVpn) << 12n,
    end: BigInt(toVpn) << 12n,
    startVpn: fromVpn,
    endVpn: toVpn,
    pgoff: vma.kind === 'file' ? vma.pgoff + delta : vma.pgoff,
    pfnBase: vma.kind === 'pfnmap' ? vma.pfnBase + delta : vma.pfnBase,
  };
}

export function describeVmaFlags(flags: number): string {
  const parts: string[] = [];
  parts.push(flags & VM_READ ? 'r' : '-', flags & VM_WRITE ? 'w' : '-', flags & VM_EXEC ? 'x' : '-');
  parts.push(flags & VM_SHARED ? 's' : 'p');
  let text = parts.join('');
  if (flags & VM_IO) text += ' io';
  if (flags & VM_PFNMAP) text += ' pfnmap';
  if (flags & VM_HUGETLB) text += ' hugetlb';
  return text;
}
