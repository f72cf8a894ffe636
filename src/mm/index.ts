export {
  checkVmaFlags,
  type GupFlags,
  PAGE_POINTER_BYTES,
  PinnedPageArray,
  PinnedPhyrs,
  pinnedFolios,
  pinUserPages,
  pinUserPagesLegacy,
  unpinUserPages,
  unpinUserPagesLegacy,
} from './gup.ts';
export * from './hmm-dma.ts';
export * from './memory-system.ts';
export { MMAP_BASE, type MmapOptions, MmStruct, type UserTranslation } from './mm-struct.ts';
export type { PageMapping } from './page-table.ts';
export * from './pin-metadata.ts';
export * from './vma.ts';
