export {
  checkVmaFlags,
  type GupFlags,
  PAGE_POINTER_BYTES,
  PinnedPageArray,
  PinnedPhyrs,
  pinnedFolios,
  pinnedPagesAsRanges,
  pinUserPages,
  pinUserPagesLegacy,
  pinUserPagesLegacyWhole,
  pinUserPagesWhole,
  unpinUserPages,
  unpinUserPagesLegacy,
} from './gup.ts';
export * from './hmm-dma.ts';
export * from './memory-system.ts';
export { type FaultHow, MMAP_BASE, type MmapOptions, MmStruct, type UserTranslation } from './mm-struct.ts';
export type { PageMapping } from './page-table.ts';
export * from './pin-metadata.ts';
export * from './vma.ts';
