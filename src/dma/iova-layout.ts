/**
 * IOVA layouts for linking a run of ranges into one dma_iova_state (the physr map's `layout` attr).
 *
 *  - `packed` (default): the ranges back to back from offset 0, as every dma_iova_link user in the
 *    kernel does. A 2M folio then lands 2M-aligned in the IOVA only by luck, so iommu_pgsize
 *    (drivers/iommu/iommu.c) must map it with 512 4K leaves.
 *  - `aligned`: each range is linked at the first offset where its IOVA is congruent to its physical
 *    address modulo the largest page size it can use, leaving unlinked gaps. iommu_pgsize can then
 *    pick 2M/1G leaves. Cost: the device sees one DMA range per gap-separated run (more SGL/PRP
 *    descriptors), the IOVA allocation is larger, and teardown is one dma_iova_unlink per run (each
 *    with its own IOTLB sync) plus dma_iova_free, because iommu_unmap stops at the first hole.
 * Only the kernel's two-step API is used (link at chosen offsets), so this is what a driver could do
 * with today's kernel.
 */
import { alignUp } from '../core/index.ts';
import type { DmaDeviceInfo } from './device.ts';
import { type DmaIovaState, dmaIovaFree, dmaIovaUnlink } from './iova-api.ts';
import type { DmaAttrs, DmaDirection, IovaLayout } from './types.ts';

export const IOVA_LAYOUTS: readonly IovaLayout[] = ['packed', 'aligned'];

/** One range to place: its physical address and length. */
export interface LayoutRange {
  readonly address: bigint;
  readonly length: bigint;
}

/** Where each range goes (byte offsets from the state's first byte) and the IOVA bytes needed. */
export interface IovaLayoutPlan {
  readonly offsets: readonly bigint[];
  readonly size: bigint;
}

/** A stretch of linked bytes in an IOVA state. */
export interface LinkedRun {
  readonly offset: bigint;
  readonly size: bigint;
}

/**
 * The largest page size (from the domain's sizes, largest first) a range holds a whole aligned page
 * of; the granule when none is larger.
 */
export function largestUsablePageSize(
  address: bigint,
  length: bigint,
  pageSizesDescending: readonly bigint[],
  granule: bigint,
): bigint {
  for (const size of pageSizesDescending) {
    if (size <= granule) break;
    if (alignUp(address, size) + size <= address + length) return size;
  }
  return granule;
}

/** `a` modulo `m` in [0, m) for any sign of `a`. */
function modPositive(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

/**
 * Plans the aligned layout for an IOVA whose byte 0 is at `base`. The first range stays at offset 0
 * when it starts mid-granule (dma_iova_link allows a granule offset only there); every other range
 * goes at the first offset at or after the previous range's end where `base + offset ≡ address`
 * modulo its largest usable page size. Ranges must already obey dma_iova_link's granule rules.
 */
export function planAlignedLayout(
  ranges: readonly LayoutRange[],
  base: bigint,
  pageSizesDescending: readonly bigint[],
  granule: bigint,
): IovaLayoutPlan {
  const offsets: bigint[] = [];
  let cursor = 0n;
  for (let i = 0; i < ranges.length; i++) {
    const r = ranges[i]!;
    let offset = cursor;
    if (i > 0 || (r.address & (granule - 1n)) === 0n) {
      const page = largestUsablePageSize(r.address, r.length, pageSizesDescending, granule);
      offset = cursor + modPositive(r.address - base - cursor, page);
    }
    offsets.push(offset);
    cursor = offset + r.length;
  }
  return { offsets, size: cursor };
}

/** The packed layout: back to back from offset 0. */
export function planPackedLayout(ranges: readonly LayoutRange[]): IovaLayoutPlan {
  const offsets: bigint[] = [];
  let cursor = 0n;
  for (const r of ranges) {
    offsets.push(cursor);
    cursor += r.length;
  }
  return { offsets, size: cursor };
}

/** Merges linked stretches (offset order) into maximal runs without gaps. */
export function linkedRunsOf(stretches: readonly LinkedRun[]): LinkedRun[] {
  // Map paths record stretches in offset order already: sort only when they are not.
  let ordered = true;
  for (let i = 1; i < stretches.length && ordered; i++) {
    if (stretches[i]!.offset < stretches[i - 1]!.offset) ordered = false;
  }
  const sorted = ordered
    ? stretches
    : [...stretches].sort((a, b) => (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0));
  const out: LinkedRun[] = [];
  for (const s of sorted) {
    const last = out.at(-1);
    if (last !== undefined && last.offset + last.size === s.offset) {
      out[out.length - 1] = { offset: last.offset, size: last.size + s.size };
    } else {
      out.push(s);
    }
  }
  return out;
}

/** Whether the runs are exactly `[0, size)`: then one dma_iova_destroy undoes them. */
export function coversWholeIova(runs: readonly LinkedRun[], size: bigint): boolean {
  return runs.length === 1 && runs[0]!.offset === 0n && runs[0]!.size === size;
}

/**
 * Tears down a gapped IOVA with the two-step API: one dma_iova_unlink per linked run (iommu_unmap
 * stops at the first unmapped entry, so dma_iova_destroy over the gaps would unmap only the first
 * run), then dma_iova_free for the whole allocation.
 */
export function dmaIovaReleaseRuns(
  device: DmaDeviceInfo,
  state: DmaIovaState,
  runs: readonly LinkedRun[],
  dir: DmaDirection,
  attrs: DmaAttrs,
): void {
  for (const run of runs) dmaIovaUnlink(device, state, run.offset, run.size, dir, attrs);
  dmaIovaFree(device, state);
}
