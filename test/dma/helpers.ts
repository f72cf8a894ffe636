/** Shared test helpers: patterns in the byte store and reading what a device would see by DMA. */
import {
  type DmaRangeList,
  type DmaTraceRecord,
  type PhyrList,
  PhyrListBuilder,
} from '../../src/core/index.ts';
import type { DmaDevice, DmaMapping, Machine } from '../../src/dma/index.ts';
import { barContaining, folioBytes, folioPhys } from '../../src/platform/index.ts';

/** Writes a deterministic byte pattern (seeded by the address) into every range of a list. */
export function fillPattern(device: DmaDevice, list: PhyrList, salt = 0): void {
  const bytes = device.machine.platform.bytes;
  list.forEachRange((address, length) => {
    const data = new Uint8Array(Number(length));
    // (address + i) mod 251, stepped in Numbers: one BigInt per range, not per byte.
    let value = Number(address % 251n);
    for (let i = 0; i < data.length; i++) {
      data[i] = value ^ salt;
      value = value === 250 ? 0 : value + 1;
    }
    bytes.write(address, data);
  });
}

/** The bytes of a PhyrList in order, as the CPU reads them. */
export function cpuBytes(device: DmaDevice, list: PhyrList): Uint8Array {
  const out = new Uint8Array(Number(list.totalLength));
  let at = 0;
  list.forEachRange((address, length) => {
    out.set(device.machine.platform.bytes.read(address, Number(length)), at);
    at += Number(length);
  });
  return out;
}

/**
 * Where a device's access to `dma` lands: a peer BAR's bus address (switch routing) back to its CPU
 * address; else through the IOMMU (translate, page by page) or, without one, the address itself.
 */
export function dmaToPhys(device: DmaDevice, dma: bigint, access: 'read' | 'write' = 'read'): bigint {
  const topology = device.machine.platform.topology;
  const bar = barContaining(topology, dma + device.hostBridge.busOffset);
  if (bar !== undefined && device.machine.platform.memoryMap.lookup(dma)?.kind !== 'ram') {
    return dma + device.hostBridge.busOffset;
  }
  const domain = device.domain;
  // A DMA domain or a paging one (an IOMMUFD IOAS the device is attached to) translates.
  if (device.iommu !== undefined && (domain?.type === 'dma' || domain?.type === 'paging'))
    return device.iommu.translate(device.id, dma, access);
  return dma + device.dmaRangeOffset;
}

/** Reads every byte of a DmaRangeList as the device would (4 KiB steps through the IOMMU). */
export function deviceBytes(device: DmaDevice, dma: DmaRangeList): Uint8Array {
  const out = new Uint8Array(Number(dma.totalLength));
  const bytes = device.machine.platform.bytes;
  let at = 0;
  dma.forEachRange((address, length) => {
    let done = 0n;
    while (done < length) {
      const a = address + done;
      const toPage = 0x1000n - (a & 0xfffn);
      const take = toPage < length - done ? toPage : length - done;
      out.set(bytes.read(dmaToPhys(device, a), Number(take)), at);
      at += Number(take);
      done += take;
    }
  });
  return out;
}

/** A device write of `data` across a mapping's DMA ranges, in order. */
export function deviceWrite(device: DmaDevice, mapping: DmaMapping, data: Uint8Array): void {
  const bytes = device.machine.platform.bytes;
  let at = 0;
  mapping.dma.forEachRange((address, length) => {
    let done = 0n;
    while (done < length && at < data.length) {
      const a = address + done;
      const toPage = 0x1000n - (a & 0xfffn);
      const take = toPage < length - done ? toPage : length - done;
      bytes.write(dmaToPhys(device, a, 'write'), data.subarray(at, at + Number(take)));
      at += Number(take);
      done += take;
    }
  });
}

/** Byte equality without vitest's slow deep-equal on large typed arrays. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** A folio mix (4K..2M) from the allocator, in allocation order, as a PhyrList. */
export function folioList(dev: DmaDevice, orders: readonly number[]): PhyrList {
  const b = new PhyrListBuilder({ merge: true });
  for (const order of orders) {
    const folio = dev.machine.platform.folios.allocFolio(order, { node: 1 });
    b.append(folioPhys(folio), folioBytes(folio));
  }
  return b.build();
}

/** The trace records `run` emits on `machine` (its trace sink is put back to none afterwards). */
export function traceOf(machine: Machine, run: () => void): DmaTraceRecord[] {
  const records: DmaTraceRecord[] = [];
  machine.metrics.traceSink = (r) => records.push(r);
  try {
    run();
  } finally {
    machine.metrics.traceSink = undefined;
  }
  return records;
}
