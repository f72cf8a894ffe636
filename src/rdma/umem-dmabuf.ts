/**
 * umem over a dma-buf (drivers/infiniband/core/umem_dmabuf.c): the RDMA device attaches as a
 * dynamic importer; the buffer's pages are mapped on demand (ib_umem_dmabuf_map_pages) and the
 * mapping dropped when the exporter moves or revokes the buffer (invalidate_mappings, move_notify
 * before 7.1 → the driver zaps its MR page table and unmaps). The pinned variant
 * (ib_umem_dmabuf_get_pinned) pins the buffer so it never moves, and maps once; it has no
 * invalidate_mappings, so an exporter that may revoke (vfio-pci) refuses it (EOPNOTSUPP). The umem
 * covers [offset, offset+length) of the buffer; the mapped segments are trimmed to the pages holding it, as ib_umem_dmabuf_map_pages trims the first and
 * last scatterlist entries.
 */
import { type DmaRangeList, fail, formatHex, type PhyrList } from '../core/index.ts';
import type {
  DmaBuf,
  DmaBufAttachment,
  DmaBufDevice,
  DmaBufDeviceMapping,
  DmaBufMapping,
} from '../dmabuf/index.ts';
import { ibAccessWritable, type RdmaDevice, type RdmaDmaMapping } from './device.ts';
import type { Umem } from './umem.ts';

/** The RDMA device as a dma-buf importer device: its DMA layer maps the exporter's ranges. */
export function rdmaDmaBufDevice(device: RdmaDevice): DmaBufDevice {
  const live = new WeakMap<DmaBufDeviceMapping, RdmaDmaMapping>();
  return {
    name: device.name,
    bdf: device.bdf,
    mapForDmaBuf(list: PhyrList, _dir, options): DmaBufDeviceMapping {
      const mapping = device.dma.mapPhyrs(list, options);
      const out: DmaBufDeviceMapping = { ranges: mapping.dma, path: options.mmio ? 'p2p' : 'host' };
      live.set(out, mapping);
      return out;
    },
    unmapForDmaBuf(mapping: DmaBufDeviceMapping): void {
      live.get(mapping)?.unmap();
      live.delete(mapping);
    },
  };
}

export class DmabufUmem implements Umem {
  readonly kind = 'dmabuf' as const;
  readonly attachment: DmaBufAttachment;
  readonly pinnedMode: boolean;
  private mapping: DmaBufMapping | undefined;
  private ranges: DmaRangeList | undefined;
  private released = false;
  /** Called on move_notify before the mapping goes (the MR zaps its page list). */
  onInvalidate: (() => void) | undefined;
  /** How many times the pages were mapped (first map + every re-map after a move). */
  mapCount = 0;

  constructor(
    readonly device: RdmaDevice,
    readonly dmabuf: DmaBuf,
    readonly address: bigint,
    readonly length: bigint,
    readonly writable: boolean,
    pinned: boolean,
  ) {
    this.pinnedMode = pinned;
    // The pinned importer has no invalidate_mappings since 7.1 (ib_umem_dmabuf_attach_pinned_ops):
    // it cannot be revoked, so dma_buf_attach_revocable is false and vfio-pci refuses it.
    const importer = pinned
      ? { allowPeer2peer: true }
      : { allowPeer2peer: true, invalidateMappings: () => this.invalidate() };
    this.attachment = dmabuf.attach(rdmaDmaBufDevice(device), importer);
  }

  get isMapped(): boolean {
    return this.mapping !== undefined;
  }

  /** ib_umem_dmabuf_map_pages: map the attachment and trim to the umem's pages. ENODEV once revoked. */
  mapPages(): DmaRangeList {
    if (this.released) fail('EINVAL', 'dma-buf umem was released');
    if (this.ranges !== undefined) return this.ranges;
    const mapping = this.dmabuf.map(this.attachment, 'BIDIRECTIONAL');
    const first = this.address & -0x1000n;
    const end = (this.address + this.length + 0xfffn) & -0x1000n;
    this.mapping = mapping;
    this.ranges = mapping.ranges.slice(first, end - first);
    this.mapCount++;
    return this.ranges;
  }

  /** ib_umem_dmabuf_unmap_pages. */
  unmapPages(): void {
    if (this.mapping === undefined) return;
    const mapping = this.mapping;
    this.mapping = undefined;
    this.ranges = undefined;
    this.dmabuf.unmap(mapping);
  }

  mappedRanges(): DmaRangeList {
    if (this.ranges === undefined) {
      fail(
        'EAGAIN',
        `dma-buf umem at offset ${formatHex(this.address)} is not mapped (invalidated by move_notify)`,
      );
    }
    return this.ranges;
  }

  /** Page list and DMA list of the current mapping (16 bytes a range). */
  get metadataBytes(): number {
    return (this.ranges?.metadataBytes ?? 0) + (this.mapping?.phys.metadataBytes ?? 0);
  }

  /** invalidate_mappings from the exporter: the MR stops using the pages, then they are unmapped. */
  invalidate(): void {
    this.onInvalidate?.();
    this.unmapPages();
  }

  release(): void {
    if (this.released) fail('EINVAL', 'dma-buf umem released twice');
    this.unmapPages();
    this.released = true;
    if (this.pinnedMode && this.attachment.pins > 0) this.dmabuf.unpin(this.attachment);
    this.dmabuf.detach(this.attachment);
  }
}

/** A new dma-buf umem over [offset, offset+size), which ib_umem_dmabuf_get requires inside the buffer (EINVAL). */
function newDmabufUmem(
  device: RdmaDevice,
  dmabuf: DmaBuf,
  offset: bigint,
  size: bigint,
  access: number,
  pinned: boolean,
): DmabufUmem {
  const end = offset + size;
  if (size <= 0n || offset < 0n || end > dmabuf.size) {
    fail(
      'EINVAL',
      `umem ${formatHex(offset)} + ${formatHex(size)} is outside the ${formatHex(dmabuf.size)}-byte dma-buf`,
    );
  }
  return new DmabufUmem(device, dmabuf, offset, size, ibAccessWritable(access), pinned);
}

/** ib_umem_dmabuf_get: a dynamic importer; pages are mapped when first used. */
export function ibUmemDmabufGet(
  device: RdmaDevice,
  dmabuf: DmaBuf,
  offset: bigint,
  size: bigint,
  access: number,
): DmabufUmem {
  return newDmabufUmem(device, dmabuf, offset, size, access, false);
}

/** ib_umem_dmabuf_get_pinned: attach, pin (the buffer can no longer move) and map now. */
export function ibUmemDmabufGetPinned(
  device: RdmaDevice,
  dmabuf: DmaBuf,
  offset: bigint,
  size: bigint,
  access: number,
): DmabufUmem {
  const umem = newDmabufUmem(device, dmabuf, offset, size, access, true);
  try {
    dmabuf.pin(umem.attachment);
    umem.mapPages();
  } catch (error) {
    if (umem.attachment.pins > 0) dmabuf.unpin(umem.attachment);
    dmabuf.detach(umem.attachment);
    throw error;
  }
  return umem;
}
