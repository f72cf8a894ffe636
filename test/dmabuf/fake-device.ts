/** A dma-buf importer device for tests that need no DMA layer (dmabuf, vfio). */
import { DmaRangeList, type PhyrList } from '../../src/core/index.ts';
import type { DmaBufDevice, DmaBufDeviceMapping } from '../../src/dmabuf/index.ts';

/** A device whose DMA address is the physical address; it records what is mapped. */
export class FakeDevice implements DmaBufDevice {
  readonly live = new Set<DmaBufDeviceMapping>();
  readonly name: string;
  readonly bdf: string | undefined;
  constructor(name: string, bdf: string | undefined) {
    this.name = name;
    this.bdf = bdf;
  }
  mapForDmaBuf(list: PhyrList, _dir: string, options: { mmio: boolean }): DmaBufDeviceMapping {
    const m = { ranges: DmaRangeList.fromRanges(list.toArray()), path: options.mmio ? 'mmio' : 'ram' };
    this.live.add(m);
    return m;
  }
  unmapForDmaBuf(mapping: DmaBufDeviceMapping): void {
    if (!this.live.delete(mapping)) throw new Error('unmap of an unknown mapping');
  }
}
