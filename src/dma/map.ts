/**
 * Mapping a PhyrList for a device: the physr DMA API.
 *
 * Per range, the memory map says what the bytes are. Host memory (RAM, pmem, reserved) and P2P
 * memory (an mmio BAR: provider = BAR owner, client = this device, calcP2pDecision as
 * drivers/pci/p2pdma.c pci_p2pdma_map_type) are split into segments of one kind, in list order:
 *  - host memory on a dma-iommu device: ONE IOVA for the segment through the two-step IOVA API
 *    (iova-api.ts); when the ranges break its alignment rules, the device does not use dma-iommu, or
 *    try_alloc fails, each range is mapped on its own as dma_map_phys does (iommu_dma_map_phys in
 *    drivers/iommu/dma-iommu.c, dma_direct_map_phys in kernel/dma/direct.h);
 *  - P2P `bus-address`: no mapping at all, the DMA address is the PCI bus address
 *    (pci_p2pdma_bus_addr_map);
 *  - P2P `through-host-bridge`: mapped like MMIO (DMA_ATTR_MMIO: IOMMU_MMIO prot, no cache
 *    maintenance, never bounced) through the same machinery as host memory;
 *  - P2P `not-supported`: EREMOTEIO with the p2pdma reason.
 * The result's DmaRangeList obeys the device's max_segment_size and segment boundary (the IOVA of a
 * segment is one contiguous run, cut by those rules).
 *
 * Cost accounting: `dma.maps`/`dma.unmaps`, `core.physr_metadata_bytes` for the DmaRangeList handed
 * out (metadata is counted where it is built: the PhyrList handed in was counted by whoever built it,
 * e.g. pin_user_pages, as dma_map_sg counts the sg_table it fills), PTE writes, IOTLB flushes and IOVA allocations from the iommu layer,
 * `dma.bounce_bytes` from swiotlb, `dma.cache_sync_bytes` for non-coherent devices.
 */
import {
  alignUp,
  COUNTER,
  type DmaRangeList,
  DmaRangeListBuilder,
  fail,
  formatHex,
  formatSize,
  type PhyrList,
  PhyrListBuilder,
  U64_MAX,
} from '../core/index.ts';
import { busAddressOf, calcP2pDecision, type MemoryRegion, type P2pDecision } from '../platform/index.ts';
import type { DmaDevice } from './device.ts';
import {
  bigintMin,
  type DmaIovaState,
  dmaDomainOf,
  dmaInfoToProt,
  dmaIovaDestroy,
  dmaIovaLink,
  dmaIovaSync,
  dmaIovaTryAlloc,
  iommuDmaAllocIova,
  zeroPadding,
} from './iova-api.ts';
import {
  coversWholeIova,
  dmaIovaReleaseRuns,
  type LinkedRun,
  linkedRunsOf,
  planAlignedLayout,
  planPackedLayout,
} from './iova-layout.ts';
import type { SwiotlbBounce } from './swiotlb.ts';
import type { DmaAttrs, DmaDirection, DmaMappingType, DmaSegment, MapPath, SegmentKind } from './types.ts';

/** One mapped piece: a stretch of source bytes and how it reached the device. */
export interface MappedPiece {
  readonly kind: SegmentKind;
  /** Byte offset of the piece in the source list. */
  readonly sourceOffset: bigint;
  readonly phys: bigint;
  readonly size: bigint;
  readonly dma: bigint;
  readonly mmio: boolean;
  /** Own IOVA allocation (per-range iommu path): granule-aligned start and size. */
  readonly iova?: { readonly start: bigint; readonly size: bigint };
  /** The IOVA state a piece was linked into (shared by the pieces of one segment). */
  readonly state?: DmaIovaState;
  /** swiotlb record when the whole piece was bounced (per-range paths). */
  readonly bounce?: SwiotlbBounce;
  readonly p2p?: P2pDecision;
}

/** The handle a map call returns: what the device uses and what unmap needs. */
export interface DmaMapping {
  readonly id: number;
  readonly device: DmaDevice;
  readonly type: DmaMappingType;
  readonly direction: DmaDirection;
  readonly attrs: DmaAttrs;
  readonly source: PhyrList;
  /** Every DMA range, in source order, within the device's segment rules. */
  readonly dma: DmaRangeList;
  /** How the list was split: runs of one kind, in order. */
  readonly segments: readonly DmaSegment[];
  readonly path: MapPath;
  /** Why the IOVA API was not used for host memory (undefined when it was, or not needed). */
  readonly fallbackReason: string | undefined;
  readonly pieces: readonly MappedPiece[];
  /** The address dma-debug knows the mapping by (the first DMA address). */
  readonly debugAddress: bigint;
  unmapped: boolean;
}

type RangeClass = 'host' | 'bus-address' | 'through-host-bridge';

interface ClassifiedRange {
  readonly cls: RangeClass;
  readonly address: bigint;
  readonly length: bigint;
  readonly sourceOffset: bigint;
  readonly p2p?: P2pDecision;
}

/** Finds what each range is, from the memory map; EINVAL for holes and ranges across regions. */
export function classifyRanges(device: DmaDevice, list: PhyrList): ClassifiedRange[] {
  const { memoryMap, topology } = device.machine.platform;
  const decisions = new Map<string, P2pDecision>();
  const out: ClassifiedRange[] = [];
  let offset = 0n;
  // Consecutive ranges mostly sit in the region of the one before: test its bounds before a lookup.
  let current: MemoryRegion | undefined;
  list.forEachRange((address, length, i) => {
    const last = address + length - 1n;
    let region =
      current !== undefined && address >= current.start && last <= current.last ? current : undefined;
    region ??= memoryMap.containing(address, last);
    current = region;
    if (region === undefined) {
      const at = memoryMap.lookup(address);
      fail(
        'EINVAL',
        at === undefined
          ? `range ${i} at ${formatHex(address)} is in no memory region`
          : `range ${i} ${formatHex(address)}+${formatSize(length)} runs past the end of ${at.name}`,
      );
    }
    if (region.kind !== 'mmio') {
      out.push({ cls: 'host', address, length, sourceOffset: offset });
    } else {
      const provider = region.bdf;
      if (provider === undefined)
        fail('EINVAL', `range ${i} at ${formatHex(address)} is MMIO of no known PCI function`);
      let decision = decisions.get(provider);
      if (decision === undefined) {
        decision = calcP2pDecision(topology, provider, device.bdf);
        decisions.set(provider, decision);
      }
      if (decision.mapType === 'not-supported') {
        fail(
          'EREMOTEIO',
          `P2P from ${device.bdf} to ${provider} BAR at ${formatHex(address)}: ${decision.reason}`,
        );
      }
      out.push({ cls: decision.mapType, address, length, sourceOffset: offset, p2p: decision });
    }
    offset += length;
  });
  return out;
}

/**
 * dma_max_mapping_size (kernel/dma/mapping.c): the largest single mapping the device can be given.
 * dma-direct: swiotlb's per-mapping limit when bouncing may happen (forced, or the mask does not
 * cover all RAM: dma_addressing_limited); dma-iommu: the same limit for untrusted devices; else none.
 */
export function dmaMaxMappingSize(device: DmaDevice): bigint {
  const swiotlb = device.machine.swiotlb;
  if (swiotlb === undefined) return U64_MAX;
  const limit = swiotlb.maxMappingSize(device.minAlignMask);
  if (dmaDomainOf(device) !== undefined) return device.untrusted ? limit : U64_MAX;
  const lastRam = device.machine.platform.memoryMap.byKind('ram').at(-1)?.last ?? 0n;
  const limited = device.dmaMask < lastRam - device.dmaRangeOffset;
  return device.forceBounce || limited ? limit : U64_MAX;
}

/** dma_capable (include/linux/dma-direct.h): the last byte within the device's mask. */
export function dmaCapable(device: DmaDevice, addr: bigint, size: bigint): boolean {
  return addr + size - 1n <= device.dmaMask;
}

/**
 * dma_direct_map_phys (kernel/dma/direct.h): the DMA address of RAM is phys minus the device's
 * dma-range offset; MMIO is used as is. Bounced through swiotlb when forced or beyond the mask.
 * EIO when the address is unreachable and cannot be bounced.
 */
export function dmaDirectMapPhys(
  device: DmaDevice,
  phys: bigint,
  size: bigint,
  dir: DmaDirection,
  attrs: DmaAttrs,
  sourceOffset: bigint,
  kind: SegmentKind = 'direct',
): MappedPiece {
  const mmio = attrs.mmio === true;
  const swiotlb = device.machine.swiotlb;
  const bounce = (): MappedPiece => {
    if (mmio) fail('EIO', `${device.bdf}: MMIO at ${formatHex(phys)} cannot be bounced through swiotlb`);
    if (swiotlb === undefined) {
      fail(
        'EIO',
        `${device.bdf}: DMA addr ${formatHex(phys)}+${size} overflows mask ${formatHex(device.dmaMask)} and swiotlb is off`,
      );
    }
    const b = swiotlb.map(phys, size, {
      minAlignMask: device.minAlignMask,
      segmentBoundaryMask: device.segmentBoundaryMask,
    });
    const dma = b.tlbAddr - device.dmaRangeOffset;
    if (!dmaCapable(device, dma, size)) {
      swiotlb.unmap(b, dir, true);
      fail(
        'EIO',
        `${device.bdf}: swiotlb addr ${formatHex(dma)}+${size} overflows mask ${formatHex(device.dmaMask)}`,
      );
    }
    cacheSync(device, size, attrs);
    return { kind: 'bounce', sourceOffset, phys, size, dma, mmio, bounce: b };
  };
  if (device.forceBounce) return bounce();
  if (mmio) {
    if (!dmaCapable(device, phys, size)) {
      fail(
        'EIO',
        `${device.bdf}: MMIO ${formatHex(phys)}+${size} overflows mask ${formatHex(device.dmaMask)}`,
      );
    }
    return { kind, sourceOffset, phys, size, dma: phys, mmio };
  }
  const dma = phys - device.dmaRangeOffset;
  if (!dmaCapable(device, dma, size)) return bounce();
  cacheSync(device, size, attrs);
  return { kind, sourceOffset, phys, size, dma, mmio };
}

function cacheSync(device: DmaDevice, size: bigint, attrs: DmaAttrs): void {
  if (!device.coherent && attrs.skipCpuSync !== true && attrs.mmio !== true) {
    device.machine.metrics.add('dma.cache_sync_bytes', Number(size));
  }
}

/**
 * iommu_dma_map_phys (drivers/iommu/dma-iommu.c): its own IOVA for one range; an untrusted device
 * gets an unaligned range bounced first (never MMIO: EIO).
 */
export function iommuDmaMapPhys(
  device: DmaDevice,
  phys: bigint,
  size: bigint,
  dir: DmaDirection,
  attrs: DmaAttrs,
  sourceOffset: bigint,
  kind: SegmentKind = 'iommu',
): MappedPiece {
  const domain = dmaDomainOf(device);
  if (domain === undefined) fail('EINVAL', `${device.bdf} does not use dma-iommu`);
  const granule = domain.iovad!.granule;
  const mask = granule - 1n;
  const mmio = attrs.mmio === true;
  let target = phys;
  let b: SwiotlbBounce | undefined;
  const swiotlb = device.machine.swiotlb;
  if (device.untrusted && ((phys | size) & mask) !== 0n) {
    if (mmio) fail('EIO', `${device.bdf}: MMIO at ${formatHex(phys)} cannot be bounced through swiotlb`);
    // iommu_dma_map_swiotlb: no pool, no mapping (never the whole granule for an untrusted device).
    if (swiotlb === undefined) {
      fail(
        'EIO',
        `${device.bdf}: DMA bounce buffers are inactive, unable to map unaligned ${formatHex(phys)}`,
      );
    }
    // swiotlb_tbl_map_single takes the device's min_align_mask itself (dma_get_min_align_mask).
    b = swiotlb.map(phys, size, {
      minAlignMask: device.minAlignMask,
      allocAlignMask: mask,
      segmentBoundaryMask: device.segmentBoundaryMask,
    });
    zeroPadding(device, b.tlbAddr, size, granule);
    target = b.tlbAddr;
  }
  cacheSync(device, size, attrs);
  const iovaOff = target & mask;
  const len = alignUp(size + iovaOff, granule);
  let iova: bigint;
  try {
    iova = iommuDmaAllocIova(device, domain, len);
    try {
      domain.map(iova, target - iovaOff, len, dmaInfoToProt(dir, device.coherent, attrs));
    } catch (error) {
      domain.freeIova(iova, len);
      throw error;
    }
  } catch (error) {
    if (b !== undefined) swiotlb!.unmap(b, dir, true);
    throw error;
  }
  return {
    kind: b === undefined ? kind : 'bounce',
    sourceOffset,
    phys,
    size,
    dma: iova + iovaOff,
    mmio,
    iova: { start: iova, size: len },
    ...(b === undefined ? {} : { bounce: b }),
  };
}

/** Undoes one per-range piece (iommu_dma_unmap_phys / dma_direct_unmap_phys). */
function unmapPiece(device: DmaDevice, piece: MappedPiece, dir: DmaDirection, attrs: DmaAttrs): void {
  if (piece.state !== undefined || piece.kind === 'bus-address') return;
  if (!device.coherent && attrs.skipCpuSync !== true && !piece.mmio && dir !== 'TO_DEVICE') {
    device.machine.metrics.add('dma.cache_sync_bytes', Number(piece.size));
  }
  if (piece.iova !== undefined) dmaDomainOf(device)!.dmaUnmap(piece.iova.start, piece.iova.size);
  if (piece.bounce !== undefined)
    device.machine.swiotlb!.unmap(piece.bounce, dir, attrs.skipCpuSync === true);
}

/** Why the IOVA API cannot take these ranges, or undefined when it can (dma_iova_link's rules). */
export function iovaLayoutProblem(ranges: readonly ClassifiedRange[], granule: bigint): string | undefined {
  const mask = granule - 1n;
  for (let i = 0; i < ranges.length; i++) {
    const r = ranges[i]!;
    if (i > 0 && (r.address & mask) !== 0n) {
      return `range at ${formatHex(r.address)} (not the first) does not start on a ${formatSize(granule)} granule`;
    }
    if (i < ranges.length - 1 && ((r.address + r.length) & mask) !== 0n) {
      return `range at ${formatHex(r.address)} (not the last) does not end on a ${formatSize(granule)} granule`;
    }
  }
  return undefined;
}

/** Splits ranges by the device's segment rules (what a block layer does before mapping). */
function splitForDevice(
  device: DmaDevice,
  ranges: readonly ClassifiedRange[],
  mappingLimit = true,
): ClassifiedRange[] {
  const out: ClassifiedRange[] = [];
  const max = mappingLimit
    ? bigintMin(device.maxSegmentSize, dmaMaxMappingSize(device))
    : device.maxSegmentSize;
  const boundary = device.segmentBoundaryMask;
  for (const r of ranges) {
    let address = r.address;
    let left = r.length;
    let offset = r.sourceOffset;
    while (left > 0n) {
      const toBoundary = (address | boundary) - address + 1n;
      let take = bigintMin(left, max);
      if (toBoundary < take) take = toBoundary;
      out.push({ ...r, address, length: take, sourceOffset: offset });
      address += take;
      offset += take;
      left -= take;
    }
  }
  return out;
}

/** Maps a run of host (or through-host-bridge) ranges: one IOVA if possible, else range by range. */
function mapRun(
  device: DmaDevice,
  run: readonly ClassifiedRange[],
  dir: DmaDirection,
  attrs: DmaAttrs,
  pieces: MappedPiece[],
): string | undefined {
  const p2p = run[0]!.cls === 'through-host-bridge';
  const runAttrs: DmaAttrs = p2p ? { ...attrs, mmio: true } : attrs;
  const domain = dmaDomainOf(device);
  let reason: string | undefined;
  if (domain === undefined) {
    reason = device.iommu === undefined ? 'no IOMMU: dma-direct' : 'identity domain: dma-direct';
  } else {
    reason = iovaLayoutProblem(run, domain.iovad!.granule);
  }
  if (reason === undefined && domain !== undefined && attrs.layout === 'aligned') {
    if (mapRunAligned(device, run, dir, runAttrs, pieces)) return undefined;
  }
  if (reason === undefined) {
    let total = 0n;
    for (let k = 0; k < run.length; k++) total += run[k]!.length;
    const state = dmaIovaTryAlloc(device, run[0]!.address, total);
    if (state !== undefined) {
      let linked = 0n;
      const kind: SegmentKind = p2p ? 'through-host-bridge' : 'iova';
      const mmio = runAttrs.mmio === true;
      try {
        for (let k = 0; k < run.length; k++) {
          const r = run[k]!;
          dmaIovaLink(device, state, r.address, linked, r.length, dir, runAttrs);
          const dma = state.addr + linked;
          // Literal objects (no spread) so every piece of the run shares one shape.
          pieces.push(
            r.p2p === undefined
              ? { kind, sourceOffset: r.sourceOffset, phys: r.address, size: r.length, dma, mmio, state }
              : {
                  kind,
                  sourceOffset: r.sourceOffset,
                  phys: r.address,
                  size: r.length,
                  dma,
                  mmio,
                  state,
                  p2p: r.p2p,
                },
          );
          linked += r.length;
        }
      } catch (error) {
        dmaIovaDestroy(device, state, state.linkedBytes, dir, { ...runAttrs, skipCpuSync: true });
        throw error;
      }
      dmaIovaSync(device, state, 0n, total);
      return undefined;
    }
  }
  for (const r of splitForDevice(device, run)) {
    const kind: SegmentKind = p2p ? 'through-host-bridge' : domain === undefined ? 'direct' : 'iommu';
    const piece =
      domain === undefined
        ? dmaDirectMapPhys(device, r.address, r.length, dir, runAttrs, r.sourceOffset, kind)
        : iommuDmaMapPhys(device, r.address, r.length, dir, runAttrs, r.sourceOffset, kind);
    pieces.push(r.p2p === undefined ? piece : { ...piece, p2p: r.p2p });
  }
  return reason;
}

/**
 * The `aligned` layout (iova-layout.ts): one IOVA sized for the plan, each range linked at its
 * congruent offset, one sync. The plan is made for an allocation aligned to its largest page size
 * (alloc_iova's size alignment gives that); if the real start differs it is replanned, and packed
 * when the replan does not fit. False when try_alloc declines (the caller falls back as usual).
 */
function mapRunAligned(
  device: DmaDevice,
  run: readonly ClassifiedRange[],
  dir: DmaDirection,
  attrs: DmaAttrs,
  pieces: MappedPiece[],
): boolean {
  const domain = dmaDomainOf(device)!;
  const granule = domain.iovad!.granule;
  const sizes = domain.pageSizesDescending;
  const startPad = run[0]!.address & (granule - 1n);
  const wanted = planAlignedLayout(run, startPad, sizes, granule);
  const state = dmaIovaTryAlloc(device, run[0]!.address, wanted.size);
  if (state === undefined) return false;
  let plan = planAlignedLayout(run, state.addr, sizes, granule);
  if (plan.size > state.size) plan = planPackedLayout(run);
  const p2p = run[0]!.cls === 'through-host-bridge';
  const linked: LinkedRun[] = [];
  try {
    for (let i = 0; i < run.length; i++) {
      const r = run[i]!;
      const offset = plan.offsets[i]!;
      dmaIovaLink(device, state, r.address, offset, r.length, dir, attrs);
      linked.push({ offset, size: r.length });
      pieces.push({
        kind: p2p ? 'through-host-bridge' : 'iova',
        sourceOffset: r.sourceOffset,
        phys: r.address,
        size: r.length,
        dma: state.addr + offset,
        mmio: attrs.mmio === true,
        state,
        ...(r.p2p === undefined ? {} : { p2p: r.p2p }),
      });
    }
  } catch (error) {
    dmaIovaReleaseRuns(device, state, linkedRunsOf(linked), dir, { ...attrs, skipCpuSync: true });
    throw error;
  }
  dmaIovaSync(device, state, 0n, state.size);
  return true;
}

/** The linked stretches of an IOVA state, from the pieces that went into it. */
function stateRuns(state: DmaIovaState, pieces: readonly MappedPiece[]): LinkedRun[] {
  const stretches: LinkedRun[] = [];
  for (const p of pieces) if (p.state === state) stretches.push({ offset: p.dma - state.addr, size: p.size });
  return linkedRunsOf(stretches);
}

/** Groups pieces into segments of one kind, building each segment's lists. */
function segmentsOf(device: DmaDevice, pieces: readonly MappedPiece[]): DmaSegment[] {
  const out: DmaSegment[] = [];
  let i = 0;
  while (i < pieces.length) {
    const kind = pieces[i]!.kind;
    let end = i;
    while (end < pieces.length && pieces[end]!.kind === kind) end++;
    const phys = new PhyrListBuilder({ merge: false, capacity: end - i });
    const dma = new DmaRangeListBuilder({ merge: true });
    let p2p: P2pDecision | undefined;
    // Bounced bytes in the same pass: per-range bounces, plus each shared IOVA state's once.
    let lastState: DmaIovaState | undefined;
    let states: Set<DmaIovaState> | undefined;
    let perRange = 0n;
    // Contiguous DMA pieces (every piece of a packed IOVA) are merged here before the builder sees
    // them, by the builder's own rule: end meets start, merged length within 64 bits.
    let runStart = 0n;
    let runLength = 0n;
    for (let j = i; j < end; j++) {
      const p = pieces[j]!;
      phys.append(p.phys, p.size);
      if (j > i && runStart + runLength === p.dma && runLength + p.size <= U64_MAX) {
        runLength += p.size;
      } else {
        if (j > i) dma.append(runStart, runLength);
        runStart = p.dma;
        runLength = p.size;
      }
      p2p ??= p.p2p;
      const state = p.state;
      if (state !== undefined && state !== lastState) {
        lastState = state;
        states ??= new Set();
        states.add(state);
      }
      if (p.bounce !== undefined) perRange += p.size;
    }
    dma.append(runStart, runLength);
    let linked = 0n;
    if (states !== undefined) for (const s of states) for (const b of s.bounces) linked += b.bounce.size;
    const dmaList = dma.build().split({
      maxSegmentSize: device.maxSegmentSize,
      segmentBoundaryMask: device.segmentBoundaryMask,
    });
    out.push({
      kind,
      phys: phys.build(),
      dma: dmaList,
      bouncedBytes: perRange + linked,
      ...(p2p === undefined ? {} : { p2p }),
    });
    i = end;
  }
  return out;
}

function pathOf(segments: readonly DmaSegment[]): MapPath {
  const kinds = new Set(segments.map((s) => s.kind));
  if (kinds.size === 1) {
    const only = segments[0]!.kind;
    if (only === 'iova') return 'iova';
    if (only === 'bus-address') return 'bus-address';
    if (only !== 'through-host-bridge') return 'per-range';
  }
  return 'mixed';
}

function register(
  device: DmaDevice,
  type: DmaMappingType,
  source: PhyrList,
  dir: DmaDirection,
  attrs: DmaAttrs,
  pieces: MappedPiece[],
  segments: DmaSegment[],
  fallbackReason: string | undefined,
  needsErrorCheck = false,
): DmaMapping {
  const machine = device.machine;
  let dma: DmaRangeList | undefined;
  for (const s of segments) dma = dma === undefined ? s.dma : dma.concat(s.dma);
  const dmaList = dma!;
  const mapping: DmaMapping = {
    id: machine.takeMappingId(),
    device,
    type,
    direction: dir,
    attrs,
    source,
    dma: dmaList,
    segments,
    path: pathOf(segments),
    fallbackReason,
    pieces,
    debugAddress: dmaList.addressAt(0),
    unmapped: false,
  };
  machine.live.get(device.bdf)?.add(mapping);
  machine.debug.add({
    device: device.bdf,
    type,
    dmaAddress: mapping.debugAddress,
    size: source.totalLength,
    direction: dir,
    paddr: source.addressAt(0),
    sgCallEnts: 0,
    sgMappedEnts: 0,
    skipCpuSync: attrs.skipCpuSync === true,
    // Only dma_map_phys hands out an address that dma_mapping_error must vet; a PhyrList map throws.
    mapErrorChecked: !needsErrorCheck,
  });
  machine.metrics.add(COUNTER.dmaMaps);
  return mapping;
}

function checkDirection(dir: DmaDirection): void {
  if (dir !== 'TO_DEVICE' && dir !== 'FROM_DEVICE' && dir !== 'BIDIRECTIONAL') {
    fail('EINVAL', `DMA direction ${String(dir)} is not TO_DEVICE, FROM_DEVICE or BIDIRECTIONAL`);
  }
}

/**
 * Maps a PhyrList for `dir`. EINVAL for an empty list or ranges outside the memory map, EREMOTEIO for
 * unsupported P2P, ENOMEM when IOVA space or swiotlb runs out, EIO when a range is unreachable.
 * Nothing stays mapped after a failure.
 * `attrs.layout` picks how an IOVA run is laid out: 'packed' (default, back to back) or 'aligned'
 * (page-size congruent with gaps: fewer PTE writes, more DMA ranges; see iova-layout.ts).
 */
export function dmaMapPhyrList(
  device: DmaDevice,
  list: PhyrList,
  dir: DmaDirection,
  attrs: DmaAttrs = {},
): DmaMapping {
  checkDirection(dir);
  if (list.isEmpty) fail('EINVAL', `${device.bdf}: mapping an empty PhyrList`);
  const classified = classifyRanges(device, list);
  const pieces: MappedPiece[] = [];
  let fallbackReason: string | undefined;
  try {
    let i = 0;
    while (i < classified.length) {
      const cls = classified[i]!.cls;
      let j = i;
      while (j < classified.length && classified[j]!.cls === cls) j++;
      const run = classified.slice(i, j);
      if (cls === 'bus-address') {
        for (const r of splitForDevice(device, run, false)) {
          pieces.push({
            kind: 'bus-address',
            sourceOffset: r.sourceOffset,
            phys: r.address,
            size: r.length,
            dma: busAddressOf(device.machine.platform.topology, r.address),
            mmio: true,
            ...(r.p2p === undefined ? {} : { p2p: r.p2p }),
          });
        }
      } else {
        const reason = mapRun(device, run, dir, attrs, pieces);
        if (cls === 'host' && reason !== undefined) fallbackReason ??= reason;
      }
      i = j;
    }
  } catch (error) {
    undoPieces(device, pieces, dir, attrs);
    throw error;
  }
  const segments = segmentsOf(device, pieces);
  const type: DmaMappingType = pieces.some((p) => p.state !== undefined) ? 'iova' : 'phys';
  const mapping = register(device, type, list, dir, attrs, pieces, segments, fallbackReason);
  const metrics = device.machine.metrics;
  metrics.add(COUNTER.physrMetadataBytes, mapping.dma.metadataBytes);
  metrics.add(COUNTER.physrDmaRanges, mapping.dma.count);
  return mapping;
}

function undoPieces(
  device: DmaDevice,
  pieces: readonly MappedPiece[],
  dir: DmaDirection,
  attrs: DmaAttrs,
): void {
  const quiet: DmaAttrs = { ...attrs, skipCpuSync: true };
  const states = new Set<DmaIovaState>();
  for (const p of pieces) {
    if (p.state !== undefined) states.add(p.state);
    else unmapPiece(device, p, dir, quiet);
  }
  for (const s of states) {
    if (s.freed) continue;
    const runs = stateRuns(s, pieces);
    if (coversWholeIova(runs, s.size)) dmaIovaDestroy(device, s, s.linkedBytes, dir, quiet);
    else dmaIovaReleaseRuns(device, s, runs, dir, quiet);
  }
}

/** What the driver passes to unmap (to model the misuse dma-debug catches); defaults to the mapping's. */
export interface UnmapArgs {
  readonly size?: bigint;
  readonly direction?: DmaDirection;
  readonly type?: DmaMappingType;
}

/**
 * Unmaps: IOVA segments with dma_iova_destroy (one invalidation in strict mode), per-range pieces one
 * by one, bounce buffers copied back for FROM_DEVICE/BIDIRECTIONAL. A second unmap of the same handle
 * is reported by dma-debug (unmap-not-mapped) and does nothing else.
 */
export function dmaUnmap(mapping: DmaMapping, args: UnmapArgs = {}): void {
  const device = mapping.device;
  const machine = device.machine;
  machine.debug.checkUnmap(device.bdf, mapping.debugAddress, {
    type: args.type ?? mapping.type,
    size: args.size ?? mapping.source.totalLength,
    direction: args.direction ?? mapping.direction,
  });
  if (mapping.unmapped) return;
  const dir = mapping.direction;
  const states = new Set<DmaIovaState>();
  for (const p of mapping.pieces) {
    if (p.state !== undefined) states.add(p.state);
    else unmapPiece(device, p, dir, mapping.attrs);
  }
  for (const s of states) {
    // A gapped (aligned-layout) IOVA is unlinked run by run; a packed one in one destroy.
    const runs = stateRuns(s, mapping.pieces);
    if (coversWholeIova(runs, s.size)) dmaIovaDestroy(device, s, s.size, dir, mapping.attrs);
    else dmaIovaReleaseRuns(device, s, runs, dir, mapping.attrs);
  }
  mapping.unmapped = true;
  machine.live.get(device.bdf)?.delete(mapping);
  machine.metrics.add(COUNTER.dmaUnmaps);
}

function syncRange(
  mapping: DmaMapping,
  offset: bigint,
  size: bigint,
  toCpu: boolean,
  dir: DmaDirection,
): void {
  const device = mapping.device;
  const machine = device.machine;
  machine.debug.checkSync(device.bdf, mapping.debugAddress + offset, size, dir, toCpu);
  if (mapping.unmapped) return;
  const end = offset + size;
  const swiotlb = machine.swiotlb;
  const states = new Set<DmaIovaState>();
  for (const p of mapping.pieces) {
    const pEnd = p.sourceOffset + p.size;
    if (pEnd <= offset || p.sourceOffset >= end) continue;
    const from = p.sourceOffset > offset ? p.sourceOffset : offset;
    const to = bigintMin(pEnd, end);
    if (!device.coherent && !p.mmio && (toCpu ? dir !== 'TO_DEVICE' : true)) {
      machine.metrics.add('dma.cache_sync_bytes', Number(to - from));
    }
    if (p.bounce !== undefined && swiotlb !== undefined) {
      swiotlb.sync(p.bounce, from - p.sourceOffset, to - from, mapping.direction, toCpu);
    }
    if (p.state !== undefined) states.add(p.state);
  }
  if (swiotlb === undefined) return;
  // Bounced head/tail granules of linked ranges: offsets are relative to the IOVA state's start,
  // found in source order through the piece linked there (the aligned layout leaves gaps).
  for (const s of states) {
    const linked = mapping.pieces.filter((p) => p.state === s);
    for (const { offset: bOff, bounce } of s.bounces) {
      const p = linked.find((q) => bOff >= q.dma - s.addr && bOff < q.dma - s.addr + q.size);
      if (p === undefined) continue;
      const bStart = p.sourceOffset + (bOff - (p.dma - s.addr));
      const bEnd = bStart + bounce.size;
      if (bEnd <= offset || bStart >= end) continue;
      const from = bStart > offset ? bStart : offset;
      const to = bigintMin(bEnd, end);
      swiotlb.sync(bounce, from - bStart, to - from, mapping.direction, toCpu);
    }
  }
}

function syncWindow(
  mapping: DmaMapping,
  offset: bigint | undefined,
  size: bigint | undefined,
): [bigint, bigint] {
  const off = offset ?? 0n;
  const len = size ?? mapping.source.totalLength - off;
  if (off < 0n || len <= 0n) fail('EINVAL', `sync window ${formatHex(off)}+${len} is empty or negative`);
  return [off, len];
}

/**
 * dma_sync_*_for_cpu over `[offset, offset + size)` of the mapped bytes: bounce buffers copied back
 * for FROM_DEVICE/BIDIRECTIONAL. `dir` is what the driver passes (default: the mapping's).
 */
export function dmaSyncForCpu(mapping: DmaMapping, offset?: bigint, size?: bigint, dir?: DmaDirection): void {
  const [off, len] = syncWindow(mapping, offset, size);
  syncRange(mapping, off, len, true, dir ?? mapping.direction);
}

/** dma_sync_*_for_device: CPU writes pushed to bounce buffers for TO_DEVICE/BIDIRECTIONAL. */
export function dmaSyncForDevice(
  mapping: DmaMapping,
  offset?: bigint,
  size?: bigint,
  dir?: DmaDirection,
): void {
  const [off, len] = syncWindow(mapping, offset, size);
  syncRange(mapping, off, len, false, dir ?? mapping.direction);
}

/**
 * dma_map_phys (include/linux/dma-mapping.h): one physical range, no P2P classification (the caller
 * decided), DMA_ATTR_MMIO allowed: then no struct page is needed, no cache maintenance, and
 * bouncing is refused. The handle's `dma` holds the one DMA range.
 */
export function mapPhys(
  device: DmaDevice,
  phys: bigint,
  size: bigint,
  dir: DmaDirection,
  attrs: DmaAttrs = {},
): DmaMapping {
  checkDirection(dir);
  if (size <= 0n) fail('EINVAL', `${device.bdf}: dma_map_phys of ${size} bytes`);
  const { memoryMap } = device.machine.platform;
  if (attrs.mmio !== true && !memoryMap.hasStructPage(phys)) {
    const region = memoryMap.lookup(phys);
    if (region === undefined || region.kind === 'mmio') {
      fail('EINVAL', `${device.bdf}: ${formatHex(phys)} has no struct page; map it with DMA_ATTR_MMIO`);
    }
  }
  const piece =
    dmaDomainOf(device) === undefined
      ? dmaDirectMapPhys(device, phys, size, dir, attrs, 0n)
      : iommuDmaMapPhys(device, phys, size, dir, attrs, 0n);
  const source = new PhyrListBuilder().append(phys, size).build();
  const dma = new DmaRangeListBuilder().append(piece.dma, size).build();
  const segment: DmaSegment = {
    kind: piece.kind,
    phys: source,
    dma,
    bouncedBytes: piece.bounce === undefined ? 0n : size,
  };
  const mapping = register(device, 'phys', source, dir, attrs, [piece], [segment], undefined, true);
  // dma_map_phys returns one dma_addr_t: no list metadata to count.
  return mapping;
}

/** dma_mapping_error: false for a live mapping; tells dma-debug the driver checked. */
export function dmaMappingError(mapping: DmaMapping): boolean {
  mapping.device.machine.debug.markChecked(mapping.device.bdf, mapping.debugAddress);
  return false;
}

/** The live mapping of a device whose debug address is `dmaAddress`, if any. */
export function findMapping(device: DmaDevice, dmaAddress: bigint): DmaMapping | undefined {
  for (const m of device.machine.live.get(device.bdf) ?? []) if (m.debugAddress === dmaAddress) return m;
  return undefined;
}

/**
 * dma_unmap_phys as a driver calls it: by DMA address, size and direction. An address that is not
 * mapped is reported by dma-debug and otherwise ignored.
 */
export function unmapPhys(device: DmaDevice, dmaAddress: bigint, size: bigint, dir: DmaDirection): void {
  const mapping = findMapping(device, dmaAddress);
  if (mapping === undefined) {
    device.machine.debug.checkUnmap(device.bdf, dmaAddress, { type: 'phys', size, direction: dir });
    return;
  }
  dmaUnmap(mapping, { size, direction: dir, type: 'phys' });
}
