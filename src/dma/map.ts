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
import { COUNTER, fail, formatHex, type PhyrList } from '../core/index.ts';
import { busAddressOf } from '../platform/index.ts';
import {
  type ClassifiedRange,
  classifyRuns,
  iovaRunProblem,
  type RangeRun,
  rangesOfRun,
  splitForDevice,
} from './classify.ts';
import { type DmaDeviceInfo, dmaDomainOf } from './device.ts';
import { dmaDirectMapPhys } from './direct.ts';
import { bigintMin } from './dma-iommu.ts';
import { iommuDmaMapPhys } from './iommu-map-phys.ts';
import {
  type DmaIovaState,
  dmaIovaDestroy,
  dmaIovaLink,
  dmaIovaLinkList,
  dmaIovaSync,
  dmaIovaTryAlloc,
} from './iova-api.ts';
import {
  coversWholeIova,
  dmaIovaReleaseRuns,
  type LinkedRun,
  linkedRunsOf,
  planAlignedLayout,
  planPackedLayout,
} from './iova-layout.ts';
import { type MappedPiece, unmapPiece } from './mapped-piece.ts';
import { checkDirection, type DmaMapping, register, retireMapping, segmentsOf } from './mapping.ts';
import { traceMapList, traceSyncSingle, traceUnmap } from './trace-points.ts';
import type { DmaAttrs, DmaDirection, DmaMappingType, SegmentKind } from './types.ts';

/**
 * Maps a run of host (or through-host-bridge) ranges: one IOVA if possible, linked with one bulk
 * page-table call and recorded as one piece; else range by range.
 */
function mapRun(
  device: DmaDeviceInfo,
  list: PhyrList,
  run: RangeRun,
  dir: DmaDirection,
  attrs: DmaAttrs,
  pieces: MappedPiece[],
): string | undefined {
  const p2p = run.cls === 'through-host-bridge';
  const runAttrs: DmaAttrs = p2p ? { ...attrs, mmio: true } : attrs;
  const domain = dmaDomainOf(device);
  let reason: string | undefined;
  if (domain === undefined) {
    reason = device.iommu === undefined ? 'no IOMMU: dma-direct' : 'identity domain: dma-direct';
  } else {
    reason = iovaRunProblem(list, run.from, run.to, domain.iovad!.granule);
  }
  if (reason === undefined && domain !== undefined && attrs.layout === 'aligned') {
    if (mapRunAligned(device, rangesOfRun(list, run), dir, runAttrs, pieces)) return undefined;
  }
  const first = list.addressAt(run.from);
  if (reason === undefined) {
    const state = dmaIovaTryAlloc(device, first, run.length);
    if (state !== undefined) {
      try {
        dmaIovaLinkList(device, state, list, run.from, run.to, 0n, dir, runAttrs);
      } catch (error) {
        dmaIovaDestroy(device, state, state.linkedBytes, dir, { ...runAttrs, skipCpuSync: true });
        throw error;
      }
      dmaIovaSync(device, state, 0n, run.length);
      // The compact record: one piece for the whole IOVA, its ranges read from the caller's list.
      const kind: SegmentKind = p2p ? 'through-host-bridge' : 'iova';
      const mmio = runAttrs.mmio === true;
      const ranges = run.to - run.from;
      const base = { kind, sourceOffset: run.sourceOffset, phys: first, size: run.length, dma: state.addr };
      pieces.push(
        run.p2p === undefined
          ? { ...base, mmio, state, ranges }
          : { ...base, mmio, state, ranges, p2p: run.p2p },
      );
      return undefined;
    }
  }
  for (const r of splitForDevice(device, rangesOfRun(list, run))) {
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
  device: DmaDeviceInfo,
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

/**
 * Maps a PhyrList for `dir`. EINVAL for an empty list or ranges outside the memory map, EREMOTEIO for
 * unsupported P2P, ENOMEM when IOVA space or swiotlb runs out, EIO when a range is unreachable.
 * Nothing stays mapped after a failure.
 * `attrs.layout` picks how an IOVA run is laid out: 'packed' (default, back to back) or 'aligned'
 * (page-size congruent with gaps: fewer PTE writes, more DMA ranges; see iova-layout.ts).
 */
export function dmaMapPhyrList(
  device: DmaDeviceInfo,
  list: PhyrList,
  dir: DmaDirection,
  attrs: DmaAttrs = {},
): DmaMapping {
  checkDirection(dir);
  if (list.isEmpty) fail('EINVAL', `${device.bdf}: mapping an empty PhyrList`);
  const runs = classifyRuns(device, list);
  const pieces: MappedPiece[] = [];
  let fallbackReason: string | undefined;
  try {
    for (const run of runs) {
      if (run.cls === 'bus-address') {
        for (const r of splitForDevice(device, rangesOfRun(list, run), false)) {
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
        const reason = mapRun(device, list, run, dir, attrs, pieces);
        if (run.cls === 'host' && reason !== undefined) fallbackReason ??= reason;
      }
    }
  } catch (error) {
    undoPieces(device, pieces, dir, attrs);
    throw error;
  }
  const segments = segmentsOf(device, pieces, list);
  const type: DmaMappingType = pieces.some((p) => p.state !== undefined) ? 'iova' : 'phys';
  const mapping = register(device, type, list, dir, attrs, pieces, segments, fallbackReason);
  const metrics = device.machine.metrics;
  metrics.add(COUNTER.physrMetadataBytes, mapping.dma.metadataBytes);
  metrics.add(COUNTER.physrDmaRanges, mapping.dma.count);
  traceMapList(mapping);
  return mapping;
}

function undoPieces(
  device: DmaDeviceInfo,
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
  traceUnmap(mapping, args.size ?? mapping.source.totalLength, args.direction ?? mapping.direction);
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
  retireMapping(mapping);
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
  traceSyncSingle(mapping, off, len, dir ?? mapping.direction, true);
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
  traceSyncSingle(mapping, off, len, dir ?? mapping.direction, false);
  syncRange(mapping, off, len, false, dir ?? mapping.direction);
}
