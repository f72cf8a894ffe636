/**
 * IOMMU domains (include/linux/iommu.h IOMMU_DOMAIN_*):
 *  - 'dma': translating, owned by the DMA API: a page table, an IOVA allocator and, in lazy mode, a
 *    flush queue (drivers/iommu/dma-iommu.c);
 *  - 'paging': translating, managed by its user (VFIO, IOMMUFD): a page table, no IOVA allocator;
 *  - 'identity': pass-through, the device's address is the physical address;
 *  - 'blocked': every access faults.
 *
 * Strict vs lazy invalidation (dma-iommu.c __iommu_dma_unmap / iommu_dma_free_iova): strict syncs the
 * unmap's gather at once (one IOTLB invalidation per unmap batch) and frees the IOVA. Lazy skips the
 * sync and queues the IOVA on the flush queue; the queue is flushed (one invalidation of the whole
 * domain, then the IOVAs are freed) when it is full or when its timer expires. Until then the IOTLB
 * may still hold the old translations, and a device using one reaches the freed page.
 */
import {
  type DmaTraceSink,
  fail,
  formatHex,
  formatSize,
  type Metrics,
  type PhyrList,
} from '../core/index.ts';
import type { PageTableFormat } from './format.ts';
import { IotlbGather } from './gather.ts';
import type { Iotlb } from './iotlb.ts';
import { IovaDomain, type IovaDomainOptions } from './iova.ts';
import { IoPageTable } from './page-table.ts';
import { pageSizes } from './pgsize.ts';
import type { Prot } from './prot.ts';

export type DomainType = 'dma' | 'paging' | 'identity' | 'blocked';

/** dma-iommu.c flush-queue defaults: IOVA_DEFAULT_FQ_SIZE entries, IOVA_DEFAULT_FQ_TIMEOUT ms. */
export const IOVA_DEFAULT_FQ_SIZE = 256;
export const IOVA_DEFAULT_FQ_TIMEOUT_MS = 10;

export interface DomainOptions {
  /** DMA domains: strict (invalidate on every unmap) or lazy (flush queue). Default strict. */
  readonly strict?: boolean;
  /** Page sizes this domain uses (a subset of the format's). */
  readonly pgsizeBitmap?: bigint;
  /** IOVA allocator settings for a DMA domain (granule defaults to the smallest page). */
  readonly iova?: IovaDomainOptions;
  readonly fqSize?: number;
  readonly fqTimeoutMs?: number;
  readonly maxTablePages?: number;
}

/** What the owning IOMMU lends its domains. */
export interface DomainHost {
  readonly format: PageTableFormat;
  readonly metrics: Metrics;
  readonly iotlb: Iotlb;
}

interface QueuedIova {
  readonly pfn: number;
  readonly pages: number;
}

/** The iommu_map records a bulk map stands for: one per range, as a map per range would emit. */
function traceRanges(
  sink: DmaTraceSink,
  page: bigint,
  iova: bigint,
  list: PhyrList,
  from: number,
  to: number,
): void {
  const mask = page - 1n;
  let va = iova - (list.addressAt(from) & mask);
  const cur = list.cursor(from);
  for (let i = from; i < to; i++, cur.next()) {
    const pad = cur.address & mask;
    const size = (cur.length + pad + mask) & ~mask;
    sink({ kind: 'iommu_map', iova: va, paddr: cur.address - pad, size });
    va += size;
  }
}

export class IommuDomain {
  readonly id: number;
  readonly type: DomainType;
  readonly strict: boolean;
  /** Present for 'dma' and 'paging' domains. */
  readonly pageTable: IoPageTable | undefined;
  /** Present for 'dma' domains. */
  readonly iovad: IovaDomain | undefined;
  readonly fqSize: number;
  readonly fqTimeoutMs: number;
  /** Page sizes in use, largest first (the order the IOTLB is probed in). */
  readonly pageSizesDescending: readonly bigint[];
  private readonly host: DomainHost;
  private readonly fq: QueuedIova[] = [];
  /** What a map call freed (tables a larger leaf replaced); reused across calls. */
  private readonly mapGather = new IotlbGather();
  private clockMs = 0;
  private fqDeadlineMs: number | undefined;

  constructor(id: number, type: DomainType, host: DomainHost, options: DomainOptions = {}) {
    this.id = id;
    this.type = type;
    this.host = host;
    this.strict = options.strict ?? true;
    this.fqSize = options.fqSize ?? IOVA_DEFAULT_FQ_SIZE;
    this.fqTimeoutMs = options.fqTimeoutMs ?? IOVA_DEFAULT_FQ_TIMEOUT_MS;
    if (type === 'dma' || type === 'paging') {
      this.pageTable = new IoPageTable(host.format, {
        metrics: host.metrics,
        ...(options.pgsizeBitmap === undefined ? {} : { pgsizeBitmap: options.pgsizeBitmap }),
        ...(options.maxTablePages === undefined ? {} : { maxTablePages: options.maxTablePages }),
      });
      this.pageSizesDescending = pageSizes(this.pageTable.pgsizeBitmap).reverse();
    } else {
      this.pageTable = undefined;
      this.pageSizesDescending = [];
    }
    if (type === 'dma') {
      const pt = this.pageTable!;
      const granule = options.iova?.granule ?? pt.minPageSize;
      const shift = BigInt(granule.toString(2).length - 1);
      this.iovad = new IovaDomain({
        granule,
        // iommu_dma_init_domain: never hand out IOVA 0, stop at the aperture's end.
        startPfn: 1,
        lastPfn: Number(pt.apertureLast >> shift),
        metrics: host.metrics,
        ...options.iova,
      });
    } else {
      this.iovad = undefined;
    }
  }

  /** Whether this domain translates through a page table. */
  get translating(): boolean {
    return this.pageTable !== undefined;
  }

  // --- the IOMMU API (iommu_map / iommu_unmap) -------------------------------------------------

  map(iova: bigint, paddr: bigint, size: bigint, prot: Prot): void {
    try {
      this.table('map').map(iova, paddr, size, prot, this.mapGather);
    } finally {
      this.syncMapGather();
    }
    this.host.metrics.traceSink?.({ kind: 'iommu_map', iova, paddr, size });
  }

  /**
   * The bulk map op (IoPageTable.mapList): ranges `from..to-1` of a packed range list back to back
   * from `iova`. Returns the IOVA bytes mapped.
   */
  mapList(iova: bigint, list: PhyrList, from: number, to: number, prot: Prot): bigint {
    let mapped: bigint;
    try {
      mapped = this.table('map').mapList(iova, list, from, to, prot, this.mapGather);
    } finally {
      this.syncMapGather();
    }
    const sink = this.host.metrics.traceSink;
    if (sink !== undefined) traceRanges(sink, this.pageTable!.minPageSize, iova, list, from, to);
    return mapped;
  }

  /** A map that replaced table pages with a larger leaf flushes the walk caches (map_range's sync). */
  private syncMapGather(): void {
    if (this.mapGather.isEmpty()) return;
    if (this.mapGather.freedTablePages > 0) this.iotlbSync(this.mapGather);
    else this.mapGather.reset();
  }

  /** iommu_unmap: unmap and invalidate what it covered, one IOTLB flush. Returns bytes unmapped. */
  unmap(iova: bigint, size: bigint): bigint {
    const gather = new IotlbGather();
    const unmapped = this.table('unmap').unmap(iova, size, gather);
    this.host.metrics.traceSink?.({ kind: 'iommu_unmap', iova, size, unmapped });
    this.iotlbSync(gather);
    return unmapped;
  }

  /** iommu_unmap_fast: unmap into a caller's gather, no invalidation yet. */
  unmapFast(iova: bigint, size: bigint, gather: IotlbGather): bigint {
    const unmapped = this.table('unmap').unmap(iova, size, gather);
    this.host.metrics.traceSink?.({ kind: 'iommu_unmap', iova, size, unmapped });
    return unmapped;
  }

  /** iommu_iotlb_sync: one invalidation covering everything gathered (none if the gather is empty). */
  iotlbSync(gather: IotlbGather): void {
    if (gather.isEmpty()) return;
    this.host.iotlb.invalidateRange(this.id, gather.start, gather.last);
    gather.reset();
  }

  /** flush_iotlb_all for this domain: one invalidation. */
  flushIotlbAll(): void {
    this.host.iotlb.invalidateDomain(this.id);
  }

  iovaToPhys(iova: bigint): bigint {
    if (this.type === 'identity') return iova;
    return this.pageTable?.iovaToPhys(iova) ?? 0n;
  }

  // --- the dma-iommu path --------------------------------------------------------------------

  /**
   * iommu_dma_alloc_iova: `size` bytes (rounded up to the granule) of IOVA ending at or below
   * `dmaLimit` (the device's DMA mask, clipped to the aperture), through the rcache. ENOMEM when
   * full (after emptying the caches and retrying, unless `flushRcache` is false).
   */
  allocIova(size: bigint, dmaLimit: bigint, flushRcache = true): bigint {
    const iovad = this.iovaDomain();
    const limitPfn = Number(dmaLimit >> iovad.granuleShift);
    return iovad.addressOf(iovad.allocIovaFast(this.pagesOf(size), limitPfn, flushRcache));
  }

  /**
   * iommu_dma_free_iova without a gather: the IOVA goes straight back (free_iova_fast), in strict and
   * lazy domains alike. What error paths and dma_iova_free do: nothing was mapped, so nothing can be
   * stale in an IOTLB.
   */
  freeIova(iova: bigint, size: bigint): void {
    const iovad = this.iovaDomain();
    iovad.freeIovaFast(iovad.pfnOf(iova), this.pagesOf(size));
  }

  /**
   * iommu_dma_free_iova with a queued gather (an unmap in a lazy domain): queue_iova (dma-iommu.c).
   * The ring of fqSize slots holds fqSize - 1 entries (fq_full); a full ring is flushed and freed
   * first, and then this IOVA waits for the next flush. The timer is armed by the first queued IOVA
   * and a full-ring flush does not disarm it.
   */
  private queueIova(iova: bigint, size: bigint): void {
    const iovad = this.iovaDomain();
    if (this.fq.length >= this.fqSize - 1) this.flushRing();
    this.fq.push({ pfn: iovad.pfnOf(iova), pages: this.pagesOf(size) });
    this.host.metrics.add('iommu.fq_queued');
    if (this.fqDeadlineMs === undefined) this.fqDeadlineMs = this.clockMs + this.fqTimeoutMs;
  }

  private pagesOf(size: bigint): number {
    const iovad = this.iovaDomain();
    return Number((size + iovad.granule - 1n) >> iovad.granuleShift);
  }

  /**
   * __iommu_dma_unmap: unmap `[iova, iova + size)` as one batch. Strict: one IOTLB invalidation for
   * the batch, then the IOVA is freed. Lazy: no invalidation now; the IOVA waits in the flush queue.
   * The IOVA is freed with the unmapped `size`, as iommu_dma_free_iova is called (dma_iova_destroy
   * after a partial link passes only the mapped length). Returns bytes unmapped.
   */
  dmaUnmap(iova: bigint, size: bigint): bigint {
    const gather = new IotlbGather();
    const unmapped = this.unmapFast(iova, size, gather);
    if (unmapped !== size) {
      fail(
        'EINVAL',
        `DMA unmap of ${formatHex(iova)} + ${formatSize(size)} removed ${formatSize(unmapped)}: the range was not mapped as one`,
      );
    }
    if (this.strict) {
      this.iotlbSync(gather);
      this.freeIova(iova, size);
    } else {
      this.queueIova(iova, size);
    }
    return unmapped;
  }

  /** The flush-queue timer's work (fq_flush_timeout), also run on demand: flush, free, disarm. */
  flushQueue(): void {
    this.fqDeadlineMs = undefined;
    this.flushRing();
  }

  /** fq_flush_iotlb + fq_ring_free: one invalidation of the domain, then every queued IOVA is freed. */
  private flushRing(): void {
    if (this.fq.length === 0) return;
    this.flushIotlbAll();
    const iovad = this.iovaDomain();
    for (const entry of this.fq) iovad.freeIovaFast(entry.pfn, entry.pages);
    this.fq.length = 0;
    this.host.metrics.add('iommu.fq_flushes');
  }

  /** IOVAs waiting in the flush queue. */
  get queuedIovas(): number {
    return this.fq.length;
  }

  /** Advances this domain's clock; the flush-queue timer (fq_flush_timeout) fires when due. */
  advanceClock(ms: number): void {
    this.clockMs += ms;
    if (this.fqDeadlineMs !== undefined && this.clockMs >= this.fqDeadlineMs) this.flushQueue();
  }

  private table(what: string): IoPageTable {
    if (this.pageTable === undefined)
      fail('EINVAL', `cannot ${what} in a ${this.type} domain (no page table)`);
    return this.pageTable;
  }

  private iovaDomain(): IovaDomain {
    if (this.iovad === undefined)
      fail('EINVAL', `domain ${this.id} is a ${this.type} domain, not a DMA domain`);
    return this.iovad;
  }
}
