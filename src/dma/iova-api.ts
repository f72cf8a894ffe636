/**
 * The two-step IOVA API (include/linux/dma-mapping.h and drivers/iommu/dma-iommu.c, from 6.16):
 * allocate ONE IOVA range for a whole transfer, link each physical range into it at its byte offset,
 * sync once, and later unlink and destroy. `DmaIovaState` is struct dma_iova_state.
 *
 * Alignment rules (dma_iova_link): a range may start mid-granule only when it is linked at offset 0
 * (the IOVA was allocated with that same offset, from the `phys` hint given to try_alloc); every
 * other range must start on a granule, and every range but the last must end on one, so the IOVA
 * stays one contiguous run of bytes. The iommu layer picks page sizes for each link (iommu_pgsize).
 *
 * Untrusted devices (dev_is_untrusted → dev_use_swiotlb) must not see the rest of a page they were
 * not given: a range's unaligned head and tail granules are bounced through swiotlb and the bounce
 * page is linked in their place (iommu_dma_iova_link_swiotlb); MMIO is never bounced (EPERM).
 */
import { alignUp, fail, formatHex, formatSize, type PhyrList } from '../core/index.ts';
import type { IommuDomain } from '../iommu/index.ts';
import { cacheSync, type DmaDeviceInfo, dmaDomainOf } from './device.ts';
import { bigintMin, dmaInfoToProt, iommuDmaAllocIova, zeroPadding } from './dma-iommu.ts';
import type { SwiotlbBounce } from './swiotlb.ts';
import type { DmaAttrs, DmaDirection } from './types.ts';

/** A bounced piece of a linked range: its byte offset in the IOVA and the swiotlb record. */
export interface LinkedBounce {
  readonly offset: bigint;
  readonly bounce: SwiotlbBounce;
}

/** sizeof(struct dma_iova_state): addr and __size, 8 bytes each (what a caller keeps per transfer). */
export const DMA_IOVA_STATE_BYTES = 16;

/** struct dma_iova_state plus what the model needs to undo it. */
export interface DmaIovaState {
  readonly device: DmaDeviceInfo;
  readonly domain: IommuDomain;
  /** state->addr: the IOVA of byte 0 of the transfer (allocation start + the hint's granule offset). */
  readonly addr: bigint;
  /** Bytes asked for at try_alloc. */
  readonly size: bigint;
  /** The IOVA allocation: start (granule aligned) and size (granule multiple). */
  readonly allocStart: bigint;
  readonly allocSize: bigint;
  /** DMA_IOVA_USE_SWIOTLB: some link bounced. */
  usedSwiotlb: boolean;
  readonly bounces: LinkedBounce[];
  /** Bytes linked so far (for the unwind of a failed transfer). */
  linkedBytes: bigint;
  freed: boolean;
}

function granuleOf(domain: IommuDomain): bigint {
  return domain.iovad!.granule;
}

/**
 * dma_iova_try_alloc: undefined when the device does not use dma-iommu (the caller then maps range
 * by range); otherwise IOVA space for `size` bytes whose first byte shares `phys`'s granule offset.
 * ENOMEM when the IOVA space is exhausted (the kernel returns false; the caller's fallback would fail
 * the same way, so the model says why at once).
 */
export function dmaIovaTryAlloc(device: DmaDeviceInfo, phys: bigint, size: bigint): DmaIovaState | undefined {
  const domain = dmaDomainOf(device);
  if (domain === undefined) return undefined;
  if (size <= 0n) return undefined;
  const granule = granuleOf(domain);
  const iovaOff = phys & (granule - 1n);
  const allocSize = alignUp(size + iovaOff, granule);
  const allocStart = iommuDmaAllocIova(device, domain, allocSize);
  device.machine.metrics.add('dma.iova_try_allocs');
  return {
    device,
    domain,
    addr: allocStart + iovaOff,
    size,
    allocStart,
    allocSize,
    usedSwiotlb: false,
    bounces: [],
    linkedBytes: 0n,
    freed: false,
  };
}

/** An IOVA state is used only with the device it was allocated for. */
function checkOwner(device: DmaDeviceInfo, state: DmaIovaState): void {
  if (state.device !== device) fail('EINVAL', `IOVA state belongs to ${state.device.bdf}, not ${device.bdf}`);
}

/** dma_use_iova. */
export function dmaUseIova(state: DmaIovaState | undefined): state is DmaIovaState {
  return state !== undefined && state.allocSize > 0n;
}

/** __dma_iova_link: cache maintenance for non-coherent devices, then iommu_map without a sync. */
function linkRaw(
  state: DmaIovaState,
  iova: bigint,
  phys: bigint,
  size: bigint,
  dir: DmaDirection,
  attrs: DmaAttrs,
): void {
  const device = state.device;
  cacheSync(device, size, attrs);
  state.domain.map(iova, phys, size, dmaInfoToProt(dir, device.coherent, attrs));
}

/** iommu_dma_iova_bounce_and_link: one granule of a bounce page linked in place of the original. */
function bounceAndLink(
  state: DmaIovaState,
  addr: bigint,
  phys: bigint,
  len: bigint,
  offset: bigint,
  dir: DmaDirection,
  attrs: DmaAttrs,
  startPad: bigint,
): void {
  const device = state.device;
  const swiotlb = device.machine.swiotlb;
  if (swiotlb === undefined) {
    fail('ENOMEM', `${device.bdf}: DMA bounce buffers are inactive, unable to map an unaligned transaction`);
  }
  const granule = granuleOf(state.domain);
  // iommu_dma_map_swiotlb → swiotlb_tbl_map_single: the device's own min_align_mask, the IOVA
  // granule as alloc_align_mask.
  const bounce = swiotlb.map(phys, len, {
    allocAlignMask: granule - 1n,
    minAlignMask: device.minAlignMask,
    segmentBoundaryMask: device.segmentBoundaryMask,
  });
  zeroPadding(device, bounce.tlbAddr, len, granule);
  try {
    // The bounce is linked `startPad` bytes below its start; iommu_map refuses (EINVAL) unless the
    // device's min_align_mask made the bounce keep the original's offset in the granule.
    if (((bounce.tlbAddr - startPad) & (granule - 1n)) !== 0n) {
      fail(
        'EINVAL',
        `${device.bdf}: bounce of ${formatHex(phys)} at ${formatHex(bounce.tlbAddr)} does not keep its ${formatSize(granule)} granule offset (min_align_mask ${formatHex(device.minAlignMask)}), so it cannot be linked at that offset`,
      );
    }
    linkRaw(state, addr - startPad, bounce.tlbAddr - startPad, granule, dir, attrs);
  } catch (error) {
    swiotlb.unmap(bounce, dir, true);
    throw error;
  }
  state.bounces.push({ offset, bounce });
  state.usedSwiotlb = true;
}

/**
 * dma_iova_link (drivers/iommu/dma-iommu.c, 7.1): maps `[phys, phys + size)` at
 * `state.addr + offset`, with the kernel's checks in its order:
 *  - a range that starts mid-granule anywhere but offset 0 is EIO (WARN_ON_ONCE);
 *  - DMA_ATTR_REQUIRE_COHERENT is EOPNOTSUPP once a link bounced, or on a non-coherent device;
 *  - an untrusted device's unaligned range is bounced, except with DMA_ATTR_MMIO or
 *    DMA_ATTR_REQUIRE_COHERENT: EPERM;
 *  - anything else goes to iommu_map, whose refusals keep their errno: a link whose IOVA does not
 *    start on a granule (the previous range ended mid-granule) is iommu_map's EINVAL. There is no
 *    bounds check against the allocation (the kernel has none).
 */
export function dmaIovaLink(
  device: DmaDeviceInfo,
  state: DmaIovaState,
  phys: bigint,
  offset: bigint,
  size: bigint,
  dir: DmaDirection,
  attrs: DmaAttrs = {},
): void {
  checkOwner(device, state);
  if (state.freed) fail('EINVAL', 'IOVA state was already destroyed');
  if (size <= 0n) fail('EINVAL', `link of ${formatSize(size)} at offset ${formatHex(offset)}`);
  const granule = granuleOf(state.domain);
  const mask = granule - 1n;
  const startPad = phys & mask;
  if (startPad !== 0n && offset > 0n) {
    fail(
      'EIO',
      `dma_iova_link at offset ${formatHex(offset)}: ${formatHex(phys)} is not ${formatSize(granule)} aligned`,
    );
  }
  const addr = state.addr + offset;
  if (attrs.requireCoherent === true) {
    if (state.usedSwiotlb)
      fail('EOPNOTSUPP', `${device.bdf}: DMA_ATTR_REQUIRE_COHERENT after a link of this IOVA bounced`);
    if (!device.coherent)
      fail('EOPNOTSUPP', `${device.bdf} is not DMA coherent: DMA_ATTR_REQUIRE_COHERENT cannot hold`);
  }
  const unaligned = ((phys | size) & mask) !== 0n;
  // dev_use_swiotlb: an untrusted device's unaligned range must be bounced; without swiotlb the
  // bounce fails (ENOMEM) rather than exposing the rest of the granule.
  if (device.untrusted && unaligned) {
    if (attrs.mmio === true || attrs.requireCoherent === true) {
      fail(
        'EPERM',
        `${device.bdf}: ${attrs.mmio === true ? 'MMIO' : 'a DMA_ATTR_REQUIRE_COHERENT range'} at ${formatHex(phys)} cannot be bounced through swiotlb`,
      );
    }
    linkSwiotlb(state, phys, offset, size, dir, attrs);
  } else {
    linkRaw(state, addr - startPad, phys - startPad, alignUp(size + startPad, granule), dir, attrs);
  }
  state.linkedBytes = offset + size;
}

/**
 * dma_iova_link of ranges `from..to-1` of a list back to back from `offset`: what one dma_iova_link
 * per range does (same checks, errors, cache maintenance and PTE words), with the page table written
 * by one bulk call (IommuDomain.mapList) when no range needs a bounce. A list that breaks the
 * alignment rules or needs bouncing is linked range by range, so it fails or bounces exactly as
 * those calls would.
 */
export function dmaIovaLinkList(
  device: DmaDeviceInfo,
  state: DmaIovaState,
  list: PhyrList,
  from: number,
  to: number,
  offset: bigint,
  dir: DmaDirection,
  attrs: DmaAttrs = {},
): void {
  checkOwner(device, state);
  if (state.freed) fail('EINVAL', 'IOVA state was already destroyed');
  const mask = granuleOf(state.domain) - 1n;
  const first = list.addressAt(from);
  let bulk = !((first & mask) !== 0n && offset > 0n) && ((state.addr + offset) & mask) === (first & mask);
  let total = 0n;
  const cur = list.cursor(from);
  for (let i = from; i < to; i++, cur.next()) {
    const a = cur.address;
    const len = cur.length;
    total += len;
    if (!bulk) continue;
    const end = (a + len) & mask;
    if ((i > from && (a & mask) !== 0n) || (i < to - 1 && end !== 0n)) bulk = false;
    else if (device.untrusted && ((a & mask) !== 0n || end !== 0n)) bulk = false;
  }
  if (!bulk || total <= 0n || offset + total > state.size) {
    let at = offset;
    const each = list.cursor(from);
    for (let i = from; i < to; i++, each.next()) {
      const len = each.length;
      dmaIovaLink(device, state, each.address, at, len, dir, attrs);
      at += len;
    }
    return;
  }
  cacheSync(device, total, attrs);
  state.domain.mapList(state.addr + offset, list, from, to, dmaInfoToProt(dir, device.coherent, attrs));
  state.linkedBytes = offset + total;
}

/** iommu_dma_iova_link_swiotlb: bounce the unaligned head and tail granules, link the middle. */
function linkSwiotlb(
  state: DmaIovaState,
  phys: bigint,
  offset: bigint,
  size: bigint,
  dir: DmaDirection,
  attrs: DmaAttrs,
): void {
  const granule = granuleOf(state.domain);
  const mask = granule - 1n;
  const startPad = phys & mask;
  const endPad = (phys + size) & mask;
  const addr = state.addr + offset;
  let mapped = 0n;
  let left = size;
  if (startPad !== 0n) {
    const len = bigintMin(left, granule - startPad);
    bounceAndLink(state, addr, phys, len, offset, dir, attrs, startPad);
    mapped += len;
    left -= len;
    if (left === 0n) return;
  }
  const tail = left >= endPad ? endPad : 0n;
  const middle = left - tail;
  try {
    if (middle > 0n) linkRaw(state, addr + mapped, phys + mapped, middle, dir, attrs);
    mapped += middle;
    if (tail > 0n) bounceAndLink(state, addr + mapped, phys + mapped, tail, offset + mapped, dir, attrs, 0n);
  } catch (error) {
    // out_unmap (fixed upstream by 6ec91df8aff7): unlink what this call linked, from `offset`, so the
    // caller's dma_iova_destroy of the earlier links leaves no mapping or bounce slot behind.
    if (mapped > 0n) dmaIovaUnlink(state.device, state, offset, mapped, dir, attrs);
    throw error;
  }
}

/** dma_iova_sync: one iotlb_sync_map for everything linked (what lets drivers batch links). */
export function dmaIovaSync(device: DmaDeviceInfo, state: DmaIovaState, offset: bigint, size: bigint): void {
  checkOwner(device, state);
  if (offset + size > state.size)
    fail('EINVAL', `sync of ${formatSize(size)} at ${formatHex(offset)} exceeds the IOVA`);
  device.machine.metrics.add('dma.iova_syncs');
}

/** Bounce copy-back and cache maintenance for linked bytes in `[offset, offset + size)`. */
function unlinkSlow(
  state: DmaIovaState,
  offset: bigint,
  size: bigint,
  dir: DmaDirection,
  attrs: DmaAttrs,
): void {
  const device = state.device;
  if (!device.coherent && attrs.skipCpuSync !== true && attrs.mmio !== true && dir !== 'TO_DEVICE') {
    device.machine.metrics.add('dma.cache_sync_bytes', Number(size));
  }
  const swiotlb = device.machine.swiotlb;
  if (swiotlb === undefined) return;
  for (let i = state.bounces.length - 1; i >= 0; i--) {
    const b = state.bounces[i]!;
    if (b.offset >= offset && b.offset < offset + size) {
      swiotlb.unmap(b.bounce, dir, attrs.skipCpuSync === true);
      state.bounces.splice(i, 1);
    }
  }
}

/**
 * dma_iova_unlink: unmaps `[offset, offset + size)` with one IOTLB invalidation, keeps the IOVA
 * allocated for reuse.
 */
export function dmaIovaUnlink(
  device: DmaDeviceInfo,
  state: DmaIovaState,
  offset: bigint,
  size: bigint,
  dir: DmaDirection,
  attrs: DmaAttrs = {},
): void {
  checkOwner(device, state);
  unlinkSlow(state, offset, size, dir, attrs);
  const granule = granuleOf(state.domain);
  const addr = state.addr + offset;
  const pad = addr & (granule - 1n);
  state.domain.unmap(addr - pad, alignUp(size + pad, granule));
}

/** dma_iova_free: gives the IOVA back without unmapping (nothing linked, or already unlinked). */
export function dmaIovaFree(device: DmaDeviceInfo, state: DmaIovaState): void {
  checkOwner(device, state);
  if (state.freed) fail('EINVAL', 'IOVA state was already freed');
  state.domain.freeIova(state.allocStart, state.allocSize);
  state.freed = true;
}

/**
 * dma_iova_destroy: unlink the first `mappedLen` bytes and free the IOVA in one go — strict domains
 * invalidate once, lazy ones queue the IOVA behind the next flush. Only the mapped length reaches
 * free_iova_fast, so after a partial link the allocation is cached under a smaller order.
 */
export function dmaIovaDestroy(
  device: DmaDeviceInfo,
  state: DmaIovaState,
  mappedLen: bigint,
  dir: DmaDirection,
  attrs: DmaAttrs = {},
): void {
  checkOwner(device, state);
  if (state.freed) fail('EINVAL', 'IOVA state was already destroyed');
  if (mappedLen === 0n) {
    dmaIovaFree(device, state);
    return;
  }
  unlinkSlow(state, 0n, mappedLen, dir, attrs);
  const granule = granuleOf(state.domain);
  const pad = state.addr & (granule - 1n);
  const size = alignUp(mappedLen + pad, granule);
  // __iommu_dma_iova_unlink with free_iova (dma-iommu.c, since the API came in 6.16): unmap as one
  // batch (synced only in strict mode), then iommu_dma_free_iova with the same granule-aligned
  // mapped length, not the allocation's. free_iova_fast files the range under that length's rcache
  // order, or, when it is too big to cache, free_iova drops the whole allocation.
  state.domain.dmaUnmap(state.allocStart, size);
  state.freed = true;
}
