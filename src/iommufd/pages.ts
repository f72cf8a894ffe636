/**
 * iopt_pages: what an IOAS area maps (drivers/iommu/iommufd/pages.c). Two sources:
 *  - user memory: pinned through the mm model when the area is created (FOLL_LONGTERM), unpinned
 *    only after every domain has unmapped it ("unpin must follow unmap");
 *  - a dma-buf (IOMMU_IOAS_MAP_FILE given a dma-buf fd, iopt_alloc_dmabuf_pages): a dynamic attachment
 *    with peer2peer, pinned (dma_buf_pin), whose single physical range comes through the vfio private
 *    interconnect. No pinned-page accounting. The pages remember every (area, domain) pair that maps
 *    them (the dmabuf tracker); on invalidate_mappings (move_notify before 7.1) — which for vfio
 *    means revoke — every such pair is unmapped (with its IOTLB invalidated) and the pages are marked revoked for good: they are never
 *    mapped again, even if the exporter later un-revokes (iopt_revoke_notify returns early once
 *    revoked; the user must unmap and map again).
 */
import { fail, formatHex, formatSize, type PhyrList } from '../core/index.ts';
import type { DmaBuf, DmaBufAttachment, DmaBufDevice } from '../dmabuf/index.ts';
import type { IommuDomain } from '../iommu/index.ts';

/** Pins user memory for an IOAS: the mm model's pin_user_pages (FOLL_LONGTERM) behind an interface. */
export interface UserMemoryPinner {
  /** Pin `[uptr, uptr + length)`; the physical ranges in VA order, and how to let them go. */
  pin(uptr: bigint, length: bigint, writable: boolean): PinnedUserRange;
}

export interface PinnedUserRange {
  readonly phys: PhyrList;
  unpin(dirty: boolean): void;
}

/** One (area, domain) pair a dma-buf's pages are mapped into (struct iopt_pages_dmabuf_track). */
export interface DmabufTrack {
  readonly iova: bigint;
  readonly length: bigint;
  readonly domain: IommuDomain;
}

/** Report of one revoke as iommufd saw it. */
export interface IommufdRevokeRecord {
  readonly buf: string;
  readonly unmapped: readonly { readonly domain: number; readonly iova: bigint; readonly length: bigint }[];
}

/** iommufd's placeholder device for dma-buf attachments (iommufd_global_device): it never does DMA. */
export const IOMMUFD_GLOBAL_DEVICE: DmaBufDevice = {
  name: 'iommufd',
  bdf: undefined,
  mapForDmaBuf() {
    return fail('EINVAL', 'iommufd maps dma-bufs through its own page tables, never through the DMA API');
  },
  unmapForDmaBuf() {},
};

export abstract class IoptPages {
  readonly writable: boolean;
  protected constructor(writable: boolean) {
    this.writable = writable;
  }
  /** Physical ranges of `[startByte, startByte + length)` of these pages, or undefined when revoked. */
  abstract slice(startByte: bigint, length: bigint): PhyrList | undefined;
  abstract get kind(): 'user' | 'dmabuf';
  /** Called when the last area using these pages is gone (after every domain unmapped them). */
  abstract release(): void;
  /** A domain now maps `[iova, iova + length)` of these pages. */
  track(_t: DmabufTrack): void {}
  untrack(_iova: bigint, _domain: IommuDomain): void {}
  /** IOMMU_MMIO for BAR memory (pages.c maps dma-buf MMIO with the MMIO attribute). */
  get mmio(): boolean {
    return false;
  }
}

export class UserPages extends IoptPages {
  readonly uptr: bigint;
  readonly length: bigint;
  private readonly pinned: PinnedUserRange;
  private released = false;

  constructor(pinner: UserMemoryPinner, uptr: bigint, length: bigint, writable: boolean) {
    super(writable);
    this.uptr = uptr;
    this.length = length;
    this.pinned = pinner.pin(uptr, length, writable);
    if (this.pinned.phys.totalLength !== length) {
      this.pinned.unpin(false);
      fail(
        'EFAULT',
        `pinning ${formatHex(uptr)} + ${formatSize(length)} gave ${formatSize(this.pinned.phys.totalLength)}`,
      );
    }
  }

  get kind(): 'user' {
    return 'user';
  }

  slice(startByte: bigint, length: bigint): PhyrList {
    return this.pinned.phys.slice(startByte, length);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    // unpin_user_pages_dirty_lock for writable mappings: the device may have written them.
    this.pinned.unpin(this.writable);
  }
}

export class DmabufPages extends IoptPages {
  readonly buf: DmaBuf;
  readonly attachment: DmaBufAttachment;
  /** Offset of the area in the dma-buf. */
  readonly start: bigint;
  private phys: PhyrList | undefined;
  private readonly tracks: DmabufTrack[] = [];
  private readonly onRevoke: (record: IommufdRevokeRecord) => void;
  private released = false;

  constructor(
    buf: DmaBuf,
    start: bigint,
    length: bigint,
    writable: boolean,
    onRevoke: (record: IommufdRevokeRecord) => void,
  ) {
    super(writable);
    if (length <= 0n || start + length - 1n >= buf.size) {
      fail('EINVAL', `${formatHex(start)} + ${formatSize(length)} is outside ${buf.describe()}`);
    }
    this.buf = buf;
    this.start = start;
    this.onRevoke = onRevoke;
    // iopt_map_dmabuf: dynamic attach with peer2peer, pin, then the private interconnect.
    this.attachment = buf.attach(IOMMUFD_GLOBAL_DEVICE, {
      allowPeer2peer: true,
      invalidateMappings: () => this.revokeNotify(),
    });
    try {
      buf.pin(this.attachment);
      try {
        this.phys = buf.privatePhys(this.attachment);
      } catch (error) {
        buf.unpin(this.attachment);
        throw error;
      }
    } catch (error) {
      buf.detach(this.attachment);
      throw error;
    }
    buf.get();
  }

  get kind(): 'dmabuf' {
    return 'dmabuf';
  }

  override get mmio(): boolean {
    return true;
  }

  get revoked(): boolean {
    return this.phys === undefined;
  }

  get tracked(): readonly DmabufTrack[] {
    return this.tracks;
  }

  slice(startByte: bigint, length: bigint): PhyrList | undefined {
    return this.phys?.slice(this.start + startByte, length);
  }

  override track(t: DmabufTrack): void {
    this.tracks.push(t);
  }

  override untrack(iova: bigint, domain: IommuDomain): void {
    const i = this.tracks.findIndex((t) => t.iova === iova && t.domain === domain);
    if (i >= 0) this.tracks.splice(i, 1);
  }

  /** iopt_revoke_notify: unmap from every domain (IOTLB flushed by each unmap), then mark revoked. */
  private revokeNotify(): void {
    if (this.phys === undefined) return;
    const unmapped: { domain: number; iova: bigint; length: bigint }[] = [];
    for (const t of this.tracks) {
      t.domain.unmap(t.iova, t.length);
      unmapped.push({ domain: t.domain.id, iova: t.iova, length: t.length });
    }
    this.phys = undefined;
    this.onRevoke({ buf: this.buf.describe(), unmapped });
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.buf.unpin(this.attachment);
    this.buf.detach(this.attachment);
    this.buf.put();
  }
}
