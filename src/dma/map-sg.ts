/**
 * The legacy path: dma_map_sgtable / dma_unmap_sgtable over an SgTable, for comparison with physr.
 *
 * dma-iommu (drivers/iommu/dma-iommu.c iommu_dma_map_sg): the IOVA length is summed from the entries
 * with their in-granule offsets, each entry padded to granules and, where the segment boundary needs
 * it, the previous entry padded so the next starts on a boundary; ONE IOVA allocation; iommu_map_sg
 * maps physically contiguous entries with one iommu_map; __finalise_sg then merges entries into as
 * few DMA segments as max_segment_size and the boundary allow, writing dma_address/dma_length into
 * the first slots (setDma) and the count into nents (setMappedNents). P2P entries (pages of a BAR
 * published for P2PDMA: is_pci_p2pdma_page) are bus addresses left out of the IOVA, or mapped like
 * host memory through the host bridge, or EREMOTEIO. An untrusted device takes the per-entry path
 * (iommu_dma_map_sg_swiotlb) for every entry, peer memory too, with unaligned entries bounced.
 *
 * dma-direct (kernel/dma/direct.c dma_direct_map_sg): entry by entry through dma_direct_map_phys.
 */
import {
  alignUp,
  COUNTER,
  fail,
  formatHex,
  isPhysrError,
  SG_DMA_BUS_ADDRESS,
  SG_DMA_SWIOTLB,
  type SgSlot,
  type SgTable,
} from '../core/index.ts';
import { busAddressOf, calcP2pDecision, type P2pDecision } from '../platform/index.ts';
import { type DmaDeviceInfo, dmaDomainOf } from './device.ts';
import { dmaDirectMapPhys } from './direct.ts';
import { dmaInfoToProt, iommuDmaAllocIova } from './dma-iommu.ts';
import { iommuDmaMapPhys } from './iommu-map-phys.ts';
import type { MappedPiece } from './mapped-piece.ts';
import { checkDirection } from './mapping.ts';
import { traceMapSg, traceSyncSg, traceUnmapSg } from './trace-points.ts';
import type { DmaAttrs, DmaDirection } from './types.ts';

/** What unmap needs besides the table (the kernel hides this in the sg's dma fields and flags). */
interface SgMapState {
  readonly device: DmaDeviceInfo;
  readonly direction: DmaDirection;
  /** One IOVA for the whole list (dma-iommu merged path). */
  readonly iova?: { readonly start: bigint; readonly size: bigint };
  /** Mapped by iommu_dma_map_sg (one IOVA, possibly none when every entry is a bus address). */
  readonly merged: boolean;
  /** Per-entry pieces (dma-direct or the swiotlb per-entry path), indexed like the entries. */
  readonly pieces: readonly (MappedPiece | undefined)[];
  readonly mappedNents: number;
}

const states = new WeakMap<SgTable, SgMapState>();

type EntryClass = 'host' | 'bus-address' | 'through-host-bridge';

function classify(
  device: DmaDeviceInfo,
  phys: bigint,
  length: number,
  index: number,
): { cls: EntryClass; p2p?: P2pDecision } {
  const { memoryMap, topology } = device.machine.platform;
  const region = memoryMap.lookup(phys);
  if (region === undefined || region.last < phys + BigInt(length) - 1n) {
    fail('EINVAL', `sg entry ${index} at ${formatHex(phys)} is not inside one memory region`);
  }
  if (region.kind !== 'mmio') return { cls: 'host' };
  if (!region.p2pdmaPages || region.bdf === undefined) {
    fail(
      'EINVAL',
      `sg entry ${index} at ${formatHex(phys)} is BAR memory without struct pages (not published for P2PDMA)`,
    );
  }
  const decision = calcP2pDecision(topology, region.bdf, device.bdf);
  if (decision.mapType === 'not-supported') {
    fail('EREMOTEIO', `P2P from ${device.bdf} to ${region.bdf} (sg entry ${index}): ${decision.reason}`);
  }
  return { cls: decision.mapType, p2p: decision };
}

/**
 * dma_map_sgtable: maps `sgt` for `dir`, writes each DMA segment with setDma and sgt.nents with
 * setMappedNents, and returns nents. Errors as the kernel's: EINVAL, ENOMEM (IOVA), EIO (direct
 * overflow), EREMOTEIO (P2P). Nothing stays mapped after a failure.
 */
export function dmaMapSg(
  device: DmaDeviceInfo,
  sgt: SgTable,
  dir: DmaDirection,
  attrs: DmaAttrs = {},
): number {
  // __dma_map_sg_attrs (kernel/dma/mapping.c) refuses a direction valid_dma_direction() rejects
  // before anything else (BUG_ON there; an error here).
  checkDirection(dir);
  if (states.has(sgt)) fail('EINVAL', `sg table is already mapped for ${states.get(sgt)!.device.bdf}`);
  const n = sgt.origNents;
  if (n === 0) fail('EINVAL', 'dma_map_sg of an empty table');
  const slots = sgt.entrySlots(n);
  const domain = dmaDomainOf(device);
  let state: SgMapState;
  if (domain !== undefined && device.untrusted) {
    // dev_use_sg_swiotlb comes before any P2P classification in iommu_dma_map_sg.
    state = mapSgSwiotlb(device, sgt, slots, dir, attrs);
  } else {
    const classes = Array.from(slots, (slot, i) => classify(device, sgt.physAt(slot), sgt.lengthAt(slot), i));
    state =
      domain === undefined
        ? mapPerEntry(device, sgt, slots, classes, dir, attrs)
        : mapIommuMerged(device, sgt, slots, classes, dir, attrs);
  }
  states.set(sgt, state);
  sgt.setMappedNents(state.mappedNents);
  const metrics = device.machine.metrics;
  metrics.add(COUNTER.dmaMaps);
  metrics.add(COUNTER.sgMetadataBytes, sgt.metadataBytes);
  metrics.add(COUNTER.sgEntries, n);
  metrics.add(COUNTER.sgMappedNents, state.mappedNents);
  // debug_dma_map_sg: one entry per DMA segment, each checked against the segment rules.
  for (let i = 0; i < state.mappedNents; i++) {
    const slot = slots[i]!;
    const dma = sgt.dmaAddressAt(slot);
    const len = BigInt(sgt.dmaLengthAt(slot));
    device.machine.debug.checkSgSegment(
      device.bdf,
      dma,
      len,
      device.maxSegmentSize,
      device.segmentBoundaryMask,
    );
    device.machine.debug.add({
      device: device.bdf,
      type: 'sg',
      dmaAddress: dma,
      size: len,
      direction: dir,
      paddr: sgt.physAt(slot),
      sgCallEnts: n,
      sgMappedEnts: state.mappedNents,
      skipCpuSync: attrs.skipCpuSync === true,
    });
  }
  traceMapSg(device, sgt, dir);
  return state.mappedNents;
}

/**
 * iommu_dma_map_sg_swiotlb (dma-iommu.c), taken for an untrusted device before any P2P
 * classification: EVERY entry, peer memory included, goes through iommu_dma_map_phys (its own IOVA,
 * an unaligned entry bounced), and any failure unmaps what was done and is -EIO.
 */
function mapSgSwiotlb(
  device: DmaDeviceInfo,
  sgt: SgTable,
  slots: Int32Array,
  dir: DmaDirection,
  attrs: DmaAttrs,
): SgMapState {
  return mapEntries(device, slots, dir, 'iommu_dma_map_sg_swiotlb', (slot) => {
    const length = sgt.lengthAt(slot);
    const piece = iommuDmaMapPhys(device, sgt.physAt(slot), BigInt(length), dir, attrs, 0n);
    sgt.setDma(slot, piece.dma, length, piece.bounce === undefined ? 0 : SG_DMA_SWIOTLB);
    return piece;
  });
}

/** dma_direct_map_sg (kernel/dma/direct.c): entry by entry, by each entry's P2P map type. */
function mapPerEntry(
  device: DmaDeviceInfo,
  sgt: SgTable,
  slots: Int32Array,
  classes: readonly { cls: EntryClass; p2p?: P2pDecision }[],
  dir: DmaDirection,
  attrs: DmaAttrs,
): SgMapState {
  return mapEntries(device, slots, dir, 'dma_direct_map_sg', (slot, i) => {
    const phys = sgt.physAt(slot);
    const length = sgt.lengthAt(slot);
    if (classes[i]!.cls === 'bus-address') {
      sgt.setDma(slot, busAddressOf(device.machine.platform.topology, phys), length, SG_DMA_BUS_ADDRESS);
      return undefined;
    }
    // A host-bridge P2P entry falls through to dma_direct_map_phys with the caller's attrs, as
    // host memory: no DMA_ATTR_MMIO, so phys_to_dma and swiotlb apply to it. Only the phys-based
    // callers (dma_map_phys users, blk-mq-dma) pass MMIO.
    const piece = dmaDirectMapPhys(device, phys, BigInt(length), dir, attrs, 0n);
    sgt.setDma(slot, piece.dma, length, piece.bounce === undefined ? 0 : SG_DMA_SWIOTLB);
    return piece;
  });
}

/**
 * Maps a list entry by entry; a failed entry unmaps the ones before it and the call is -EIO, as
 * both dma_direct_map_sg and iommu_dma_map_sg_swiotlb return (__dma_map_sg_attrs passes it on).
 */
function mapEntries(
  device: DmaDeviceInfo,
  slots: Int32Array,
  dir: DmaDirection,
  caller: string,
  mapEntry: (slot: SgSlot, index: number) => MappedPiece | undefined,
): SgMapState {
  const pieces: (MappedPiece | undefined)[] = [];
  slots.forEach((slot, i) => {
    try {
      pieces.push(mapEntry(slot, i));
    } catch (error) {
      undoPieces(device, pieces, dir);
      const why = isPhysrError(error) ? error.reason : String(error);
      fail('EIO', `${caller}: sg entry ${i} of ${device.bdf} failed to map (${why})`);
    }
  });
  return { device, direction: dir, merged: false, pieces, mappedNents: slots.length };
}

function undoPieces(
  device: DmaDeviceInfo,
  pieces: readonly (MappedPiece | undefined)[],
  dir: DmaDirection,
): void {
  for (const p of pieces) {
    if (p === undefined) continue;
    if (p.iova !== undefined) dmaDomainOf(device)!.dmaUnmap(p.iova.start, p.iova.size);
    if (p.bounce !== undefined) device.machine.swiotlb!.unmap(p.bounce, dir, true);
  }
}

/** iommu_dma_map_sg: one IOVA, iommu_map_sg, __finalise_sg. */
function mapIommuMerged(
  device: DmaDeviceInfo,
  sgt: SgTable,
  slots: Int32Array,
  classes: readonly { cls: EntryClass; p2p?: P2pDecision }[],
  dir: DmaDirection,
  attrs: DmaAttrs,
): SgMapState {
  const domain = dmaDomainOf(device)!;
  const granule = domain.iovad!.granule;
  const gmask = granule - 1n;
  const boundary = device.segmentBoundaryMask;
  const n = slots.length;
  cacheSyncEntries(device, sgt, slots, attrs, 'TO_DEVICE');
  // The kernel stashes these in the entries' dma fields while it works; here they are columns.
  const iovaOff = new BigUint64Array(n);
  const iovaLen = new BigUint64Array(n); // padded, granule-aligned length of each entry
  const bus = new Uint8Array(n);
  const busDma = new BigUint64Array(n);
  const busLen = new BigUint64Array(n);
  let total = 0n;
  let prev = -1;
  for (let i = 0; i < n; i++) {
    const slot = slots[i]!;
    const { cls } = classes[i]!;
    if (cls === 'bus-address') {
      bus[i] = 1;
      busDma[i] = busAddressOf(device.machine.platform.topology, sgt.physAt(slot));
      // iommu_dma_map_sg sets sg_dma_len(s) = sg->length: the length of the list's FIRST entry as it
      // stands now (a host entry's length has already become its granule-aligned, padded IOVA
      // length), not this entry's own; __finalise_sg copies it into the output segment.
      busLen[i] = i === 0 || bus[0] === 1 ? BigInt(sgt.lengthAt(slots[0]!)) : iovaLen[0]!;
      continue;
    }
    const off = BigInt(sgt.offsetAt(slot)) & gmask;
    const len = alignUp(BigInt(sgt.lengthAt(slot)) + off, granule);
    // Pad the previous entry so this one starts on a segment boundary when it would cross one.
    const padLen = (boundary - total + 1n) & boundary;
    if (padLen !== 0n && padLen < len - 1n && prev >= 0) {
      iovaLen[prev] = iovaLen[prev]! + padLen;
      total += padLen;
    }
    iovaOff[i] = off;
    iovaLen[i] = len;
    total += len;
    prev = i;
  }
  let iova = 0n;
  if (total > 0n) {
    // Through-host-bridge entries are mapped with regular IOVAs and the same prot (iommu_dma_map_sg).
    iova = iommuDmaAllocIova(device, domain, total);
    let mapped = 0n;
    try {
      // iommu_map_sg: coalesce physically contiguous entries into one iommu_map call.
      let start = 0n;
      let len = 0n;
      const prot = dmaInfoToProt(dir, device.coherent, attrs);
      const flush = (): void => {
        if (len === 0n) return;
        domain.map(iova + mapped, start, len, prot);
        mapped += len;
        len = 0n;
      };
      for (let i = 0; i < n; i++) {
        const slot = slots[i]!;
        const phys = sgt.physAt(slot) - iovaOff[i]!;
        // The contiguity test comes before a bus-address entry is skipped, so one ends the run.
        if (len !== 0n && phys !== start + len) flush();
        if (bus[i] === 1) continue;
        if (len === 0n) start = phys;
        len += iovaLen[i]!;
      }
      flush();
    } catch (error) {
      if (mapped > 0n) domain.unmap(iova, mapped);
      domain.freeIova(iova, total);
      throw error;
    }
  }
  const count = finaliseSg(device, sgt, slots, iovaOff, iovaLen, bus, busDma, busLen, iova);
  return {
    device,
    direction: dir,
    merged: true,
    ...(total > 0n ? { iova: { start: iova, size: total } } : {}),
    pieces: [],
    mappedNents: count,
  };
}

/**
 * iommu_dma_sync_sg_for_device / _for_cpu on the merged path: cache maintenance over every entry's
 * own bytes (sg_phys, length), not the granule-padded IOVA; for the CPU only when the device wrote.
 */
function cacheSyncEntries(
  device: DmaDeviceInfo,
  sgt: SgTable,
  slots: Int32Array,
  attrs: DmaAttrs,
  dir: DmaDirection,
  toCpu = false,
): void {
  if (device.coherent || attrs.skipCpuSync === true || (toCpu && dir === 'TO_DEVICE')) return;
  let bytes = 0;
  for (const slot of slots) bytes += sgt.lengthAt(slot);
  device.machine.metrics.add('dma.cache_sync_bytes', bytes);
}

/**
 * __finalise_sg: walk the entries and write the DMA segments into the first slots. An entry joins
 * the current segment when it starts on a granule (no offset), the running IOVA is not at a segment
 * boundary, and the result stays within max_segment_size; an entry that did not fill its padded
 * length ends the segment. Bus-address entries are segments of their own.
 */
function finaliseSg(
  device: DmaDeviceInfo,
  sgt: SgTable,
  slots: Int32Array,
  iovaOff: BigUint64Array,
  iovaLen: BigUint64Array,
  bus: Uint8Array,
  busDma: BigUint64Array,
  busLen: BigUint64Array,
  iova: bigint,
): number {
  const segMask = device.segmentBoundaryMask;
  const maxLen = device.maxSegmentSize;
  let dmaAddr = iova;
  let cur = -1;
  let curLen = 0n;
  let count = 0;
  const n = slots.length;
  // Clear the DMA side first: slots past the result must not keep stale values.
  for (let i = 0; i < n; i++) sgt.setDma(slots[i]!, 0n, 0, 0);
  const curAddr: bigint[] = [];
  for (let i = 0; i < n; i++) {
    const length = BigInt(sgt.lengthAt(slots[i]!));
    if (bus[i] === 1) {
      cur++;
      sgt.setDma(slots[cur]!, busDma[i]!, Number(busLen[i]!), SG_DMA_BUS_ADDRESS);
      curAddr[cur] = busDma[i]!;
      count++;
      curLen = 0n;
      continue;
    }
    const off = iovaOff[i]!;
    if (curLen !== 0n && off === 0n && (dmaAddr & segMask) !== 0n && maxLen - curLen >= length) {
      curLen += length;
    } else {
      cur++;
      curLen = length;
      count++;
      curAddr[cur] = dmaAddr + off;
    }
    sgt.setDma(slots[cur]!, curAddr[cur]!, Number(curLen), 0);
    dmaAddr += iovaLen[i]!;
    if (length + off < iovaLen[i]!) curLen = 0n;
  }
  return count;
}

/**
 * dma_unmap_sgtable. `nents` is what the driver passes (default orig_nents; dma-debug reports a
 * different count). Bounce buffers are copied back for FROM_DEVICE/BIDIRECTIONAL.
 */
export function dmaUnmapSg(
  device: DmaDeviceInfo,
  sgt: SgTable,
  dir: DmaDirection,
  attrs: DmaAttrs = {},
  nents: number = sgt.origNents,
): void {
  const state = states.get(sgt);
  const debug = device.machine.debug;
  traceUnmapSg(device, sgt, dir);
  if (state === undefined || state.device !== device) {
    const slot = sgt.sgl;
    const dma = slot < 0 ? 0n : sgt.dmaAddressAt(slot);
    debug.checkUnmap(device.bdf, dma, {
      type: 'sg',
      size: slot < 0 ? 0n : BigInt(sgt.dmaLengthAt(slot)),
      direction: dir,
      sgNents: nents,
    });
    return;
  }
  const slots = sgt.entrySlots(state.mappedNents);
  for (const slot of slots) {
    debug.checkUnmap(device.bdf, sgt.dmaAddressAt(slot), {
      type: 'sg',
      size: BigInt(sgt.dmaLengthAt(slot)),
      direction: dir,
      sgNents: nents,
    });
  }
  const domain = dmaDomainOf(device);
  if (state.merged) {
    cacheSyncEntries(device, sgt, sgt.entrySlots(sgt.origNents), attrs, state.direction, true);
  }
  if (state.iova !== undefined) domain!.dmaUnmap(state.iova.start, state.iova.size);
  for (const p of state.pieces) {
    if (p === undefined) continue;
    if (!device.coherent && attrs.skipCpuSync !== true && !p.mmio && state.direction !== 'TO_DEVICE') {
      device.machine.metrics.add('dma.cache_sync_bytes', Number(p.size));
    }
    if (p.iova !== undefined) domain!.dmaUnmap(p.iova.start, p.iova.size);
    if (p.bounce !== undefined)
      device.machine.swiotlb!.unmap(p.bounce, state.direction, attrs.skipCpuSync === true);
  }
  states.delete(sgt);
  device.machine.metrics.add(COUNTER.dmaUnmaps);
}

/** dma_sync_sgtable_for_cpu / _for_device: bounce copies for per-entry bounced entries. */
export function dmaSyncSg(device: DmaDeviceInfo, sgt: SgTable, dir: DmaDirection, toCpu: boolean): void {
  traceSyncSg(device, sgt, dir, toCpu);
  const state = states.get(sgt);
  const slots = sgt.entrySlots(state?.mappedNents ?? sgt.nents);
  for (const slot of slots) {
    device.machine.debug.checkSync(
      device.bdf,
      sgt.dmaAddressAt(slot),
      BigInt(sgt.dmaLengthAt(slot)),
      dir,
      toCpu,
      sgt.origNents,
    );
  }
  if (state === undefined) return;
  for (const p of state.pieces) {
    if (p?.bounce !== undefined) device.machine.swiotlb!.sync(p.bounce, 0n, p.size, state.direction, toCpu);
  }
}

/** Whether `sgt` is currently mapped (and for which device). */
export function sgMappedBy(sgt: SgTable): DmaDeviceInfo | undefined {
  return states.get(sgt)?.device;
}
