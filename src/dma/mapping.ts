/**
 * The mapping record a physr map call returns (DmaMapping): what the device uses, the pieces unmap
 * needs, the segments (runs of one kind) reports show, and the registration with dma-debug and the
 * device's live set.
 */
import {
  COUNTER,
  type DmaRangeList,
  DmaRangeListBuilder,
  fail,
  type PhyrList,
  PhyrListBuilder,
  U64_MAX,
} from '../core/index.ts';
import type { P2pDecision } from '../platform/index.ts';
import type { DmaDeviceInfo } from './device.ts';
import type { DmaIovaState } from './iova-api.ts';
import type { MappedPiece } from './mapped-piece.ts';
import type { DmaAttrs, DmaDirection, DmaMappingType, DmaSegment, MapPath } from './types.ts';

/** The handle a map call returns: what the device uses and what unmap needs. */
export interface DmaMapping {
  readonly id: number;
  readonly device: DmaDeviceInfo;
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

/** Each device's live mappings (what unmap-by-address and leak checks look up). */
const liveByDevice = new WeakMap<DmaDeviceInfo, Set<DmaMapping>>();

/** The mappings of `device` not yet unmapped. */
export function liveMappings(device: DmaDeviceInfo): ReadonlySet<DmaMapping> {
  return liveByDevice.get(device) ?? new Set();
}

/** Marks a mapping unmapped and drops it from its device's live set. */
export function retireMapping(mapping: DmaMapping): void {
  mapping.unmapped = true;
  liveByDevice.get(mapping.device)?.delete(mapping);
}

/** Groups pieces into segments of one kind, building each segment's lists. */
export function segmentsOf(
  device: DmaDeviceInfo,
  pieces: readonly MappedPiece[],
  source: PhyrList,
): DmaSegment[] {
  const out: DmaSegment[] = [];
  let i = 0;
  while (i < pieces.length) {
    const kind = pieces[i]!.kind;
    let end = i;
    while (end < pieces.length && pieces[end]!.kind === kind) end++;
    const only = pieces[i]!;
    if (end === i + 1 && only.ranges !== undefined) {
      out.push(linkedRunSegment(device, only, source));
      i = end;
      continue;
    }
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

/**
 * The segment of a run linked as one piece: its source ranges are the caller's list (or the slice
 * the run covers), its DMA range the one IOVA cut by the device's rules.
 */
function linkedRunSegment(device: DmaDeviceInfo, piece: MappedPiece, source: PhyrList): DmaSegment {
  const phys =
    piece.sourceOffset === 0n && piece.size === source.totalLength
      ? source
      : source.slice(piece.sourceOffset, piece.size);
  const dma = new DmaRangeListBuilder({ capacity: 1 }).append(piece.dma, piece.size).build().split({
    maxSegmentSize: device.maxSegmentSize,
    segmentBoundaryMask: device.segmentBoundaryMask,
  });
  let bounced = 0n;
  for (const b of piece.state!.bounces) bounced += b.bounce.size;
  const segment = { kind: piece.kind, phys, dma, bouncedBytes: bounced };
  return piece.p2p === undefined ? segment : { ...segment, p2p: piece.p2p };
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

export function register(
  device: DmaDeviceInfo,
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
  let live = liveByDevice.get(device);
  if (live === undefined) {
    live = new Set();
    liveByDevice.set(device, live);
  }
  live.add(mapping);
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

export function checkDirection(dir: DmaDirection): void {
  if (dir !== 'TO_DEVICE' && dir !== 'FROM_DEVICE' && dir !== 'BIDIRECTIONAL') {
    fail('EINVAL', `DMA direction ${String(dir)} is not TO_DEVICE, FROM_DEVICE or BIDIRECTIONAL`);
  }
}

/** dma_mapping_error: false for a live mapping; tells dma-debug the driver checked. */
export function dmaMappingError(mapping: DmaMapping): boolean {
  mapping.device.machine.debug.markChecked(mapping.device.bdf, mapping.debugAddress);
  return false;
}

/** The live mapping of a device whose debug address is `dmaAddress`, if any. */
export function findMapping(device: DmaDeviceInfo, dmaAddress: bigint): DmaMapping | undefined {
  for (const m of liveMappings(device)) if (m.debugAddress === dmaAddress) return m;
  return undefined;
}
