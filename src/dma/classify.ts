/**
 * What each range of a PhyrList is, from the memory map: host memory, or P2P memory whose map type
 * drivers/pci/p2pdma.c decides (pci_p2pdma_map_type); plus dma_iova_link's layout rules and the
 * device's segment rules, which decide how a run of ranges can be mapped.
 */
import { fail, formatHex, formatSize, type PhyrList } from '../core/index.ts';
import { calcP2pDecision, type MemoryMap, type MemoryRegion, type P2pDecision } from '../platform/index.ts';
import type { DmaDeviceInfo } from './device.ts';
import { dmaMaxMappingSize } from './direct.ts';
import { bigintMin } from './dma-iommu.ts';

export type RangeClass = 'host' | 'bus-address' | 'through-host-bridge';

export interface ClassifiedRange {
  readonly cls: RangeClass;
  readonly address: bigint;
  readonly length: bigint;
  readonly sourceOffset: bigint;
  readonly p2p?: P2pDecision;
}

/**
 * A run of consecutive ranges of one class (ranges `from..to-1` of the list), with the byte offset
 * of its first range in the list and the P2P decision of its provider.
 */
export interface RangeRun {
  readonly cls: RangeClass;
  readonly from: number;
  readonly to: number;
  readonly sourceOffset: bigint;
  /** Bytes of the run. */
  readonly length: bigint;
  readonly p2p?: P2pDecision;
}

/**
 * Splits a list into runs of one class, from the memory map, with no object per range; EINVAL for
 * holes and ranges across regions (but RAM back to back), EREMOTEIO for P2P the topology does not support.
 */
export function classifyRuns(device: DmaDeviceInfo, list: PhyrList): RangeRun[] {
  const { memoryMap, topology } = device.machine.platform;
  const decisions = new Map<string, P2pDecision>();
  const out: RangeRun[] = [];
  const n = list.count;
  const cur = list.cursor();
  let offset = 0n;
  let runStart = 0;
  let runOffset = 0n;
  let runCls: RangeClass = 'host';
  let runP2p: P2pDecision | undefined;
  // Consecutive ranges mostly sit in the region of the one before: test its bounds before a lookup.
  let current: MemoryRegion | undefined;
  for (let i = 0; i < n; i++, cur.next()) {
    const address = cur.address;
    const length = cur.length;
    const last = address + length - 1n;
    let region =
      current !== undefined && address >= current.start && last <= current.last ? current : undefined;
    if (region === undefined) {
      region = memoryMap.containing(address, last) ?? ramAcross(memoryMap, address, last);
      if (region === undefined) {
        const at = memoryMap.lookup(address);
        fail(
          'EINVAL',
          at === undefined
            ? `range ${i} at ${formatHex(address)} is in no memory region`
            : `range ${i} ${formatHex(address)}+${formatSize(length)} runs past the end of ${at.name}`,
        );
      }
      current = region;
    }
    let cls: RangeClass = 'host';
    let decision: P2pDecision | undefined;
    if (region.kind === 'mmio') {
      const provider = region.bdf;
      if (provider === undefined)
        fail('EINVAL', `range ${i} at ${formatHex(address)} is MMIO of no known PCI function`);
      decision = decisions.get(provider);
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
      cls = decision.mapType;
    }
    if (i > 0 && cls !== runCls) {
      out.push(runOf(runCls, runStart, i, runOffset, offset - runOffset, runP2p));
      runStart = i;
      runOffset = offset;
      runP2p = undefined;
    }
    runCls = cls;
    runP2p ??= decision;
    offset += length;
  }
  if (n > 0) out.push(runOf(runCls, runStart, n, runOffset, offset - runOffset, runP2p));
  return out;
}

/**
 * The last of the RAM regions that together cover [address, last] with no gap, if they do: host
 * memory that is physically contiguous across regions (two nodes' RAM back to back, as pin_user_pages
 * coalesces it) is one range to the DMA API, which knows no region boundaries.
 */
function ramAcross(map: MemoryMap, address: bigint, last: bigint): MemoryRegion | undefined {
  let region = map.lookup(address);
  while (region?.kind === 'ram') {
    if (region.last >= last) return region;
    region = map.lookup(region.last + 1n);
  }
  return undefined;
}

function runOf(
  cls: RangeClass,
  from: number,
  to: number,
  sourceOffset: bigint,
  length: bigint,
  p2p: P2pDecision | undefined,
): RangeRun {
  return p2p === undefined
    ? { cls, from, to, sourceOffset, length }
    : { cls, from, to, sourceOffset, length, p2p };
}

/** The ranges of a run as objects (the paths that need one per range: per-range, aligned, P2P). */
export function rangesOfRun(list: PhyrList, run: RangeRun): ClassifiedRange[] {
  const cur = list.cursor(run.from);
  const out: ClassifiedRange[] = [];
  let offset = run.sourceOffset;
  for (let i = run.from; i < run.to; i++, cur.next()) {
    const address = cur.address;
    const length = cur.length;
    out.push(
      run.p2p === undefined
        ? { cls: run.cls, address, length, sourceOffset: offset }
        : { cls: run.cls, address, length, sourceOffset: offset, p2p: run.p2p },
    );
    offset += length;
  }
  return out;
}

/** Finds what each range is, from the memory map; EINVAL for holes and ranges across regions. */
export function classifyRanges(device: DmaDeviceInfo, list: PhyrList): ClassifiedRange[] {
  return classifyRuns(device, list).flatMap((run) => rangesOfRun(list, run));
}

/** Why dma_iova_link cannot take ranges `from..to-1` of a list, or undefined when it can. */
export function iovaRunProblem(
  list: PhyrList,
  from: number,
  to: number,
  granule: bigint,
): string | undefined {
  const cur = list.cursor(from);
  const mask = granule - 1n;
  for (let i = from; i < to; i++, cur.next()) {
    const address = cur.address;
    if (i > from && (address & mask) !== 0n) {
      return `range at ${formatHex(address)} (not the first) does not start on a ${formatSize(granule)} granule`;
    }
    if (i < to - 1 && ((address + cur.length) & mask) !== 0n) {
      return `range at ${formatHex(address)} (not the last) does not end on a ${formatSize(granule)} granule`;
    }
  }
  return undefined;
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
export function splitForDevice(
  device: DmaDeviceInfo,
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
