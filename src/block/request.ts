/**
 * A block request as Linux 7.1 holds it for DMA: one bio's `bio_vec` array (struct bio_vec: page
 * pointer, length, offset — 16 bytes each, include/linux/bvec.h) plus the request's phys_gap_bit, the
 * lowest set bit of every seam between its bvecs (bio_split_io_at and bvec_seg_gap, block/blk-merge.c;
 * copied to rq->phys_gap_bit, include/linux/blk-mq.h). That bit is all the block layer remembers
 * about alignment when it later decides whether one IOVA can hold the whole request.
 */
import { fail, formatHex, PAGE_SIZE, type PhyrList, UINT_MAX } from '../core/index.ts';
import type { DmaDirection } from '../dma/index.ts';
import { type PciTopology, p2pdmaProviderOf } from '../platform/index.ts';

/** sizeof(struct bio_vec) on 64-bit: bv_page (8) + bv_len (4) + bv_offset (4). */
export const BIO_VEC_BYTES = 16;

/** struct bio_vec, by the physical address of its first byte (bvec_phys). */
export interface BioVec {
  readonly phys: bigint;
  /** bv_len: an unsigned int. */
  readonly len: number;
}

/** The queue limits blk_map_iter_next reads (struct queue_limits). */
export interface QueueLimits {
  /** max_segment_size. NVMe PCI: UINT_MAX (it sets a virt boundary; drivers/nvme/host/pci.c). */
  readonly maxSegmentSize: bigint;
  /** seg_boundary_mask. Default BLK_SEG_BOUNDARY_MASK (4 GiB - 1, block/blk-settings.c). */
  readonly segBoundaryMask: bigint;
}

export const NVME_QUEUE_LIMITS: QueueLimits = {
  maxSegmentSize: BigInt(UINT_MAX),
  segBoundaryMask: 0xffff_ffffn,
};

export interface BlkRequest {
  readonly bvecs: readonly BioVec[];
  /** rq->phys_gap_bit: ffs of the OR of every seam (0 when no seam has a set bit). */
  readonly physGapBit: number;
  /** blk_rq_payload_bytes. */
  readonly payloadBytes: bigint;
  /** rq_dma_dir: a write goes TO_DEVICE, a read FROM_DEVICE. */
  readonly dir: DmaDirection;
  readonly limits: QueueLimits;
}

/** The offset of an address in its page (bv_offset for a bvec that starts on that page). */
function pageOffset(phys: bigint): bigint {
  return phys & (PAGE_SIZE - 1n);
}

/** ffs(): 1 + the index of the lowest set bit, 0 for 0. */
function ffs(value: bigint): number {
  if (value === 0n) return 0;
  let bit = 1;
  let v = value;
  while ((v & 1n) === 0n) {
    v >>= 1n;
    bit++;
  }
  return bit;
}

/**
 * The gap bits of a bvec array as bio_split_io_at gathers them: for each seam, the next bvec's page
 * offset OR the previous one's page offset plus its length (bvec_seg_gap); then ffs of the OR.
 */
export function physGapBitOf(bvecs: readonly BioVec[]): number {
  let gaps = 0n;
  for (let i = 1; i < bvecs.length; i++) {
    const prev = bvecs[i - 1]!;
    gaps |= pageOffset(bvecs[i]!.phys) | (pageOffset(prev.phys) + BigInt(prev.len));
  }
  return ffs(gaps);
}

/** req_phys_gap_mask: every bit from phys_gap_bit - 1 upwards (all bits clear when the bit is 0). */
export function reqPhysGapMask(physGapBit: number): bigint {
  if (physGapBit === 0) return 0n;
  return ~((1n << BigInt(physGapBit - 1)) - 1n) & 0xffff_ffff_ffff_ffffn;
}

/**
 * One bio built from physical ranges, one bvec a range (bio_add_page merges contiguous pages into a
 * multi-page bvec, so a contiguous range is one bvec). A bvec is at most UINT_MAX bytes. A bio never
 * mixes P2P memory of different providers, or P2P with host memory (bio_add_page refuses a page whose
 * pgmap differs: zone_device_pages_have_same_pgmap) — EINVAL here.
 */
export function blkRequestFromPhyrs(
  topology: PciTopology,
  list: PhyrList,
  dir: DmaDirection,
  limits: QueueLimits = NVME_QUEUE_LIMITS,
): BlkRequest {
  if (list.count === 0) fail('EINVAL', 'a request with no data has nothing to map');
  const bvecs: BioVec[] = [];
  let owner: string | undefined;
  list.forEachRange((address, length, i) => {
    const provider = p2pdmaProviderOf(topology, address);
    const key = provider === undefined ? 'host' : `${provider.owner}/${provider.bar}`;
    if (i === 0) owner = key;
    else if (key !== owner) {
      fail(
        'EINVAL',
        `range ${i} at ${formatHex(address)} is ${key === 'host' ? 'host memory' : `BAR ${key}`} but the bio holds ${owner === 'host' ? 'host memory' : `BAR ${owner}`}: bio_add_page never mixes pgmaps`,
      );
    }
    let at: bigint = address;
    let left = length;
    while (left > 0n) {
      const take = left > BigInt(UINT_MAX) ? BigInt(UINT_MAX) & ~(PAGE_SIZE - 1n) : left;
      bvecs.push({ phys: at, len: Number(take) });
      at += take;
      left -= take;
    }
  });
  return { bvecs, physGapBit: physGapBitOf(bvecs), payloadBytes: list.totalLength, dir, limits };
}
