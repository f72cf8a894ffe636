/**
 * ib_umem: user memory pinned and DMA-mapped for an RDMA device (drivers/infiniband/core/umem.c),
 * in two forms: the physr path (pin_user_pages → PhyrList → one DMA map) and the legacy path
 * (page array → sg_alloc_append_table_from_pages → dma_map_sgtable) for comparison. Like the
 * kernel, the umem covers whole pages: the DMA segments start at the page holding `address`.
 */
import {
  type DmaRangeList,
  fail,
  formatHex,
  SCATTERLIST_MAX_SEGMENT,
  SgAppendTable,
  type SgTable,
} from '../core/index.ts';
import {
  type MmStruct,
  PAGE_POINTER_BYTES,
  type PinnedPageArray,
  type PinnedPhyrs,
  pinUserPagesLegacyWhole,
  pinUserPagesWhole,
  unpinUserPages,
  unpinUserPagesLegacy,
} from '../mm/index.ts';
import { IB_ACCESS_HUGETLB, IB_ACCESS_ON_DEMAND, ibAccessWritable, type RdmaDevice } from './device.ts';

export type UmemKind = 'user' | 'user-legacy' | 'dmabuf' | 'odp';

/** What every umem offers the MR code. */
export interface Umem {
  readonly kind: UmemKind;
  readonly device: RdmaDevice;
  /** User VA (or dma-buf offset) of the first byte. */
  readonly address: bigint;
  readonly length: bigint;
  readonly writable: boolean;
  /** The current DMA segments (page granular); EAGAIN-style refusal when a dma-buf mapping is gone. */
  mappedRanges(): DmaRangeList;
  /** Bytes of kernel metadata the umem keeps for its pages and mapping. */
  readonly metadataBytes: number;
  release(): void;
}

/**
 * The whole pages under [address, address+size): ib_umem_get refuses (EINVAL) an addr + size that
 * is empty, wraps, or whose page-aligned end wraps. In u64 terms `addr + size < addr` holds once the
 * sum reaches 2^64 (2^64 itself wraps to 0), and `PAGE_ALIGN(addr + size) < addr + size` once it is
 * above 2^64 - PAGE_SIZE: both are "the page-aligned end reaches 2^64"
 * (drivers/infiniband/core/umem.c).
 */
function userPageSpan(address: bigint, size: bigint): { first: bigint; length: bigint } {
  const end = address + size;
  const pageEnd = (end + 0xfffn) & -0x1000n;
  if (size <= 0n || pageEnd >= 1n << 64n) {
    fail('EINVAL', `umem ${formatHex(address)} + ${formatHex(size)} is empty or overflows`);
  }
  const first = address & -0x1000n;
  return { first, length: pageEnd - first };
}

/** ib_umem_get's page_list: one page (PAGE_SIZE) of struct page pointers. */
export const UMEM_PAGE_LIST_BYTES = 4096;

/** The physr umem. */
export class PhyrUmem implements Umem {
  readonly kind = 'user' as const;
  private readonly unmapFn: () => void;
  private released = false;

  constructor(
    readonly device: RdmaDevice,
    readonly address: bigint,
    readonly length: bigint,
    readonly writable: boolean,
    readonly pinned: PinnedPhyrs,
    readonly dma: DmaRangeList,
    unmap: () => void,
  ) {
    this.unmapFn = unmap;
  }

  mappedRanges(): DmaRangeList {
    if (this.released) fail('EINVAL', 'umem was released');
    return this.dma;
  }

  /** The PhyrList plus the DmaRangeList, 16 bytes a range each. */
  get metadataBytes(): number {
    return this.pinned.phyrs.metadataBytes + this.dma.metadataBytes;
  }

  release(): void {
    if (this.released) fail('EINVAL', 'umem released twice');
    this.released = true;
    this.unmapFn();
    unpinUserPages(this.pinned, { dirty: this.writable });
  }
}

/** The legacy umem: page array and sg table. */
export class LegacyUmem implements Umem {
  readonly kind = 'user-legacy' as const;
  private released = false;

  constructor(
    readonly device: RdmaDevice,
    readonly address: bigint,
    readonly length: bigint,
    readonly writable: boolean,
    readonly pinned: PinnedPageArray,
    readonly table: SgTable,
    private readonly unmapFn: () => void,
    private readonly dma: DmaRangeList,
  ) {}

  mappedRanges(): DmaRangeList {
    if (this.released) fail('EINVAL', 'umem was released');
    return this.dma;
  }

  /**
   * The sg table the umem keeps. The page array is a transient one-page buffer in ib_umem_get
   * (PAGE_SIZE / sizeof(struct page *) pages at a time), so it is reported apart: scratchPeakBytes.
   */
  get metadataBytes(): number {
    return this.table.metadataBytes;
  }

  /**
   * The most page-pointer scratch ib_umem_get holds at once: it takes one page with
   * __get_free_page and pins PAGE_SIZE / sizeof(struct page *) pages per round, appending each
   * batch to the sg table (drivers/infiniband/core/umem.c). The model pins in one call, but the
   * kernel never holds more than this page (less when the umem has fewer pages).
   */
  get scratchPeakBytes(): number {
    return Math.min(this.pinned.metadataBytes, UMEM_PAGE_LIST_BYTES);
  }

  /** What the page array would take if held whole (the model's pin; not what ib_umem_get holds). */
  get pageArrayBytes(): number {
    return this.pinned.metadataBytes;
  }

  release(): void {
    if (this.released) fail('EINVAL', 'umem released twice');
    this.released = true;
    this.unmapFn();
    unpinUserPagesLegacy(this.pinned, { dirty: this.writable });
  }
}

/**
 * ib_umem_get (physr path): pins the pages under [address, address+size) FOLL_LONGTERM (and
 * FOLL_WRITE when the access is writable), maps the page-granular PhyrList for the device.
 * EINVAL for an empty or wrapping range; GUP's refusals pass through (EFAULT for a BAR mmap).
 */
export function ibUmemGet(
  device: RdmaDevice,
  mm: MmStruct,
  address: bigint,
  size: bigint,
  access: number,
): PhyrUmem {
  const { first, length } = userPageSpan(address, size);
  const writable = ibAccessWritable(access);
  const pinned = pinUserPagesWhole(mm, first, length, { write: writable, longterm: true });
  let mapping: ReturnType<RdmaDevice['dma']['mapPhyrs']>;
  try {
    mapping = device.dma.mapPhyrs(pinned.phyrs.split({ maxSegmentSize: device.dma.maxSegmentSize }), {
      mmio: false,
    });
  } catch (error) {
    unpinUserPages(pinned);
    throw error;
  }
  return new PhyrUmem(device, address, size, writable, pinned, mapping.dma, () => mapping.unmap());
}

/**
 * ib_umem_get's table building: one page of pointers (512 pages) per round, each round appended
 * with sg_alloc_append_table_from_pages and told how many pages are still to come. That hint makes
 * the first round allocate a full SG_MAX_SINGLE_ALLOC chunk even when the pages merge into one
 * entry (drivers/infiniband/core/umem.c, lib/scatterlist.c get_next_sg).
 */
export function ibUmemSgTable(pages: BigUint64Array, maxSegment: number): SgTable {
  const append = new SgAppendTable();
  const perRound = UMEM_PAGE_LIST_BYTES / PAGE_POINTER_BYTES;
  for (let at = 0; at < pages.length; at += perRound) {
    const n = Math.min(perRound, pages.length - at);
    append.appendFromPages(
      pages.subarray(at, at + n),
      0,
      BigInt(n) << 12n,
      maxSegment,
      pages.length - at - n,
    );
  }
  return append.sgt;
}

/** The sg segment limit ib_umem_get builds with: the device's, capped at what a scatterlist holds. */
export function ibUmemMaxSegment(deviceMax: bigint): number {
  return deviceMax > BigInt(SCATTERLIST_MAX_SEGMENT) ? SCATTERLIST_MAX_SEGMENT : Number(deviceMax);
}

/**
 * ib_umem_get as the kernel does it today: page array, sg_alloc_append_table_from_pages with the
 * device's max segment size (in page-of-pointers rounds), dma_map_sgtable.
 */
export function ibUmemGetLegacy(
  device: RdmaDevice,
  mm: MmStruct,
  address: bigint,
  size: bigint,
  access: number,
): LegacyUmem {
  const { first, length } = userPageSpan(address, size);
  const writable = ibAccessWritable(access);
  const pinned = pinUserPagesLegacyWhole(mm, first, length, { write: writable, longterm: true });
  try {
    const maxSeg = ibUmemMaxSegment(device.dma.maxSegmentSize);
    const table = ibUmemSgTable(pinned.pages, maxSeg);
    const { unmap } = device.dma.mapSgTable(table);
    return new LegacyUmem(device, address, size, writable, pinned, table, unmap, table.toDmaRangeList());
  } catch (error) {
    unpinUserPagesLegacy(pinned);
    throw error;
  }
}

/** HPAGE_SHIFT on x86-64: the 2 MiB huge page. */
const HPAGE_SHIFT = 21;

/**
 * An on-demand-paging umem (drivers/infiniband/core/umem_odp.c): nothing is pinned or mapped at
 * registration; pages are faulted and DMA mapped one `2^pageShift` page at a time later (the HMM
 * path), so there are no DMA segments to report here.
 */
export class OdpUmem implements Umem {
  readonly kind = 'odp' as const;
  private released = false;

  constructor(
    readonly device: RdmaDevice,
    readonly address: bigint,
    readonly length: bigint,
    readonly writable: boolean,
    /** umem_odp->page_shift: PAGE_SHIFT, or HPAGE_SHIFT with IB_ACCESS_HUGETLB. */
    readonly pageShift: number,
  ) {}

  mappedRanges(): DmaRangeList {
    fail('EINVAL', 'an ODP umem maps its pages on fault, not at registration');
  }

  get metadataBytes(): number {
    return 0;
  }

  release(): void {
    if (this.released) fail('EINVAL', 'umem released twice');
    this.released = true;
  }
}

/** ib_umem_odp_get: EINVAL without IB_ACCESS_ON_DEMAND; page_shift from IB_ACCESS_HUGETLB. */
export function ibUmemOdpGet(device: RdmaDevice, address: bigint, size: bigint, access: number): OdpUmem {
  if ((access & IB_ACCESS_ON_DEMAND) === 0) fail('EINVAL', 'ib_umem_odp_get needs IB_ACCESS_ON_DEMAND');
  const pageShift = (access & IB_ACCESS_HUGETLB) !== 0 ? HPAGE_SHIFT : 12;
  return new OdpUmem(device, address, size, ibAccessWritable(access), pageShift);
}
