/**
 * A DmaDevice of the DMA layer as a dma-buf importer's device: the exporter's PhyrList is mapped with
 * the physr map (the IOVA API, the per-range fallback, or P2P bus addresses per range), with
 * DMA_ATTR_MMIO when the buffer is BAR memory, and unmapped through the same handle.
 */
import type { PhyrList } from '../core/index.ts';
import type { DmaDevice, DmaDirection, DmaMapping } from '../dma/index.ts';
import type { DmaBufDevice, DmaBufDeviceMapping } from './dma-buf.ts';

export function dmaDeviceImporter(device: DmaDevice, name = device.bdf): DmaBufDevice {
  const handles = new WeakMap<DmaBufDeviceMapping, DmaMapping>();
  return {
    name,
    bdf: device.bdf,
    mapForDmaBuf(list: PhyrList, dir: DmaDirection, options: { mmio: boolean }): DmaBufDeviceMapping {
      const mapping = device.map(list, dir, options.mmio ? { mmio: true } : {});
      const out: DmaBufDeviceMapping = { ranges: mapping.dma, path: mapping.path };
      handles.set(out, mapping);
      return out;
    },
    unmapForDmaBuf(mapping: DmaBufDeviceMapping): void {
      const handle = handles.get(mapping);
      if (handle !== undefined) device.unmap(handle);
      handles.delete(mapping);
    },
  };
}
