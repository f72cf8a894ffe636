/**
 * The Linux 7.1 block-layer DMA iterator (block/blk-mq-dma.c, include/linux/blk-mq-dma.h; 6.17):
 * blk_rq_dma_map_iter_start / _next walk a request's bvecs as merged physical segments
 * (blk_map_iter_next) and map them one of three ways, decided once, on the first segment:
 *  - P2P by bus address (pci_p2pdma_state says BUS_ADDR): every segment gets its bus address;
 *  - one IOVA for the whole request when blk_can_dma_map_iova (no gap bit of the request falls inside
 *    the merge boundary) and dma_iova_try_alloc succeeds: every segment linked, one dma_iova_sync;
 *  - otherwise one dma_map_phys per segment.
 * Through-host-bridge P2P is mapped like host memory with DMA_ATTR_MMIO. Unmap (blk_rq_dma_unmap):
 * nothing for bus addresses, dma_iova_destroy for the IOVA, else the caller unmaps each segment.
 */
import { fail, formatHex, isPhysrError } from '../core/index.ts';
import {
  type DmaAttrs,
  type DmaDeviceInfo,
  type DmaIovaState,
  type DmaMapping,
  dmaGetMergeBoundary,
  dmaIovaDestroy,
  dmaIovaLink,
  dmaIovaSync,
  dmaIovaTryAlloc,
  dmaUnmap,
  mapPhys,
} from '../dma/index.ts';
import {
  type P2pdmaMapState,
  type P2pdmaMapTypeOrNone,
  p2pdmaMapState,
  pciP2pdmaBusAddrMap,
  pciP2pdmaState,
} from '../platform/index.ts';
import { type BlkRequest, reqPhysGapMask } from './request.ts';

/** struct phys_vec: one merged physical segment. */
export interface PhysVec {
  readonly paddr: bigint;
  readonly len: bigint;
}

/** struct blk_map_iter: where in the bvec array the walk is. */
interface BlkMapIter {
  idx: number;
  /** bi_bvec_done: bytes of bvecs[idx] already consumed. */
  done: number;
}

/** get_max_segment_size (block/blk.h): up to the segment boundary, at most max_segment_size. */
function maxSegmentAt(req: BlkRequest, paddr: bigint, len: bigint): bigint {
  const { segBoundaryMask, maxSegmentSize } = req.limits;
  const toBoundary = segBoundaryMask - (segBoundaryMask & paddr);
  const limit = (toBoundary < maxSegmentSize - 1n ? toBoundary : maxSegmentSize - 1n) + 1n;
  return len < limit ? len : limit;
}

/** biovec_phys_mergeable (block/blk.h): contiguous, and the merge stays inside one boundary window. */
function physMergeable(req: BlkRequest, paddr: bigint, len: bigint, next: PhysVec): boolean {
  if (paddr + len !== next.paddr) return false;
  const mask = req.limits.segBoundaryMask;
  return (paddr | mask) === ((next.paddr + next.len - 1n) | mask);
}

/**
 * blk_map_iter_next: the next segment — the current bvec (clipped at the queue's segment limit),
 * grown by every following whole bvec that is physically contiguous and fits the limit.
 */
function blkMapIterNext(req: BlkRequest, iter: BlkMapIter): PhysVec | undefined {
  const bvecs = req.bvecs;
  if (iter.idx >= bvecs.length) return undefined;
  const first = bvecs[iter.idx]!;
  const paddr = first.phys + BigInt(iter.done);
  const maxSize = maxSegmentAt(req, paddr, 0xffff_ffffn);
  const remaining = BigInt(first.len - iter.done);
  let len = remaining < maxSize ? remaining : maxSize;
  iter.done += Number(len);
  if (iter.done === first.len) {
    iter.idx++;
    iter.done = 0;
  }
  // Only at a bvec boundary may the next bvec merge in.
  while (iter.done === 0 && iter.idx < bvecs.length) {
    const next = bvecs[iter.idx]!;
    const nextVec = { paddr: next.phys, len: BigInt(next.len) };
    if (len + nextVec.len > maxSize || !physMergeable(req, paddr, len, nextVec)) break;
    len += nextVec.len;
    iter.idx++;
  }
  return { paddr, len };
}

/** The physical segments of a request, as blk_map_iter_next yields them. */
export function blkRqPhysSegments(req: BlkRequest): PhysVec[] {
  const iter: BlkMapIter = { idx: 0, done: 0 };
  const out: PhysVec[] = [];
  for (let vec = blkMapIterNext(req, iter); vec !== undefined; vec = blkMapIterNext(req, iter)) out.push(vec);
  return out;
}

/** blk_can_dma_map_iova: no gap bit of the request lies inside the device's merge boundary. */
export function blkCanDmaMapIova(req: BlkRequest, device: DmaDeviceInfo): boolean {
  return (reqPhysGapMask(req.physGapBit) & dmaGetMergeBoundary(device)) === 0n;
}

/** How blk_rq_dma_map_iter_start chose to map the request. */
export type BlkDmaPath = 'iova' | 'per-segment' | 'bus-address';

/** What the iterator handed the driver, segment by segment (iter->addr, iter->len). */
export interface BlkDmaSegment {
  readonly addr: bigint;
  readonly len: bigint;
}

/** The state a driver keeps between map and unmap (the nvme_iod fields), plus what the model needs. */
export interface BlkDmaMapping {
  readonly device: DmaDeviceInfo;
  readonly request: BlkRequest;
  readonly path: BlkDmaPath;
  /** iter->p2pdma.map for the request (decided on its first segment). */
  readonly p2p: P2pdmaMapTypeOrNone;
  /** DMA_ATTR_MMIO for through-host-bridge P2P: the attribute carries P2P down, not the ranges. */
  readonly attrs: DmaAttrs;
  /** The dma_iova_state when one IOVA holds the request. */
  readonly state: DmaIovaState | undefined;
  /** Merged physical segments (what each map call or link was given). */
  readonly physSegments: readonly PhysVec[];
  readonly segments: readonly BlkDmaSegment[];
  /** The per-segment dma_map_phys handles (per-segment path only), for the model's unmap. */
  readonly perSegment: readonly DmaMapping[];
  unmapped: boolean;
}

/** errno_to_blk_status / blk_status_to_errno, said in the message so the block status shows. */
function blkStatusError(status: 'BLK_STS_INVAL' | 'BLK_STS_RESOURCE', why: string): never {
  fail(status === 'BLK_STS_INVAL' ? 'EINVAL' : 'ENOMEM', `${status}: ${why}`);
}

/** blk_rq_dma_map_iova: link every segment into the one IOVA, then one sync; destroy on failure. */
function mapIova(
  device: DmaDeviceInfo,
  req: BlkRequest,
  state: DmaIovaState,
  vecs: readonly PhysVec[],
  attrs: DmaAttrs,
): BlkDmaSegment[] {
  let mapped = 0n;
  try {
    for (const vec of vecs) {
      dmaIovaLink(device, state, vec.paddr, mapped, vec.len, req.dir, attrs);
      mapped += vec.len;
    }
    dmaIovaSync(device, state, 0n, mapped);
  } catch (error) {
    dmaIovaDestroy(device, state, mapped, req.dir, attrs);
    throw error;
  }
  return [{ addr: state.addr, len: state.size }];
}

/** blk_dma_map_direct for every segment; on a failure the driver unwinds what it mapped. */
function mapPerSegment(
  device: DmaDeviceInfo,
  req: BlkRequest,
  vecs: readonly PhysVec[],
  attrs: DmaAttrs,
): { segments: BlkDmaSegment[]; handles: DmaMapping[] } {
  const handles: DmaMapping[] = [];
  try {
    for (const vec of vecs) handles.push(mapPhys(device, vec.paddr, vec.len, req.dir, attrs));
  } catch (error) {
    for (const h of handles) dmaUnmap(h);
    if (isPhysrError(error)) blkStatusError('BLK_STS_RESOURCE', `dma_map_phys failed: ${error.message}`);
    throw error;
  }
  return { segments: handles.map((h) => ({ addr: h.dma.addressAt(0), len: h.dma.lengthAt(0) })), handles };
}

/**
 * blk_rq_dma_map_iter_start followed by blk_rq_dma_map_iter_next until it returns false, as a
 * driver's map loop runs them (nvme_map_data): the whole request mapped.
 */
export function blkRqDmaMap(device: DmaDeviceInfo, req: BlkRequest): BlkDmaMapping {
  const vecs = blkRqPhysSegments(req);
  const first = vecs[0];
  if (first === undefined) fail('EINVAL', 'the request has no segment to map');
  const p2pState: P2pdmaMapState = p2pdmaMapState();
  const topology = device.machine.platform.topology;
  const p2p = pciP2pdmaState(p2pState, topology, device.bdf, first.paddr);
  const base = { device, request: req, p2p, physSegments: vecs, unmapped: false };
  if (p2p === 'not-supported') {
    blkStatusError(
      'BLK_STS_INVAL',
      `P2P from ${device.bdf} to ${p2pState.mem!.owner} BAR at ${formatHex(first.paddr)} is not supported`,
    );
  }
  if (p2p === 'bus-address') {
    const provider = p2pState.mem!;
    const segments = vecs.map((v) => ({ addr: pciP2pdmaBusAddrMap(provider, v.paddr), len: v.len }));
    return { ...base, path: 'bus-address', attrs: {}, state: undefined, segments, perSegment: [] };
  }
  const attrs: DmaAttrs = p2p === 'through-host-bridge' ? { mmio: true } : {};
  if (blkCanDmaMapIova(req, device)) {
    const state = dmaIovaTryAlloc(device, first.paddr, req.payloadBytes);
    if (state !== undefined) {
      const segments = mapIova(device, req, state, vecs, attrs);
      return { ...base, path: 'iova', attrs, state, segments, perSegment: [] };
    }
  }
  const { segments, handles } = mapPerSegment(device, req, vecs, attrs);
  return { ...base, path: 'per-segment', attrs, state: undefined, segments, perSegment: handles };
}

/**
 * blk_rq_dma_unmap and the driver's per-segment loop: nothing for bus addresses, dma_iova_destroy of
 * the mapped length for the IOVA, else each segment by its DMA address (dma_unmap_phys).
 */
export function blkRqDmaUnmap(mapping: BlkDmaMapping): void {
  if (mapping.unmapped) fail('EINVAL', `request on ${mapping.device.bdf} was already unmapped`);
  mapping.unmapped = true;
  if (mapping.path === 'bus-address') return;
  if (mapping.state !== undefined) {
    dmaIovaDestroy(mapping.device, mapping.state, mapping.state.size, mapping.request.dir, mapping.attrs);
    return;
  }
  for (const h of mapping.perSegment) dmaUnmap(h, { direction: mapping.request.dir, type: 'phys' });
}
