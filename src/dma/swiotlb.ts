/**
 * swiotlb (kernel/dma/swiotlb.c): a pool of low memory cut into 2 KiB slots (IO_TLB_SHIFT 11) that
 * stands in for a buffer a device cannot reach (beyond its DMA mask, or a device that must not see
 * the rest of the page). Bytes really move: the map copies the original into the slots and the unmap
 * / sync copies back, through the platform's ByteStore.
 *
 * Slot bookkeeping follows the kernel: slots are grouped in segments of IO_TLB_SEGSIZE (128); each
 * slot's `list` is the number of free slots from it to the end of its run inside its segment, so a
 * mapping of n slots may start at slot i when list[i] >= n. The search is next-fit from a rotating
 * index with a stride set by the alignment (swiotlb_search_pool_area); a mapping never crosses a
 * segment, nor the device's segment boundary (iommu_is_span_boundary). One area only (the kernel
 * splits the pool per CPU to cut lock contention; that changes no result here).
 *
 * Since the info-leak fix (swiotlb_tbl_map_single), the map copies the original into the slots for
 * EVERY direction, so bytes the device does not overwrite come back unchanged on a FROM_DEVICE
 * unmap instead of leaking stale pool contents.
 */
import { COUNTER, fail, formatHex, formatSize, type Metrics } from '../core/index.ts';
import type { ByteStore } from '../platform/index.ts';
import type { DmaDirection } from './types.ts';

export const IO_TLB_SHIFT = 11n;
export const IO_TLB_SIZE = 1n << IO_TLB_SHIFT;
export const IO_TLB_SEGSIZE = 128;
const PAGE_SIZE = 4096n;

/** swiotlb_max_mapping_size without a min_align_mask: one full segment, 256 KiB. */
export const SWIOTLB_MAX_MAPPING = IO_TLB_SIZE * BigInt(IO_TLB_SEGSIZE);

/** One live bounce: what swiotlb_tbl_unmap_single and swiotlb_sync_* need. */
export interface SwiotlbBounce {
  /** Address in the pool the device is given (before any IOMMU mapping). */
  readonly tlbAddr: bigint;
  readonly origAddr: bigint;
  /** Bytes of the caller's buffer. */
  readonly size: bigint;
  readonly index: number;
  readonly slots: number;
}

export interface SwiotlbMapOptions {
  /** Bits of the original address the bounce must keep (dma_get_min_align_mask). */
  readonly minAlignMask?: bigint;
  /** Alignment of the allocation itself (alloc_align_mask; iommu: granule - 1). */
  readonly allocAlignMask?: bigint;
  /** The device's segment boundary mask (dma_get_seg_boundary). */
  readonly segmentBoundaryMask?: bigint;
}

export class Swiotlb {
  readonly start: bigint;
  readonly nslabs: number;
  private readonly list: Int32Array;
  private readonly origAddr: BigUint64Array;
  private readonly bytes: ByteStore;
  private readonly metrics: Metrics;
  private index = 0;
  private used = 0;
  /** High-water mark of used slots. */
  private peak = 0;

  constructor(start: bigint, size: bigint, bytes: ByteStore, metrics: Metrics) {
    if (start % PAGE_SIZE !== 0n || size <= 0n || size % IO_TLB_SIZE !== 0n) {
      fail(
        'EINVAL',
        `swiotlb pool ${formatHex(start)} + ${formatHex(size)} must be page aligned and whole slots`,
      );
    }
    this.start = start;
    this.nslabs = Number(size >> IO_TLB_SHIFT);
    this.list = new Int32Array(this.nslabs);
    this.origAddr = new BigUint64Array(this.nslabs);
    // swiotlb_init_io_tlb_pool: list counts down to the end of each segment.
    for (let i = 0; i < this.nslabs; i++) this.list[i] = IO_TLB_SEGSIZE - (i % IO_TLB_SEGSIZE);
    this.bytes = bytes;
    this.metrics = metrics;
  }

  get size(): bigint {
    return BigInt(this.nslabs) << IO_TLB_SHIFT;
  }

  get usedSlots(): number {
    return this.used;
  }

  get peakSlots(): number {
    return this.peak;
  }

  /** is_swiotlb_buffer: whether an address lies in the pool. */
  contains(addr: bigint): boolean {
    return addr >= this.start && addr < this.start + this.size;
  }

  /** swiotlb_max_mapping_size: the largest mapping one segment can hold with this min_align_mask. */
  maxMappingSize(minAlignMask = 0n): bigint {
    const minAlign = minAlignMask === 0n ? 0n : ((minAlignMask + IO_TLB_SIZE) / IO_TLB_SIZE) * IO_TLB_SIZE;
    return SWIOTLB_MAX_MAPPING - minAlign;
  }

  /**
   * swiotlb_tbl_map_single: find slots, record the original address, copy the original in.
   * EINVAL when the mapping can never fit a segment; ENOMEM when the pool has no room now.
   */
  map(origAddr: bigint, size: bigint, options: SwiotlbMapOptions = {}): SwiotlbBounce {
    const minAlignMask = options.minAlignMask ?? 0n;
    let allocAlignMask = options.allocAlignMask ?? 0n;
    if (size <= 0n) fail('EINVAL', 'swiotlb mapping of zero bytes');
    if (allocAlignMask > PAGE_SIZE - 1n) {
      fail('EINVAL', `swiotlb alignment ${formatHex(allocAlignMask + 1n)} exceeds PAGE_SIZE`);
    }
    // swiotlb_align_offset: keep the original's low bits the min_align_mask asks for.
    const offset = origAddr & minAlignMask & (allocAlignMask | (IO_TLB_SIZE - 1n));
    const allocSize = size + offset;
    if (allocSize > SWIOTLB_MAX_MAPPING) {
      fail(
        'EINVAL',
        `swiotlb mapping of ${formatSize(size)} exceeds the ${formatSize(this.maxMappingSize(minAlignMask))} maximum (IO_TLB_SEGSIZE ${IO_TLB_SEGSIZE} slots of 2 KiB)`,
      );
    }
    // swiotlb_search_pool_area: streaming mappings of a page or more are page aligned.
    let iotlbAlignMask = minAlignMask;
    if (allocAlignMask === 0n && iotlbAlignMask === 0n && allocSize >= PAGE_SIZE)
      allocAlignMask = PAGE_SIZE - 1n;
    allocAlignMask |= IO_TLB_SIZE - 1n;
    iotlbAlignMask &= U64_NOT(allocAlignMask);
    const nslots = Number((allocSize + IO_TLB_SIZE - 1n) >> IO_TLB_SHIFT);
    const alignMax = allocAlignMask > iotlbAlignMask ? allocAlignMask : iotlbAlignMask;
    const stride = Math.max(1, Number((alignMax + 1n) >> IO_TLB_SHIFT));
    const boundary = options.segmentBoundaryMask;
    const maxSlots =
      boundary === undefined || boundary >= 1n << 63n
        ? Number.MAX_SAFE_INTEGER
        : Number((boundary + 1n) >> IO_TLB_SHIFT);
    const tblSlotBase = Number(this.start >> IO_TLB_SHIFT);
    let index = Math.floor(this.index / stride) * stride;
    if (index >= this.nslabs) index = 0;
    for (let i = 0; i < this.nslabs; ) {
      const slotAddr = this.start + (BigInt(index) << IO_TLB_SHIFT);
      if ((slotAddr & iotlbAlignMask) !== (origAddr & iotlbAlignMask)) {
        index = index + 1 >= this.nslabs ? 0 : index + 1;
        i += 1;
        continue;
      }
      const spanOk =
        maxSlots === Number.MAX_SAFE_INTEGER || ((tblSlotBase + index) % maxSlots) + nslots <= maxSlots;
      if (spanOk && this.list[index]! >= nslots) return this.claim(index, nslots, origAddr, size, offset);
      index = index + stride >= this.nslabs ? 0 : index + stride;
      i += stride;
    }
    this.metrics.add('dma.swiotlb_full');
    fail(
      'ENOMEM',
      `swiotlb buffer is full (sz: ${size} bytes), total ${this.nslabs} (slots), used ${this.used} (slots)`,
    );
  }

  private claim(
    index: number,
    nslots: number,
    origAddr: bigint,
    size: bigint,
    offset: bigint,
  ): SwiotlbBounce {
    for (let i = index; i < index + nslots; i++) {
      this.list[i] = 0;
      this.origAddr[i] = origAddr + (BigInt(i - index) << IO_TLB_SHIFT);
    }
    // Free slots before this run in the same segment now end where it starts.
    const segStart = index - (index % IO_TLB_SEGSIZE);
    for (let i = index - 1; i >= segStart && this.list[i] !== 0; i--) this.list[i] = index - i;
    this.used += nslots;
    if (this.used > this.peak) this.peak = this.used;
    this.index = index + nslots >= this.nslabs ? 0 : index + nslots;
    const tlbAddr = this.start + (BigInt(index) << IO_TLB_SHIFT) + offset;
    const bounce = { tlbAddr, origAddr, size, index, slots: nslots };
    this.metrics.add('dma.swiotlb_maps');
    // Always fill the bounce from the original (the info-leak fix; see the file comment).
    this.copy(origAddr, tlbAddr, size);
    return bounce;
  }

  /** swiotlb_tbl_unmap_single: copy back for FROM_DEVICE/BIDIRECTIONAL (unless skipped), free slots. */
  unmap(bounce: SwiotlbBounce, dir: DmaDirection, skipCpuSync = false): void {
    if (!skipCpuSync && (dir === 'FROM_DEVICE' || dir === 'BIDIRECTIONAL')) {
      this.copy(bounce.tlbAddr, bounce.origAddr, bounce.size);
    }
    this.release(bounce.index, bounce.slots);
  }

  /**
   * swiotlb_sync_single_for_cpu / _for_device over `[offset, offset + size)` of the bounce: toward
   * the CPU for FROM_DEVICE/BIDIRECTIONAL, toward the device for TO_DEVICE/BIDIRECTIONAL.
   */
  sync(bounce: SwiotlbBounce, offset: bigint, size: bigint, dir: DmaDirection, toCpu: boolean): void {
    if (toCpu && (dir === 'FROM_DEVICE' || dir === 'BIDIRECTIONAL')) {
      this.copy(bounce.tlbAddr + offset, bounce.origAddr + offset, size);
    } else if (!toCpu && (dir === 'TO_DEVICE' || dir === 'BIDIRECTIONAL')) {
      this.copy(bounce.origAddr + offset, bounce.tlbAddr + offset, size);
    }
  }

  private release(index: number, nslots: number): void {
    const segEnd = index - (index % IO_TLB_SEGSIZE) + IO_TLB_SEGSIZE;
    const end = index + nslots;
    // The freed run joins whatever free run follows it inside the segment.
    let count = end < segEnd ? this.list[end]! : 0;
    for (let i = end - 1; i >= index; i--) {
      count++;
      this.list[i] = count;
      this.origAddr[i] = 0n;
    }
    const segStart = index - (index % IO_TLB_SEGSIZE);
    for (let i = index - 1; i >= segStart && this.list[i] !== 0; i--) this.list[i] = ++count;
    this.used -= nslots;
    this.metrics.add('dma.swiotlb_unmaps');
  }

  private copy(from: bigint, to: bigint, size: bigint): void {
    this.bytes.copy(from, to, Number(size));
    this.metrics.add(COUNTER.bounceBytes, Number(size));
  }
}

/** ~mask over 64 bits without `~` on a bigint (TOOLCHAIN-NOTES). */
function U64_NOT(mask: bigint): bigint {
  return (1n << 64n) - 1n - mask;
}
