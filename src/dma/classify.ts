/**
 * What each range of a PhyrList is, from the memory map: host memory, or P2P memory whose map type
 * drivers/pci/p2pdma.c decides (pci_p2pdma_map_type); plus dma_iova_link's layout rules and the
 * device's segment rules, which decide how a run of ranges can be mapped.
 */
import { fail, formatHex, formatSize, type PhyrList } from '../core/index.ts';
import { calcP2pDecision, type MemoryRegion, type P2pDecision } from '../platform/index.ts';
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

/** Finds what each range is, from the memory map; EINVAL for holes and ranges across regions. */
export function classifyRanges(device: DmaDeviceInfo, list: PhyrList): ClassifiedRange[] {
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
