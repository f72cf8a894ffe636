/**
 * One map of a user buffer (or of a BAR range exported as a dma-buf) for a device — by a driver, by an
 * RDMA MR's umem, or by an IOMMUFD IOAS — run under each of three designs on its own fresh copy of
 * the scenario's machine (its own IOMMU, swiotlb and counters; the bytes copied to the same physical
 * addresses), so the designs never disturb each other or the scenario:
 *  - `sg`: today's generic path — pin_user_pages into a page array, sg_alloc_table_from_pages,
 *    dma_map_sgtable (ib_umem_get's page-at-a-time sg_table for an MR; no way into IOMMUFD);
 *  - `linux-7.1`: what Linux 7.1 does for that user — NVMe: the bio's bvecs through
 *    blk_rq_dma_map_iter (block/blk-mq-dma.c, 6.17) and what nvme_iod keeps; a dma-buf importer:
 *    dma_buf_phys_vec_to_sgt (6.19); IOMMUFD: the export's single phys_vec range (6.19); pinned MRs
 *    and any other driver still build an sg_table (the same work as `sg`, and it says so);
 *  - `physr`: the proposal — pin_user_pages to a PhyrList, mapped as one list (mostly one IOVA).
 * The outcomes are plain data for reports; the runs keep their machine and DMA ranges so tests can
 * check that every design moves the same bytes to the same places.
 */

import { blkRequestFromPhyrs, blkRqDmaMap, blkRqDmaUnmap, nvmeIodMetadata } from '../block/index.ts';
import {
  COUNTER,
  DmaRangeList,
  DmaRangeListBuilder,
  fail,
  fillPageArray,
  formatHex,
  isPhysrError,
  type Metrics,
  PAGE_SIZE,
  type PhyrList,
  PhyrListBuilder,
  RANGE_BYTES,
  SCATTERLIST_MAX_SEGMENT,
  sgAllocTableFromPagesSegment,
} from '../core/index.ts';
import {
  createMachine,
  type DmaDevice,
  type DmaDeviceProps,
  type DmaDirection,
  type DmaMapping,
  dmaMapPhyrList,
  dmaMapSg,
  dmaUnmap,
  dmaUnmapSg,
  type Machine,
  type MachineOptions,
} from '../dma/index.ts';
import { dmaBufFreeSgt, dmaBufPhysVecToSgt, physVecBytes } from '../dmabuf/index.ts';
import { IommufdCtx } from '../iommufd/index.ts';
import type { MmStruct } from '../mm/index.ts';
import { type Bdf, type PlatformModel, p2pdmaProviderOf } from '../platform/index.ts';
import { ibUmemMaxSegment, ibUmemSgTable, UMEM_PAGE_LIST_BYTES } from '../rdma/index.ts';
import { VfioPciDevice } from '../vfio/index.ts';
import type { DesignTotalsJson } from '../view/index.ts';
import { DESIGN_RATIO_PAIRS, type DesignRunWords, designRatioHeading } from '../view/wording.ts';
import type { StepReport } from './report.ts';
import { DESIGN_NAMES, type DesignName } from './scenario-schema.ts';
import { plural, viaText } from './wording.ts';

export { DESIGN_NAMES, type DesignName };

/** Bytes copied into the design machines at most (a scenario may map GiBs; the bytes are for checking). */
export const DESIGN_BYTES_LIMIT = 64n << 20n;

/** PCI class 01 08 02: NVMe (the one block driver modelled on blk_rq_dma_map_iter). */
const PCI_CLASS_NVME = 0x010802;

/**
 * What a map step under one design did, as data a report can show (the fields the report's words
 * read are DesignRunWords: API, path, metadata, entries, IOVAs, PTE writes, flushes, bounce bytes,
 * errno or reason when it did not run, and a one-sentence note).
 */
export interface DesignOutcome extends DesignRunWords {
  readonly design: DesignName;
  /** Bytes of metadata retained while the mapping lives, by part. */
  readonly metadata?: Readonly<Record<string, number>>;
  /** Scratch freed once the map is built, by part (peak = retained + scratch). */
  readonly scratch?: Readonly<Record<string, number>>;
}

/** A design's live map: the data outcome plus what tests need to look at the mapping. */
export interface DesignRun {
  readonly design: DesignName;
  readonly machine: Machine;
  readonly device: DmaDevice;
  /** The DMA ranges the device was given, in buffer order (undefined when it did not run). */
  readonly dma: DmaRangeList | undefined;
  /** Unmaps and returns the outcome with the unmap's counters (IOTLB flushes) included. */
  finish(): DesignOutcome;
}

export interface DesignMapInput {
  /** Builds a fresh copy of the scenario's machine (same topology, memory map and options). */
  readonly platform: () => PlatformModel;
  readonly machineOptions: MachineOptions;
  readonly bdf: Bdf;
  readonly deviceProps: DmaDeviceProps;
  /** The buffer's physical ranges, in buffer order (consecutive ranges meet at page boundaries). */
  readonly source: PhyrList;
  /**
   * Their bytes, copied into each fresh machine before mapping; undefined for a map larger than
   * DESIGN_BYTES_LIMIT (the designs still map it; only the byte comparison is left out).
   */
  readonly bytes: Uint8Array | undefined;
  readonly dir: DmaDirection;
  /** What the buffer is: user memory (default), or a BAR range exported as a dma-buf. */
  readonly memory?: 'user' | 'bar';
  /**
   * Who maps it: a driver's DMA map (default), an RDMA MR's umem (`rdma-mr`: ib_umem_get over user
   * memory, or ib_umem_dmabuf_get over a dma-buf), or an IOMMUFD IOAS (`iommufd`: a dma-buf at `iova`).
   */
  readonly use?: 'map' | 'rdma-mr' | 'iommufd';
  /** The IOVA an IOAS map asks for (`use: 'iommufd'`); undefined lets the IOAS place it. */
  readonly iova?: bigint;
}

/** The DMA-API props a device was probed with, to probe its twin the same way. */
export function probedProps(device: DmaDevice): DmaDeviceProps {
  return {
    dmaMask: device.dmaMask,
    coherent: device.coherent,
    maxSegmentSize: device.maxSegmentSize,
    segmentBoundaryMask: device.segmentBoundaryMask,
    minAlignMask: device.minAlignMask,
    untrusted: device.untrusted,
    forceBounce: device.forceBounce,
    dmaRangeOffset: device.dmaRangeOffset,
    passthrough: device.domain?.type === 'identity',
  };
}

/** The page array pin_user_pages fills for a buffer given as physical ranges. */
function pageArray(source: PhyrList): BigUint64Array {
  let count = 0;
  source.forEachRange((address, length) => {
    count += Number((address + length - 1n) / PAGE_SIZE - address / PAGE_SIZE + 1n);
  });
  const pfns = new BigUint64Array(count);
  let i = 0;
  source.forEachRange((address, length) => {
    const first = address / PAGE_SIZE;
    const pages = Number((address + length - 1n) / PAGE_SIZE - first + 1n);
    fillPageArray(pfns, i, Number(first), pages);
    i += pages;
  });
  return pfns;
}

function counters(metrics: Metrics) {
  return {
    iovaAllocations: metrics.get(COUNTER.iovaAllocations),
    leafPteWrites: metrics.get('iommu.leaf_pte_writes'),
    iotlbFlushes: metrics.get(COUNTER.iotlbFlushes),
    bounceBytes: metrics.get(COUNTER.bounceBytes),
  };
}

type Counters = ReturnType<typeof counters>;

function delta(before: Counters, after: Counters): Counters {
  return {
    iovaAllocations: after.iovaAllocations - before.iovaAllocations,
    leafPteWrites: after.leafPteWrites - before.leafPteWrites,
    iotlbFlushes: after.iotlbFlushes - before.iotlbFlushes,
    bounceBytes: after.bounceBytes - before.bounceBytes,
  };
}

function sum(parts: Readonly<Record<string, number>>): number {
  return Object.values(parts).reduce((a, b) => a + b, 0);
}

/** A design that has no way to do the step: what it would call and why it cannot. */
interface NoPath {
  readonly noPath: true;
  readonly api: string;
  readonly reason: string;
}

/** What one design's map produced before unmap. */
interface Mapped {
  readonly noPath?: undefined;
  readonly api: string;
  readonly path: string;
  readonly dma: DmaRangeList;
  readonly metadata: Readonly<Record<string, number>>;
  /** Scratch built for the map and freed once it is done (not retained). */
  readonly scratch?: Readonly<Record<string, number>>;
  readonly note: string;
  readonly unmap: () => void;
}

function mapSgDesign(device: DmaDevice, input: DesignMapInput, api: string, why: string): Mapped {
  const pages = pageArray(input.source);
  const offset = Number(input.source.addressAt(0) & (PAGE_SIZE - 1n));
  const max =
    device.maxSegmentSize > BigInt(SCATTERLIST_MAX_SEGMENT)
      ? SCATTERLIST_MAX_SEGMENT
      : Number(device.maxSegmentSize);
  const table = sgAllocTableFromPagesSegment(pages, offset, input.source.totalLength, max);
  const nents = dmaMapSg(device, table, input.dir);
  // The page array is scratch: once the sg_table holds the pages it is freed and unpinning walks the
  // table (ib_umem_get/ib_umem_release do so, and fill it a page of pointers at a time).
  const metadata = { 'sg table': table.metadataBytes };
  const scratch = { 'page array': pages.length * 8 };
  return {
    api,
    path: 'sg',
    dma: table.toDmaRangeList(),
    metadata,
    scratch,
    note: `${why}: ${pages.length} page pointers → ${table.origNents} sg entries → ${nents} DMA segments`,
    unmap: () => dmaUnmapSg(device, table, input.dir),
  };
}

function mapLinux71(device: DmaDevice, input: DesignMapInput): Mapped {
  const fn = device.machine.platform.topology.functions.get(device.bdf);
  if (fn?.classCode !== PCI_CLASS_NVME) {
    return mapSgDesign(
      device,
      input,
      'dma_map_sgtable',
      'Linux 7.1 keeps scatterlist for this driver (only NVMe, HMM and dma-buf exporters moved)',
    );
  }
  const request = blkRequestFromPhyrs(device.machine.platform.topology, input.source, input.dir);
  const mapping = blkRqDmaMap(device, request);
  const iod = nvmeIodMetadata(mapping);
  const dma = new DmaRangeListBuilder({ merge: false });
  for (const s of mapping.segments) dma.append(s.addr, s.len);
  return {
    api: 'blk_rq_dma_map_iter',
    path: mapping.path,
    dma: dma.build(),
    metadata: { bvecs: iod.bioVecBytes, dma_iova_state: iod.iovaStateBytes, dma_vecs: iod.dmaVecBytes },
    note: `NVMe on Linux 7.1: ${request.bvecs.length} bvecs → ${mapping.physSegments.length} segments → ${mapping.path === 'iova' ? 'one IOVA' : `${mapping.segments.length} ${mapping.path} mappings`}`,
    unmap: () => blkRqDmaUnmap(mapping),
  };
}

/** "physr: 1 range → 32 DMA ranges via host bridge": the segments' own words, as the step lines say them. */
function physrNote(ranges: number, mapping: DmaMapping): string {
  return `physr: ${plural(ranges, 'range')} → ${plural(mapping.dma.count, 'DMA range')} ${viaText(mapping.segments.map((seg) => seg.kind))}`;
}

function mapPhysrDesign(device: DmaDevice, input: DesignMapInput): Mapped {
  // A BAR is MMIO: no struct page, no cache maintenance, never bounced (DMA_ATTR_MMIO).
  const mapping = dmaMapPhyrList(
    device,
    input.source,
    input.dir,
    input.memory === 'bar' ? { mmio: true } : {},
  );
  return {
    api: 'dma_map_phyrs (proposal)',
    path: mapping.path,
    dma: mapping.dma,
    metadata: { 'phyr list': input.source.metadataBytes, 'DMA range list': mapping.dma.metadataBytes },
    note: physrNote(input.source.count, mapping),
    unmap: () => dmaUnmap(mapping),
  };
}

type Mapper = (device: DmaDevice, input: DesignMapInput) => Mapped | NoPath;

const USER_MAPPERS: Record<DesignName, Mapper> = {
  sg: (device, input) => mapSgDesign(device, input, 'dma_map_sgtable', 'scatterlist'),
  'linux-7.1': mapLinux71,
  physr: mapPhysrDesign,
};

/**
 * A vfio-pci BAR range exported as a dma-buf, mapped by an importer: scatterlist holds it only when
 * the BAR has P2PDMA struct pages (sg_set_page needs a page; before 6.19 vfio-pci had no dma-buf
 * export); Linux 7.1 builds
 * the importer's DMA-only sg_table (dma_buf_phys_vec_to_sgt); physr maps the range list with
 * DMA_ATTR_MMIO.
 */
const BAR_MAPPERS: Record<DesignName, Mapper> = {
  sg: (device, input) => {
    const region = device.machine.platform.memoryMap.lookup(input.source.addressAt(0));
    if (region?.kind === 'mmio' && region.p2pdmaPages) {
      return mapSgDesign(device, input, 'dma_map_sgtable', 'scatterlist of P2PDMA pages');
    }
    return {
      noPath: true,
      api: 'dma_map_sgtable',
      reason:
        'this BAR has no struct pages (no pci_p2pdma_add_resource) to put in a scatterlist, and vfio-pci had no dma-buf export before 6.19',
    };
  },
  'linux-7.1': (device, input) => {
    const topology = device.machine.platform.topology;
    const provider = p2pdmaProviderOf(topology, input.source.addressAt(0));
    if (provider === undefined) fail('EINVAL', `${formatHex(input.source.addressAt(0))} is in no BAR`);
    const dma = dmaBufPhysVecToSgt(device, provider, input.source, input.dir);
    const list = new DmaRangeListBuilder({ merge: false });
    for (const e of dma.entries) list.append(e.addr, BigInt(e.len));
    return {
      api: 'dma_buf_phys_vec_to_sgt',
      path: dma.state !== undefined ? 'iova' : dma.mapType,
      dma: list.build(),
      metadata: { 'DMA-only sg table': dma.metadataBytes, 'phys_vec (exporter)': physVecBytes(input.source) },
      note: `Linux 7.1 dma-buf: ${input.source.count} phys_vec → ${dma.entries.length} DMA-only sg entries (${dma.mapType})`,
      unmap: () => dmaBufFreeSgt(dma),
    };
  },
  physr: mapPhysrDesign,
};

/**
 * ib_umem_get over user memory (drivers/infiniband/core/umem.c). Linux 7.1 has not changed it, so
 * `sg` and `linux-7.1` do the same work: pin into one page of pointers at a time (the peak scratch),
 * append each batch with sg_alloc_append_table_from_pages, ib_dma_map_sgtable_attrs. physr pins to a
 * PhyrList cut at the device's max segment size and maps it as one list (src/rdma PhyrUmem).
 */
function mapUmemSg(device: DmaDevice, input: DesignMapInput, why: string): Mapped {
  const pages = pageArray(input.source);
  const table = ibUmemSgTable(pages, ibUmemMaxSegment(device.maxSegmentSize));
  const nents = dmaMapSg(device, table, 'BIDIRECTIONAL');
  return {
    api: 'ib_umem_get',
    path: 'sg',
    dma: table.toDmaRangeList(),
    metadata: { 'sg table': table.metadataBytes },
    scratch: { 'page list': Math.min(pages.length * 8, UMEM_PAGE_LIST_BYTES) },
    note: `${why}: ${pages.length} pages, a page of pointers at a time → ${table.origNents} sg entries → ${nents} DMA segments`,
    unmap: () => dmaUnmapSg(device, table, 'BIDIRECTIONAL'),
  };
}

const UMEM_MAPPERS: Record<DesignName, Mapper> = {
  sg: (device, input) => mapUmemSg(device, input, 'scatterlist'),
  'linux-7.1': (device, input) =>
    mapUmemSg(device, input, 'Linux 7.1 pinned MRs still build an sg_table (ib_umem_get)'),
  physr: (device, input) => {
    const phyrs = input.source.split({ maxSegmentSize: device.maxSegmentSize });
    const mapping = dmaMapPhyrList(device, phyrs, 'BIDIRECTIONAL');
    return {
      api: 'ib_umem_get (physr)',
      path: mapping.path,
      dma: mapping.dma,
      metadata: { 'phyr list': phyrs.metadataBytes, 'DMA range list': mapping.dma.metadataBytes },
      note: physrNote(phyrs.count, mapping),
      unmap: () => dmaUnmap(mapping),
    };
  },
};

/**
 * A BAR range exported by vfio-pci, mapped into an IOMMUFD IOAS attached to the device. IOMMUFD
 * writes physical addresses into its own IOMMU page table, so it needs the exporter's ranges, never
 * an importer's DMA addresses: before 6.19 it had no dma-buf import (IOMMU_IOAS_MAP_FILE took memfds)
 * and no scatterlist way in. 6.19 (drivers/iommu/iommufd/pages.c, iopt_map_dmabuf) takes the
 * phys_vec through vfio's private interconnect and only a single range; physr hands the same list.
 * The model's IOAS takes a dma-buf through that one-range interconnect in both designs, so a
 * multi-range export is refused (EOPNOTSUPP) under physr too: the step is then left out, not faked.
 */
function mapIoas(device: DmaDevice, input: DesignMapInput, api: string, kept: string): Mapped {
  const machine = device.machine;
  const topology = machine.platform.topology;
  const first = input.source.addressAt(0);
  const provider = p2pdmaProviderOf(topology, first);
  const bar = topology.functions.get(provider?.owner ?? '')?.bars.find((b) => b.index === provider?.bar);
  if (provider === undefined || bar === undefined) fail('EINVAL', `${formatHex(first)} is in no BAR`);
  const iommu = machine.iommuOf(device.bdf);
  if (iommu === undefined) fail('ENODEV', `${device.bdf} has no IOMMU: IOMMUFD cannot bind it`);
  const ranges: { offset: bigint; length: bigint }[] = [];
  input.source.forEachRange((address, length) => ranges.push({ offset: address - bar.cpuAddress, length }));
  const vfio = new VfioPciDevice({ topology, bdf: provider.owner, metrics: machine.metrics });
  const buf = vfio.exportDmaBuf({ regionIndex: bar.index, ranges });
  const ctx = new IommufdCtx(machine.metrics);
  const ioas = ctx.ioasAlloc();
  ctx.bindDevice(iommu, device.bdf).attach(ioas);
  const size = input.source.totalLength;
  const iova = ioas.mapDmaBuf(buf, 0n, size, input.iova === undefined ? {} : { iova: input.iova });
  return {
    api,
    path: 'iommufd',
    dma: DmaRangeList.fromRanges([[iova, size]]),
    metadata: { [kept]: input.source.count * RANGE_BYTES },
    note: `${api}: ${input.source.count} ${kept} → one IOAS area at ${formatHex(iova)}`,
    unmap: () => {
      ioas.unmap(iova, size);
    },
  };
}

const IOMMUFD_MAPPERS: Record<DesignName, Mapper> = {
  sg: () => ({
    noPath: true,
    api: 'dma_buf_map_attachment',
    reason:
      "IOMMUFD maps physical addresses into its own page table, and an sg_table holds one importer's DMA addresses; before 6.19 IOMMUFD took no dma-buf",
  }),
  'linux-7.1': (device, input) => mapIoas(device, input, 'iopt_map_dmabuf', 'phys_vec (exporter)'),
  physr: (device, input) => mapIoas(device, input, 'iopt_map_dmabuf (physr)', 'phyr list (exporter)'),
};

/** The mappers for who maps what. */
function mappersFor(input: DesignMapInput): Record<DesignName, Mapper> {
  if (input.use === 'iommufd') return IOMMUFD_MAPPERS;
  // An RDMA dma-buf MR is one more importer: ib_umem_dmabuf_map_pages → dma_buf_map_attachment.
  if (input.memory === 'bar') return BAR_MAPPERS;
  return input.use === 'rdma-mr' ? UMEM_MAPPERS : USER_MAPPERS;
}

/** Runs the map under one design on a fresh machine; the mapping stays live until `finish`. */
export function runMapDesign(design: DesignName, input: DesignMapInput): DesignRun {
  const platform = input.platform();
  const bytes = input.bytes;
  if (bytes !== undefined) {
    let at = 0;
    input.source.forEachRange((address, length) => {
      platform.bytes.write(address, bytes.subarray(at, at + Number(length)));
      at += Number(length);
    });
  }
  const machine = createMachine(platform, input.machineOptions);
  const device = machine.device(input.bdf, input.deviceProps);
  const before = counters(machine.metrics);
  let mapped: Mapped | NoPath;
  try {
    mapped = mappersFor(input)[design](device, input);
  } catch (error) {
    if (!isPhysrError(error)) throw error;
    const outcome: DesignOutcome = {
      design,
      ran: false,
      api: design,
      errno: error.errno,
      reason: error.reason,
      note: `${design} refused the map: ${error.errno}`,
    };
    return { design, machine, device, dma: undefined, finish: () => outcome };
  }
  if (mapped.noPath) {
    const outcome: DesignOutcome = {
      design,
      ran: false,
      api: mapped.api,
      reason: mapped.reason,
      note: `${design} has no path for this step: ${mapped.reason}`,
    };
    return { design, machine, device, dma: undefined, finish: () => outcome };
  }
  const live = mapped;
  const afterMap = counters(machine.metrics);
  let finished: DesignOutcome | undefined;
  return {
    design,
    machine,
    device,
    dma: live.dma,
    finish() {
      if (finished !== undefined) return finished;
      live.unmap();
      const moved = delta(before, counters(machine.metrics));
      finished = {
        design,
        ran: true,
        api: live.api,
        path: live.path,
        metadataBytes: sum(live.metadata),
        metadata: live.metadata,
        peakMetadataBytes: sum(live.metadata) + sum(live.scratch ?? {}),
        ...(live.scratch === undefined ? {} : { scratch: live.scratch }),
        entries: live.dma.count,
        ...delta(before, afterMap),
        iotlbFlushes: moved.iotlbFlushes,
        note: live.note,
      };
      return finished;
    },
  };
}

/** Sees every set of live design runs before they are unmapped (tests check the bytes there). */
export type DesignRunObserver = (input: DesignMapInput, runs: readonly DesignRun[]) => void;

let observer: DesignRunObserver | undefined;

/** Installs an observer; returns the one it replaced (put it back when done). */
export function observeDesignRuns(next: DesignRunObserver | undefined): DesignRunObserver | undefined {
  const previous = observer;
  observer = next;
  return previous;
}

/** The map under every design asked for, each finished (mapped, then unmapped). */
export function mapUnderDesigns(input: DesignMapInput, designs: readonly DesignName[]): DesignOutcome[] {
  const runs = designs.map((d) => runMapDesign(d, input));
  observer?.(input, runs);
  return runs.map((r) => r.finish());
}

/** The physical ranges behind [start, start + length) of a user address space, as its page table holds them now. */
export function userPhyrs(mm: MmStruct, start: bigint, length: bigint): PhyrList {
  const builder = new PhyrListBuilder({ merge: true });
  const end = start + length;
  for (const m of mm.mappings(start, length)) {
    const from = BigInt(m.vpn) * PAGE_SIZE;
    const to = from + BigInt(m.pages) * PAGE_SIZE;
    const lo = from > start ? from : start;
    const hi = to < end ? to : end;
    if (hi > lo) builder.append(BigInt(m.pfn) * PAGE_SIZE + (lo - from), hi - lo);
  }
  const list = builder.build();
  if (list.totalLength !== length)
    fail('EFAULT', `${formatHex(start)}+${formatHex(length)} is not all mapped`);
  return list;
}

/**
 * A pin under each design, from the pages the step pinned: sg and Linux 7.1 hold pin_user_pages'
 * page pointer array until unpin (8 B a page; 7.1's memfd_pin_folios, used for memfds, would hold a
 * folio pointer a folio instead — said in the note), physr its ranges (16 B each). Nothing is mapped.
 */
export function pinUnderDesigns(
  mm: MmStruct,
  start: bigint,
  length: bigint,
  designs: readonly DesignName[],
): DesignOutcome[] {
  const extents = mm.mappings(start, length);
  const pages = Number((start + length - 1n) / PAGE_SIZE - start / PAGE_SIZE + 1n);
  let folios = 0;
  let previous: unknown;
  for (const m of extents) {
    // A base-page run is one order-0 folio a page.
    if (m.basePages === true) folios += m.pages;
    else if (m.folio === undefined || m.folio !== previous) folios++;
    previous = m.folio;
  }
  const ranges = userPhyrs(mm, start, length).count;
  const pageArray = { 'page array': pages * 8 };
  return designs.map((design): DesignOutcome => {
    if (design === 'physr') {
      return {
        design,
        ran: true,
        api: 'pin_user_pages (physr)',
        metadataBytes: ranges * 16,
        peakMetadataBytes: ranges * 16,
        metadata: { 'phyr list': ranges * 16 },
        entries: ranges,
        note: `physr: ${pages} pages pinned as ${ranges} ranges`,
      };
    }
    return {
      design,
      ran: true,
      api: 'pin_user_pages',
      metadataBytes: pages * 8,
      peakMetadataBytes: pages * 8,
      metadata: pageArray,
      entries: pages,
      note:
        design === 'sg'
          ? `scatterlist: ${pages} page pointers`
          : `Linux 7.1: ${pages} page pointers (memfd_pin_folios would hold ${folios} folio pointers + offset, ${folios * 8 + 8} B; no ranges)`,
    };
  });
}

/** A design's costs summed over the steps where every compared design ran (like against like). */
export interface DesignSuiteTotals extends DesignTotalsJson {
  readonly design: DesignName;
}

/** One ratio between two designs' totals, with the direction it reads in. */
export interface DesignRatio {
  readonly metric: keyof Omit<DesignSuiteTotals, 'design' | 'steps'>;
  readonly from: DesignName;
  readonly to: DesignName;
  /** from / to; undefined when `to` is 0. */
  readonly ratio: number | undefined;
  /** e.g. "sg/linux-7.1 (above 1: linux-7.1 holds less)". */
  readonly reads: string;
}

const TOTALLED = [
  'metadataBytes',
  'peakMetadataBytes',
  'entries',
  'iovaAllocations',
  'leafPteWrites',
  'iotlbFlushes',
  'bounceBytes',
] as const;

/** A step some compared design did not run, with why (so a total never hides it). */
export interface DesignLeftOut {
  readonly scenario: string;
  /** 1-based, as reports number steps. */
  readonly step: number;
  readonly op: string;
  readonly design: DesignName;
  readonly why: string;
}

/**
 * A step counted once: it did the same work as an earlier step of its scenario under every design
 * (e.g. a scenario maps a buffer by its physr path, then the same kind of buffer by its sg path: the
 * design reruns of both are the same three runs, so adding both would count that map twice).
 */
export interface DesignRepeat {
  readonly scenario: string;
  /** 1-based, as reports number steps. */
  readonly step: number;
  readonly op: string;
  /** The earlier step (1-based) it repeats. */
  readonly of: number;
}

/** The designs' totals over the steps where every one of them ran, the ratios, and what was left out. */
export interface DesignComparison {
  /** The compared designs (the report's columns), in DESIGN_NAMES order. */
  readonly designs: readonly DesignName[];
  /** Steps counted: every compared design ran them. */
  readonly steps: number;
  readonly totals: readonly DesignSuiteTotals[];
  /** sg → linux-7.1 and linux-7.1 → physr, where both ends are compared. */
  readonly ratios: readonly DesignRatio[];
  /** Scenarios with at least one counted step. */
  readonly scenarios: readonly string[];
  readonly leftOut: readonly DesignLeftOut[];
  /** Steps counted once because they repeat an earlier step's work under every design. */
  readonly repeats: readonly DesignRepeat[];
}

/** What a step did under the compared designs, as a key: equal keys are the same work. */
function workKey(op: string, runs: readonly DesignOutcome[]): string {
  return JSON.stringify([
    op,
    runs.map((r) => [r.design, r.api, r.path ?? '', ...TOTALLED.map((k) => r[k] ?? 0)]),
  ]);
}

/**
 * Per-design totals for reports: only steps where every compared design ran count, so a step one
 * design refused or has no path for tilts nothing (it is listed in `leftOut` instead), and a step
 * that repeats an earlier step's work under every design counts once (listed in `repeats`). Ratios:
 * sg → linux-7.1 (what upstream has gained so far) and linux-7.1 → physr (what the rest of the
 * proposal would add).
 */
export function designTotals(
  reports: readonly { readonly name?: string; readonly steps: readonly StepReport[] }[],
  designs: readonly DesignName[] = DESIGN_NAMES,
): DesignComparison {
  const compared = DESIGN_NAMES.filter((d) => designs.includes(d));
  const sums = new Map<DesignName, Record<(typeof TOTALLED)[number], number> & { steps: number }>();
  for (const d of compared) {
    sums.set(d, {
      steps: 0,
      metadataBytes: 0,
      peakMetadataBytes: 0,
      entries: 0,
      iovaAllocations: 0,
      leafPteWrites: 0,
      iotlbFlushes: 0,
      bounceBytes: 0,
    });
  }
  let steps = 0;
  const scenarios: string[] = [];
  const leftOut: DesignLeftOut[] = [];
  const repeats: DesignRepeat[] = [];
  for (const report of reports) {
    let counted = false;
    const seen = new Map<string, number>();
    for (const step of report.steps) {
      const runs = step.designRuns;
      if (runs === undefined) continue;
      const mine = compared.map((d) => runs.find((r) => r.design === d));
      if (mine.some((r) => r === undefined)) continue;
      const refused = mine.filter((r) => r !== undefined && !r.ran);
      for (const r of refused) {
        leftOut.push({
          scenario: report.name ?? '',
          step: step.index + 1,
          op: step.op,
          design: r!.design,
          why: r!.reason ?? r!.errno ?? 'did not run',
        });
      }
      if (refused.length > 0) continue;
      const key = workKey(step.op, mine as DesignOutcome[]);
      const earlier = seen.get(key);
      if (earlier !== undefined) {
        repeats.push({ scenario: report.name ?? '', step: step.index + 1, op: step.op, of: earlier });
        continue;
      }
      seen.set(key, step.index + 1);
      steps++;
      counted = true;
      for (const run of mine) {
        const sum = sums.get(run!.design)!;
        sum.steps++;
        for (const key of TOTALLED) sum[key] += run![key] ?? 0;
      }
    }
    if (counted && report.name !== undefined) scenarios.push(report.name);
  }
  const totals = compared.map((design): DesignSuiteTotals => ({ design, ...sums.get(design)! }));
  const ratios: DesignRatio[] = [];
  for (const [from, to] of DESIGN_RATIO_PAIRS) {
    const a = sums.get(from);
    const b = sums.get(to);
    if (a === undefined || b === undefined) continue;
    for (const metric of TOTALLED) {
      ratios.push({
        metric,
        from,
        to,
        ratio: b[metric] === 0 ? undefined : a[metric] / b[metric],
        reads: designRatioHeading(from, to),
      });
    }
  }
  return { designs: compared, steps, totals, ratios, scenarios, leftOut, repeats };
}
