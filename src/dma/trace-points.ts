/**
 * The DMA API's trace points (include/trace/events/dma.h): records for `metrics.traceSink`, built only
 * when a sink is set. A physr list map has no kernel event of its own; it is reported the way the
 * kernel reports a list, as dma_map_sg / dma_unmap_sg of its ranges.
 */
import type { SgTable } from '../core/index.ts';
import type { DmaDeviceInfo } from './device.ts';
import type { DmaMapping } from './mapping.ts';
import type { DmaDirection } from './types.ts';

/** Mappings made by dma_map_phys (unmapped as dma_unmap_phys); the rest are lists. */
const singles = new WeakSet<DmaMapping>();

export function traceMapPhys(mapping: DmaMapping): void {
  const sink = mapping.device.machine.metrics.traceSink;
  singles.add(mapping);
  if (sink === undefined) return;
  sink({
    kind: 'map_phys',
    device: mapping.device.bdf,
    dir: mapping.direction,
    dma: mapping.debugAddress,
    size: mapping.source.totalLength,
    phys: mapping.source.addressAt(0),
    mmio: mapping.attrs.mmio === true,
  });
}

export function traceMapList(mapping: DmaMapping): void {
  const sink = mapping.device.machine.metrics.traceSink;
  if (sink === undefined) return;
  const { source, dma } = mapping;
  sink({
    kind: 'map_sg',
    device: mapping.device.bdf,
    dir: mapping.direction,
    phys: Array.from({ length: source.count }, (_, i) => source.addressAt(i)),
    dma: Array.from({ length: dma.count }, (_, i) => dma.addressAt(i)),
    lengths: Array.from({ length: dma.count }, (_, i) => dma.lengthAt(i)),
  });
}

/** dma_unmap_phys or (a list) dma_unmap_sg, with what the driver passed. */
export function traceUnmap(mapping: DmaMapping, size: bigint, dir: DmaDirection): void {
  const sink = mapping.device.machine.metrics.traceSink;
  if (sink === undefined) return;
  const device = mapping.device.bdf;
  if (singles.has(mapping)) sink({ kind: 'unmap_phys', device, dir, dma: mapping.debugAddress, size });
  else {
    const s = mapping.source;
    sink({ kind: 'unmap_sg', device, dir, phys: Array.from({ length: s.count }, (_, i) => s.addressAt(i)) });
  }
}

/** dma_unmap_phys of an address with no mapping (what dma-debug then reports). */
export function traceUnmapAddress(device: DmaDeviceInfo, dma: bigint, size: bigint, dir: DmaDirection): void {
  device.machine.metrics.traceSink?.({ kind: 'unmap_phys', device: device.bdf, dir, dma, size });
}

function sgColumns(sgt: SgTable, count: number): { phys: bigint[]; dma: bigint[]; lengths: bigint[] } {
  const slots = sgt.entrySlots(count);
  const phys: bigint[] = [];
  const dma: bigint[] = [];
  const lengths: bigint[] = [];
  for (const slot of slots) {
    phys.push(sgt.physAt(slot));
    dma.push(sgt.dmaAddressAt(slot));
    lengths.push(BigInt(sgt.dmaLengthAt(slot)));
  }
  return { phys, dma, lengths };
}

/** dma_map_sg after the mapping: every CPU entry's phys, every DMA segment. */
export function traceMapSg(device: DmaDeviceInfo, sgt: SgTable, dir: DmaDirection): void {
  const sink = device.machine.metrics.traceSink;
  if (sink === undefined) return;
  const phys = sgColumns(sgt, sgt.origNents).phys;
  const { dma, lengths } = sgColumns(sgt, sgt.nents);
  sink({ kind: 'map_sg', device: device.bdf, dir, phys, dma, lengths });
}

export function traceUnmapSg(device: DmaDeviceInfo, sgt: SgTable, dir: DmaDirection): void {
  const sink = device.machine.metrics.traceSink;
  if (sink === undefined || sgt.origNents === 0) return;
  sink({ kind: 'unmap_sg', device: device.bdf, dir, phys: sgColumns(sgt, sgt.origNents).phys });
}

export function traceSyncSg(device: DmaDeviceInfo, sgt: SgTable, dir: DmaDirection, toCpu: boolean): void {
  const sink = device.machine.metrics.traceSink;
  if (sink === undefined) return;
  const { dma, lengths } = sgColumns(sgt, sgt.nents);
  sink({ kind: 'sync_sg', device: device.bdf, dir, toCpu, dma, lengths });
}

export function traceSyncSingle(
  mapping: DmaMapping,
  offset: bigint,
  size: bigint,
  dir: DmaDirection,
  toCpu: boolean,
) {
  mapping.device.machine.metrics.traceSink?.({
    kind: 'sync_single',
    device: mapping.device.bdf,
    dir,
    toCpu,
    dma: mapping.debugAddress + offset,
    size,
  });
}
