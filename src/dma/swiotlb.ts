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
    // roundup(min_align_mask, IO_TLB_SIZE): a mask that is already a multiple of a slot stays as is.
    const minAlign = ((minAlignMask + IO_TLB_SIZE - 1n) / IO_TLB_SIZE) * IO_TLB_SIZE;
    return SWIOTLB_MAX_MAPPING - minAlign;
  }

  /**
   * swiotlb_tbl_map_single: find slots, record the original address, copy the original in.
   * EINVAL when the mapping can never fit a segment; ENOMEM when the pool has no room now.
   */
  map(origAddr: bigint, size: bigint, options: SwiotlbMapOptions = {}): SwiotlbBounce {
    const minAlignMask = options.minAlignMask ?? 0n;
    const allocAlignMask = options.allocAlignMask ?? 0n;
    if (size <= 0n) fail('EINVAL', 'swiotlb mapping of zero bytes');
    // The kernel only WARNs when alloc_align_mask exceeds a page (the pool is page aligned, so such
    // a mapping may not use a segment's first slots); the search below still honours it.
    if (allocAlignMask > PAGE_SIZE - 1n) this.metrics.add('dma.swiotlb_align_warnings');
    const offset = swiotlbAlignOffset(minAlignMask, allocAlignMask, origAddr);
    // The allocation covers whole alloc_align_mask + 1 units, so an IOMMU granule holding the bounce
    // holds nothing else (swiotlb_tbl_map_single: ALIGN(mapping_size + offset, alloc_align_mask + 1)).
    const allocSize = alignUpMask(size + offset, allocAlignMask);
    if (allocSize > SWIOTLB_MAX_MAPPING) {
      fail(
        'EINVAL',
        `swiotlb mapping of ${formatSize(size)} exceeds the ${formatSize(this.maxMappingSize(minAlignMask))} maximum (IO_TLB_SEGSIZE ${IO_TLB_SEGSIZE} slots of 2 KiB)`,
      );
    }
    const nslots = Number((allocSize + IO_TLB_SIZE - 1n) >> IO_TLB_SHIFT);
    const index = this.findSlots(origAddr, allocSize, nslots, minAlignMask, allocAlignMask, options);
    if (index < 0) {
      this.metrics.add('dma.swiotlb_full');
      fail(
        'ENOMEM',
        `swiotlb buffer is full (sz: ${allocSize} bytes), total ${this.nslabs} (slots), used ${this.used} (slots)`,
      );
    }
    return this.claim(index, nslots, origAddr, size, offset);
  }

  /**
   * swiotlb_search_pool_area: next-fit from the rotating index. A candidate slot must sit on the
   * allocation alignment and, when there is an original address, agree with it on the
   * min_align_mask bits the offset does not carry; an aligned candidate that is busy or would cross
   * the segment boundary moves on by the stride. Returns the first slot, or -1.
   */
  private findSlots(
    origAddr: bigint,
    allocSize: bigint,
    nslots: number,
    minAlignMask: bigint,
    allocAlignMask: bigint,
    options: SwiotlbMapOptions,
  ): number {
    if (nslots > this.nslabs - this.used) return -1;
    const search = swiotlbSearchParams(minAlignMask, allocAlignMask, allocSize);
    // The masks are unsigned int in the kernel: the low 32 bits of each address decide.
    const allocMask = Number(search.allocAlignMask & U32_MASK);
    const iotlbMask = Number(search.iotlbAlignMask & U32_MASK);
    const origBits = Number(origAddr & U32_MASK) & iotlbMask;
    const checkOrig = origAddr !== 0n;
    const startLow = Number(this.start & U32_MASK);
    const slotBytes = Number(IO_TLB_SIZE);
    const stride = search.stride;
    const boundary = options.segmentBoundaryMask;
    const maxSlots =
      boundary === undefined || boundary >= 1n << 63n
        ? Number.MAX_SAFE_INTEGER
        : Number((boundary + 1n) >> IO_TLB_SHIFT);
    const tblSlotBase = Number(this.start >> IO_TLB_SHIFT);
    const nslabs = this.nslabs;
    let index = this.index;
    for (let checked = 0; checked < nslabs; ) {
      const slotLow = startLow + index * slotBytes;
      if ((slotLow & allocMask) !== 0 || (checkOrig && (slotLow & iotlbMask) !== origBits)) {
        index = index + 1 >= nslabs ? 0 : index + 1;
        checked += 1;
        continue;
      }
      const spanOk =
        maxSlots === Number.MAX_SAFE_INTEGER || ((tblSlotBase + index) % maxSlots) + nslots <= maxSlots;
      if (spanOk && this.list[index]! >= nslots) return index;
      index = index + stride >= nslabs ? 0 : index + stride;
      checked += stride;
    }
    return -1;
  }

  private claim(
    index: number,
    nslots: number,
    origAddr: bigint,
    size: bigint,
    offset: bigint,
  ): SwiotlbBounce {
    // Whole slots of padding before the data (offset >> IO_TLB_SHIFT, the kernel's pad_slots) keep
    // no original address; the data slots map to the original slot by slot.
    const padSlots = Number(offset >> IO_TLB_SHIFT);
    for (let i = index; i < index + nslots; i++) {
      this.list[i] = 0;
      this.origAddr[i] =
        i < index + padSlots ? 0n : origAddr + (BigInt(i - index - padSlots) << IO_TLB_SHIFT);
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

const U32_MASK = 0xffff_ffffn;
const U64_MAX = (1n << 64n) - 1n;

/**
 * swiotlb_align_offset: the bytes before the data inside the allocation, the original's low bits
 * that min_align_mask asks to keep, within the allocation alignment (or within one slot).
 */
export function swiotlbAlignOffset(minAlignMask: bigint, allocAlignMask: bigint, addr: bigint): bigint {
  return addr & minAlignMask & (allocAlignMask | (IO_TLB_SIZE - 1n));
}

/** The alignment a swiotlb_search_pool_area pass applies to each candidate slot. */
export interface SwiotlbSearch {
  /** Bits a candidate slot address must have clear (at least slot aligned). */
  readonly allocAlignMask: bigint;
  /** Bits a candidate must share with the original address (min_align_mask minus allocAlignMask). */
  readonly iotlbAlignMask: bigint;
  /** Slots to skip after an aligned candidate that does not fit. */
  readonly stride: number;
}

/**
 * swiotlb_search_pool_area (kernel/dma/swiotlb.c, 6.9+): a streaming mapping of a page or more with
 * no alignment asked is page aligned; the allocation is at least slot aligned; min_align_mask bits
 * the offset already carries are not matched again; the stride is get_max_slots of the larger mask.
 */
export function swiotlbSearchParams(
  minAlignMask: bigint,
  allocAlignMask: bigint,
  allocSize: bigint,
): SwiotlbSearch {
  let alloc = allocAlignMask;
  if (alloc === 0n && minAlignMask === 0n && allocSize >= PAGE_SIZE) alloc = PAGE_SIZE - 1n;
  alloc |= IO_TLB_SIZE - 1n;
  const iotlb = minAlignMask & (U64_MAX ^ alloc);
  const widest = alloc > iotlb ? alloc : iotlb;
  return { allocAlignMask: alloc, iotlbAlignMask: iotlb, stride: Number(widest >> IO_TLB_SHIFT) + 1 };
}

/** ALIGN(value, mask + 1) for a 2^k - 1 mask. */
function alignUpMask(value: bigint, mask: bigint): bigint {
  return (value + mask) & (U64_MAX ^ mask);
}
