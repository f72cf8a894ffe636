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
 * segment, nor the device's segment boundary (iommu_is_span_boundary).
 *
 * Areas (swiotlb_init_io_tlb_pool, 5.19+): the pool is split into `nareas` equal areas (the number
 * of possible CPUs rounded up to a power of two, cut so each area holds at least one segment:
 * limit_nareas), each with its own next-fit index and used count. A mapping searches the area of
 * the CPU it runs on first, then the next ones in turn (swiotlb_pool_find_slots); inside an area
 * the index wraps to the area's first slot (wrap_area_index), not to the pool's. So once an area's
 * index has wrapped, bounce addresses differ from a single next-fit over the whole pool.
 *
 * Since the info-leak fix (swiotlb_tbl_map_single), the map copies the original into the slots for
 * EVERY direction, so bytes the device does not overwrite come back unchanged on a FROM_DEVICE
 * unmap instead of leaking stale pool contents.
 */
import { COUNTER, fail, formatHex, type Metrics } from '../core/index.ts';
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

export interface SwiotlbPoolOptions {
  /** Desired areas (num_possible_cpus or the swiotlb=,N parameter); default 1. */
  readonly nareas?: number;
}

export interface SwiotlbMapOptions {
  /** The CPU the mapping runs on (raw_smp_processor_id): its area is searched first. Default 0. */
  readonly cpu?: number;
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
  /** Areas in the pool and slots per area (pool->nareas, pool->area_nslabs). */
  readonly nareas: number;
  readonly areaNslabs: number;
  /** Per area: next-fit index relative to the area's first slot, and slots in use. */
  private readonly areaIndex: Int32Array;
  private readonly areaUsed: Int32Array;
  private used = 0;
  /** High-water mark of used slots. */
  private peak = 0;

  constructor(
    start: bigint,
    size: bigint,
    bytes: ByteStore,
    metrics: Metrics,
    poolOptions: SwiotlbPoolOptions = {},
  ) {
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
    this.nareas = swiotlbAreas(poolOptions.nareas ?? 1, this.nslabs);
    this.areaNslabs = Math.floor(this.nslabs / this.nareas);
    this.areaIndex = new Int32Array(this.nareas);
    this.areaUsed = new Int32Array(this.nareas);
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
   * ENOMEM ("swiotlb buffer is full") when no area has room, which is also how a mapping larger
   * than a segment fails: no free run inside a segment is ever that long, so the search finds
   * nothing (the kernel has no separate size check here; callers ask swiotlb_max_mapping_size).
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
    const nslots = Number((allocSize + IO_TLB_SIZE - 1n) >> IO_TLB_SHIFT);
    // swiotlb_pool_find_slots: the CPU's own area first, then each following area once.
    const first = (options.cpu ?? 0) & (this.nareas - 1);
    let area = first;
    do {
      const index = this.findSlots(area, origAddr, allocSize, nslots, minAlignMask, allocAlignMask, options);
      if (index >= 0) return this.claim(area, index, nslots, origAddr, size, offset);
      area = area + 1 >= this.nareas ? 0 : area + 1;
    } while (area !== first);
    this.metrics.add('dma.swiotlb_full');
    const tooBig =
      allocSize > this.maxMappingSize(0n) ? ` (more than one ${IO_TLB_SEGSIZE}-slot segment)` : '';
    fail(
      'ENOMEM',
      `swiotlb buffer is full (sz: ${allocSize} bytes)${tooBig}, total ${this.nslabs} (slots), used ${this.used} (slots)`,
    );
  }

  /**
   * swiotlb_search_pool_area: next-fit from the area's rotating index, wrapping inside the area. A
   * candidate slot must sit on the allocation alignment and, when there is an original address,
   * agree with it on the min_align_mask bits the offset does not carry; an aligned candidate that is
   * busy or would cross the segment boundary moves on by the stride. Returns the slot index in the
   * pool, or -1.
   */
  private findSlots(
    area: number,
    origAddr: bigint,
    allocSize: bigint,
    nslots: number,
    minAlignMask: bigint,
    allocAlignMask: bigint,
    options: SwiotlbMapOptions,
  ): number {
    const areaNslabs = this.areaNslabs;
    if (nslots > areaNslabs - this.areaUsed[area]!) return -1;
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
    const slotBase = area * areaNslabs;
    let index = this.areaIndex[area]!;
    for (let checked = 0; checked < areaNslabs; ) {
      const slot = slotBase + index;
      const slotLow = startLow + slot * slotBytes;
      if ((slotLow & allocMask) !== 0 || (checkOrig && (slotLow & iotlbMask) !== origBits)) {
        index = index + 1 >= areaNslabs ? 0 : index + 1;
        checked += 1;
        continue;
      }
      const spanOk =
        maxSlots === Number.MAX_SAFE_INTEGER || ((tblSlotBase + slot) % maxSlots) + nslots <= maxSlots;
      if (spanOk && this.list[slot]! >= nslots) {
        // area->index moves past the run, wrapping inside the area (wrap_area_index).
        this.areaIndex[area] = index + nslots >= areaNslabs ? 0 : index + nslots;
        return slot;
      }
      index = index + stride >= areaNslabs ? 0 : index + stride;
      checked += stride;
    }
    return -1;
  }

  private claim(
    area: number,
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
    this.areaUsed[area]! += nslots;
    if (this.used > this.peak) this.peak = this.used;
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
    // swiotlb_release_slots: the area is the one the slot index falls in.
    this.areaUsed[Math.min(Math.floor(index / this.areaNslabs), this.nareas - 1)]! -= nslots;
    this.metrics.add('dma.swiotlb_unmaps');
  }

  private copy(from: bigint, to: bigint, size: bigint): void {
    this.bytes.copy(from, to, Number(size));
    this.metrics.add(COUNTER.bounceBytes, Number(size));
  }
}

/**
 * swiotlb_adjust_nareas + limit_nareas: a power of two (0 counts as 1), cut so that every area holds
 * at least one IO_TLB_SEGSIZE segment.
 */
export function swiotlbAreas(desired: number, nslabs: number): number {
  let nareas = 1;
  while (nareas < desired) nareas *= 2;
  if (nslabs < nareas * IO_TLB_SEGSIZE) nareas = Math.max(1, Math.floor(nslabs / IO_TLB_SEGSIZE));
  return nareas;
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
