/**
 * The IOAS (struct io_pagetable, drivers/iommu/iommufd/io_pagetable.c and ioas.c): areas of IOVA,
 * each mapping a slice of an iopt_pages, copied into every IOMMU domain (hardware page table)
 * attached to the IOAS.
 *
 * Rules:
 *  - map (iommufd_ioas_map): READABLE or WRITEABLE required (EINVAL); iova or length >= ULONG_MAX
 *    (EOVERFLOW); length zero or not a multiple of the IOAS alignment (EINVAL); a fixed iova must be
 *    aligned (EINVAL), must not overflow (EOVERFLOW), must not meet a reserved range (EINVAL) or an
 *    existing area (EEXIST) — iopt_check_iova; the source's offset inside its first page must be
 *    aligned too (iopt_insert_area). Without a fixed iova one is allocated (iopt_alloc_iova): the
 *    lowest hole from PAGE_SIZE up, aligned to the smaller of roundup_pow_of_two(length) and the
 *    source address's own alignment, keeping its page offset; ENOSPC when none fits.
 *  - the alignment is 1 while no domain is attached (iopt_init_table: a software table takes any
 *    byte range) and the largest minimum page size of the attached domains after; a domain whose
 *    minimum page is above PAGE_SIZE is refused (EINVAL), and one that raises the alignment is
 *    refused while an area's IOVA, length or page offset is not aligned to it (EADDRINUSE,
 *    iopt_table_add_domain / iopt_check_iova_alignment).
 *  - reserved ranges may overlap one another; a reserve over an area is EADDRINUSE (iopt_reserve_iova).
 *  - unmap (iopt_unmap_iova_range): length zero EINVAL, overflow EOVERFLOW; areas are removed in
 *    IOVA order; meeting an area that is not wholly inside the range stops with ENOENT (areas before
 *    it are already gone — the kernel reports the error, not the partial progress); nothing mapped in
 *    the range is ENOENT. Unmap-all of an empty IOAS succeeds.
 *  - each removed area is unmapped from every domain first (iommu_unmap, with its IOTLB flush) and
 *    only then are its pages released (unpinned / dma-buf detached).
 */
import {
  alignUp,
  fail,
  formatHex,
  formatSize,
  isAligned,
  isPowerOfTwo,
  type Metrics,
  PAGE_SIZE,
  type PhyrList,
  U64_MAX,
} from '../core/index.ts';
import type { DmaBuf } from '../dmabuf/index.ts';
import {
  IOMMU_CACHE,
  IOMMU_MMIO,
  IOMMU_READ,
  IOMMU_WRITE,
  type IommuDomain,
  type Prot,
} from '../iommu/index.ts';
import { IntervalList } from './area-tree.ts';
import {
  DmabufPages,
  type IommufdRevokeRecord,
  type IoptPages,
  type UserMemoryPinner,
  UserPages,
} from './pages.ts';

/** ULONG_MAX on a 64-bit kernel. */
const ULONG_MAX = U64_MAX;

export interface IoasMapOptions {
  /** IOMMU_IOAS_MAP_FIXED_IOVA: map exactly here; otherwise an IOVA is allocated. */
  readonly iova?: bigint;
  readonly readable?: boolean;
  readonly writable?: boolean;
}

/** One area (struct iopt_area). */
export interface IoptArea {
  readonly start: bigint;
  readonly last: bigint;
  readonly pages: IoptPages;
  /** Offset of the area in its pages. */
  readonly startByte: bigint;
  /** area->page_offset: the source's offset inside its first page. */
  readonly pageOffset: bigint;
  readonly prot: Prot;
}

interface Reserved {
  readonly start: bigint;
  readonly last: bigint;
  readonly owner: string;
}

let nextIoasId = 1;

export class Ioas {
  readonly id: number;
  readonly metrics: Metrics;
  private readonly areas = new IntervalList<IoptArea>();
  /** Reserved ranges may overlap (several owners), so they are searched linearly; there are few. */
  private readonly reserved: Reserved[] = [];
  private readonly domainList: IommuDomain[] = [];
  /** Every revoke iommufd handled, in order. */
  readonly revokes: IommufdRevokeRecord[] = [];

  constructor(metrics: Metrics) {
    this.id = nextIoasId++;
    this.metrics = metrics;
  }

  /** iopt->iova_alignment (iopt_calculate_iova_alignment): 1 without domains. */
  get iovaAlignment(): bigint {
    let align = 1n;
    for (const d of this.domainList) {
      const min = d.pageTable?.minPageSize ?? PAGE_SIZE;
      if (min > align) align = min;
    }
    return align;
  }

  get domains(): readonly IommuDomain[] {
    return this.domainList;
  }

  listAreas(): readonly IoptArea[] {
    return this.areas.all();
  }

  /** The area holding `iova`. */
  areaAt(iova: bigint): IoptArea | undefined {
    return this.areas.first(iova, iova);
  }

  // --- map -----------------------------------------------------------------------------------

  /** IOMMU_IOAS_MAP of user memory, pinned through the mm model. Returns the IOVA. */
  mapUser(pinner: UserMemoryPinner, uptr: bigint, length: bigint, options: IoasMapOptions = {}): bigint {
    const prot = this.checkMapRequest(length, options);
    const iova = this.placeArea(uptr, length, options.iova);
    const pages = new UserPages(pinner, uptr, length, (prot & IOMMU_WRITE) !== 0);
    return this.insertArea(iova, length, pages, 0n, uptr % PAGE_SIZE, prot);
  }

  /** IOMMU_IOAS_MAP_FILE with a dma-buf: `[start, start + length)` of the buffer. Returns the IOVA. */
  mapDmaBuf(buf: DmaBuf, start: bigint, length: bigint, options: IoasMapOptions = {}): bigint {
    const prot = this.checkMapRequest(length, options);
    const pages = new DmabufPages(buf, start, length, (prot & IOMMU_WRITE) !== 0, (record) =>
      this.revokes.push(record),
    );
    try {
      const iova = this.placeArea(start, length, options.iova);
      return this.insertArea(iova, length, pages, 0n, start % PAGE_SIZE, prot);
    } catch (error) {
      pages.release();
      throw error;
    }
  }

  // --- unmap -------------------------------------------------------------------------------------

  /** IOMMU_IOAS_UNMAP: bytes unmapped. */
  unmap(iova: bigint, length: bigint): bigint {
    if (length === 0n) fail('EINVAL', 'unmap length is zero');
    if (iova > ULONG_MAX - (length - 1n))
      fail('EOVERFLOW', `${formatHex(iova)} + ${formatHex(length)} overflows`);
    return this.unmapRange(iova, iova + length - 1n);
  }

  /** IOMMU_IOAS_UNMAP of the whole IOVA space (iopt_unmap_all): an empty IOAS is fine. */
  unmapAll(): bigint {
    if (this.areas.size === 0) return 0n;
    return this.unmapRange(0n, ULONG_MAX);
  }

  // --- domains -----------------------------------------------------------------------------------

  /**
   * iopt_table_add_domain: the domain's aperture end becomes a reserved range, existing areas must
   * fit the new alignment and aperture, then every area is filled into it.
   */
  addDomain(domain: IommuDomain, owner: string): void {
    const pt = domain.pageTable;
    if (pt === undefined)
      fail('EINVAL', `domain ${domain.id} is a ${domain.type} domain: it has no page table`);
    if (this.domainList.includes(domain)) fail('EEXIST', `domain ${domain.id} is already in IOAS ${this.id}`);
    const current = this.iovaAlignment;
    let align = current;
    if (pt.minPageSize > align) align = pt.minPageSize;
    // iopt_table_add_domain (drivers/iommu/iommufd/io_pagetable.c): iopt_pages work in PAGE_SIZE
    // units, so a domain must accept PAGE_SIZE pages.
    if (align > PAGE_SIZE) {
      fail(
        'EINVAL',
        `domain ${domain.id} maps at least ${formatSize(align)} pages: an IOAS needs domains that take ${formatSize(PAGE_SIZE)} pages`,
      );
    }
    for (const a of this.areas.all()) {
      const aligned =
        align === current ||
        (isAligned(a.start, align) &&
          isAligned(a.last + 1n - a.start, align) &&
          isAligned(a.pageOffset, align));
      if (!aligned) {
        // iopt_check_iova_alignment: IOVA, length and page offset must suit the raised alignment.
        fail(
          'EADDRINUSE',
          `area ${formatHex(a.start)}..${formatHex(a.last)} (page offset ${formatHex(a.pageOffset)}) is not aligned to ${formatSize(align)} pages of domain ${domain.id}`,
        );
      }
      if (a.last > pt.apertureLast) {
        // an existing area outside the new domain's aperture (iopt_table_add_domain)
        fail(
          'EADDRINUSE',
          `area ${formatHex(a.start)}..${formatHex(a.last)} is beyond the aperture of domain ${domain.id} (${formatHex(pt.apertureLast)})`,
        );
      }
    }
    if (pt.apertureLast < ULONG_MAX) {
      this.reserved.push({ start: pt.apertureLast + 1n, last: ULONG_MAX, owner: `${owner}:aperture` });
    }
    const filled: IoptArea[] = [];
    try {
      for (const a of this.areas.all()) {
        this.fillDomain(a, domain);
        filled.push(a);
      }
    } catch (error) {
      for (const a of filled) this.unfillDomain(a, domain);
      this.dropReserved(`${owner}:aperture`);
      throw error;
    }
    this.domainList.push(domain);
  }

  /** iopt_table_remove_domain: unmap every area from the domain. */
  removeDomain(domain: IommuDomain, owner: string): void {
    const i = this.domainList.indexOf(domain);
    if (i < 0) fail('ENOENT', `domain ${domain.id} is not in IOAS ${this.id}`);
    for (const a of this.areas.all()) this.unfillDomain(a, domain);
    this.domainList.splice(i, 1);
    this.dropReserved(`${owner}:aperture`);
  }

  /**
   * Reserve IOVA (e.g. a device's MSI window, iopt_reserve_iova): EADDRINUSE over an existing area;
   * it may overlap other reserved ranges.
   */
  reserve(start: bigint, last: bigint, owner: string): void {
    if (start > last) fail('EINVAL', `reserved range ${formatHex(start)}..${formatHex(last)} is empty`);
    if (this.areas.first(start, last) !== undefined) {
      fail('EADDRINUSE', `reserved range ${formatHex(start)}..${formatHex(last)} meets a mapped area`);
    }
    this.reserved.push({ start, last, owner });
  }

  // --- internals -------------------------------------------------------------------------------

  private checkMapRequest(length: bigint, options: IoasMapOptions): Prot {
    const readable = options.readable ?? true;
    const writable = options.writable ?? true;
    if (!readable && !writable) fail('EINVAL', 'a mapping must be readable or writable');
    if ((options.iova ?? 0n) >= ULONG_MAX || length >= ULONG_MAX)
      fail('EOVERFLOW', 'iova or length is ULONG_MAX or more');
    if (length === 0n || !isAligned(length, this.iovaAlignment)) {
      fail(
        'EINVAL',
        `length ${formatHex(length)} must be a non-zero multiple of ${formatSize(this.iovaAlignment)}`,
      );
    }
    return (readable ? IOMMU_READ : 0) | (writable ? IOMMU_WRITE : 0) | IOMMU_CACHE;
  }

  /** iopt_check_iova for a fixed IOVA, iopt_alloc_iova otherwise; plus the page-offset rule. */
  private placeArea(source: bigint, length: bigint, fixed: bigint | undefined): bigint {
    const align = this.iovaAlignment;
    if ((source % PAGE_SIZE) % align !== 0n) {
      fail('EINVAL', `source ${formatHex(source)} is not aligned to ${formatSize(align)}`);
    }
    if (fixed !== undefined) {
      if (!isAligned(fixed, align))
        fail('EINVAL', `iova ${formatHex(fixed)} is not aligned to ${formatSize(align)}`);
      const last = fixed + length - 1n;
      if (last > ULONG_MAX) fail('EOVERFLOW', `${formatHex(fixed)} + ${formatHex(length)} overflows`);
      const r = this.reserved.find((x) => x.start <= last && x.last >= fixed);
      if (r !== undefined)
        fail('EINVAL', `iova ${formatHex(fixed)}..${formatHex(last)} meets reserved ${r.owner}`);
      if (this.areas.first(fixed, last) !== undefined)
        fail('EEXIST', `iova ${formatHex(fixed)}..${formatHex(last)} is already mapped`);
      return fixed;
    }
    return this.allocIova(source, length);
  }

  private allocIova(source: bigint, length: bigint): bigint {
    if (length >= ULONG_MAX / 2n) fail('EOVERFLOW', `length ${formatHex(length)} is too large to allocate`);
    let pow = 1n;
    while (pow < length) pow <<= 1n;
    let alignment = pow;
    if (source !== 0n) {
      const own = source & -source; // 1 << __ffs64(source)
      if (own < alignment) alignment = own;
    }
    if (alignment < this.iovaAlignment)
      fail('EINVAL', `source alignment ${formatSize(alignment)} is below the IOAS alignment`);
    const pageOffset = source % PAGE_SIZE;
    // Holes between used intervals (areas and reserved), from PAGE_SIZE to ULONG_MAX - PAGE_SIZE.
    const used = [...this.areas.all(), ...this.reserved]
      .map((u) => ({ start: u.start, last: u.last }))
      .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    let holeStart = PAGE_SIZE;
    const limit = ULONG_MAX - PAGE_SIZE;
    const tryHole = (start: bigint, last: bigint): bigint | undefined => {
      if (last > limit) last = limit;
      if (start > last) return undefined;
      const candidate = alignUp(start, isPowerOfTwo(alignment) ? alignment : PAGE_SIZE) | pageOffset;
      return candidate <= last && last - candidate >= length - 1n ? candidate : undefined;
    };
    for (const u of used) {
      if (u.start > holeStart) {
        const got = tryHole(holeStart, u.start - 1n);
        if (got !== undefined) return got;
      }
      if (u.last >= holeStart) holeStart = u.last + 1n;
      if (holeStart > limit) break;
    }
    const got = holeStart <= limit ? tryHole(holeStart, limit) : undefined;
    if (got === undefined) fail('ENOSPC', `no free IOVA of ${formatSize(length)} in IOAS ${this.id}`);
    return got;
  }

  private insertArea(
    iova: bigint,
    length: bigint,
    pages: IoptPages,
    startByte: bigint,
    pageOffset: bigint,
    prot: Prot,
  ): bigint {
    const area: IoptArea = {
      start: iova,
      last: iova + length - 1n,
      pages,
      startByte,
      pageOffset,
      prot: pages.mmio ? (prot & ~IOMMU_CACHE) | IOMMU_MMIO : prot,
    };
    const filled: IommuDomain[] = [];
    try {
      for (const d of this.domainList) {
        this.fillDomain(area, d);
        filled.push(d);
      }
    } catch (error) {
      for (const d of filled) this.unfillDomain(area, d);
      pages.release();
      throw error;
    }
    this.areas.insert(area);
    this.metrics.add('iommufd.areas_mapped');
    return iova;
  }

  /** iopt_area_fill_domain: map the area's physical ranges at its IOVA (skipped when revoked). */
  private fillDomain(area: IoptArea, domain: IommuDomain): void {
    const length = area.last - area.start + 1n;
    const phys: PhyrList | undefined = area.pages.slice(area.startByte, length);
    if (phys !== undefined) {
      let cursor = area.start;
      try {
        phys.forEachRange((paddr, len) => {
          domain.map(cursor, paddr, len, area.prot);
          cursor += len;
        });
      } catch (error) {
        if (cursor > area.start) domain.unmap(area.start, cursor - area.start);
        throw error;
      }
    }
    area.pages.track({ iova: area.start, length, domain });
  }

  /** iopt_area_unfill_domain: unmap (with IOTLB flush) unless a revoke already did. */
  private unfillDomain(area: IoptArea, domain: IommuDomain): void {
    const length = area.last - area.start + 1n;
    if (area.pages.slice(area.startByte, length) !== undefined) domain.unmap(area.start, length);
    area.pages.untrack(area.start, domain);
  }

  private unmapRange(start: bigint, last: bigint): bigint {
    let unmapped = 0n;
    for (;;) {
      const area = this.areas.first(start, last);
      if (area === undefined) break;
      if (area.start < start || area.last > last) {
        fail(
          'ENOENT',
          `area ${formatHex(area.start)}..${formatHex(area.last)} is only partly inside ${formatHex(start)}..${formatHex(last)}: areas cannot be split${unmapped > 0n ? ` (${formatSize(unmapped)} before it were unmapped)` : ''}`,
        );
      }
      for (const d of this.domainList) this.unfillDomain(area, d);
      this.areas.remove(area);
      area.pages.release();
      unmapped += area.last - area.start + 1n;
    }
    if (unmapped === 0n) fail('ENOENT', `nothing is mapped in ${formatHex(start)}..${formatHex(last)}`);
    this.metrics.add('iommufd.pages_unmapped', Number(unmapped >> 12n));
    return unmapped;
  }

  private dropReserved(owner: string): void {
    for (let i = this.reserved.length - 1; i >= 0; i--) {
      if (this.reserved[i]!.owner === owner) this.reserved.splice(i, 1);
    }
  }
}
