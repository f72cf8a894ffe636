/**
 * The IOAS's user-memory source over the mm model: iopt_pages pins with FOLL_LONGTERM (and
 * FOLL_WRITE for writable maps) through pin_user_pages, and unpins dirtying what a device may have
 * written (drivers/iommu/iommufd/pages.c, pfn_reader_user_pin / batch_unpin).
 */
import { type MmStruct, pinUserPagesWhole, unpinUserPages } from '../mm/index.ts';
import type { UserMemoryPinner } from './pages.ts';

export function mmUserPinner(mm: MmStruct): UserMemoryPinner {
  return {
    pin(uptr, length, writable) {
      const pinned = pinUserPagesWhole(mm, uptr, length, { write: writable, longterm: true });
      return {
        phys: pinned.phyrs,
        unpin: (dirty) => unpinUserPages(pinned, { dirty }),
      };
    },
  };
}
