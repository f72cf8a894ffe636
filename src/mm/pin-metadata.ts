/**
 * What a pin holds in Linux 7.1, beside physr's range list: pin_user_pages fills a `struct page *`
 * array, one pointer a 4K page (mm/gup.c); memfd_pin_folios (mm/gup.c, 6.11) fills a `struct folio *`
 * array, one pointer a folio, plus the byte offset into the first folio, and callers that hold a
 * folio pin already add more with folio_add_pins (mm/gup.c, iommufd's pages.c). Neither hands back
 * physical ranges: a caller that needs them walks the array again.
 */
import { RANGE_BYTES } from '../core/index.ts';
import { PAGE_POINTER_BYTES, type PinnedPhyrs, pinnedFolios } from './gup.ts';

/** Bytes of one `struct folio *`, and of the pgoff_t offset memfd_pin_folios returns. */
export const FOLIO_POINTER_BYTES = 8;
export const PGOFF_BYTES = 8;

export type PinForm = 'pages' | 'folios' | 'phyrs';

export interface PinMetadata {
  readonly form: PinForm;
  /** Array entries: pages, folios or ranges. */
  readonly entries: number;
  readonly bytes: number;
}

/** pin_user_pages: the page pointer array. */
export function pinAsPages(pinned: PinnedPhyrs): PinMetadata {
  return { form: 'pages', entries: pinned.pageCount, bytes: pinned.pageCount * PAGE_POINTER_BYTES };
}

/** memfd_pin_folios: one folio pointer a folio (a folio split across runs appears once per run) and the offset. */
export function pinAsFolios(pinned: PinnedPhyrs): PinMetadata {
  const entries = pinnedFolios(pinned).length;
  return { form: 'folios', entries, bytes: entries * FOLIO_POINTER_BYTES + PGOFF_BYTES };
}

/** The physr proposal: the pinned memory as (address, length) ranges, 16 bytes each. */
export function pinAsPhyrs(pinned: PinnedPhyrs): PinMetadata {
  return { form: 'phyrs', entries: pinned.phyrs.count, bytes: pinned.phyrs.count * RANGE_BYTES };
}
