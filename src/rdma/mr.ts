/**
 * Memory regions (ib_reg_user_mr / ib_dereg_mr as a driver such as mlx5 implements them): an MR
 * over a umem gets an lkey/rkey, an IOVA (the user VA unless given), the best page size its HCA
 * supports for that layout (ib_umem_find_best_pgsz) and its page list (the MTT: one DMA address per
 * block, from rdma_umem_for_each_dma_block). Remote accesses name (rkey, iova, length); the HCA
 * checks key, bounds and access rights, translates through the page list and does the DMA.
 *
 * A dma-buf MR (dynamic) has its page list zapped on move_notify and rebuilt on the next access,
 * as mlx5's dma-buf page-fault path does; a revoked buffer cannot be mapped again, so the access
 * fails.
 */
import { DmaRangeList, fail, formatHex } from '../core/index.ts';
import { ibUmemFindBestPgsz, ibUmemNumDmaBlocks, umemDmaBlocks } from './best-pgsz.ts';
import {
  IB_ACCESS_LOCAL_WRITE,
  IB_ACCESS_REMOTE_ATOMIC,
  IB_ACCESS_REMOTE_READ,
  IB_ACCESS_REMOTE_WRITE,
  type RdmaDevice,
} from './device.ts';
import type { Umem } from './umem.ts';
import { DmabufUmem } from './umem-dmabuf.ts';

export interface IbMr {
  readonly lkey: number;
  readonly rkey: number;
  readonly iova: bigint;
  readonly length: bigint;
  readonly access: number;
  readonly umem: Umem;
  /** Chosen page size (bytes). */
  readonly pageSize: bigint;
  /** Entries the page list has (ib_umem_num_dma_blocks). */
  readonly numBlocks: number;
}

interface MrState extends IbMr {
  /** The MTT; undefined while zapped (a dma-buf MR after move_notify). */
  pages: BigUint64Array | undefined;
  valid: boolean;
}

/** The keys of one device's MRs (the mkey table). */
export class RdmaContext {
  readonly device: RdmaDevice;
  private readonly mrs = new Map<number, MrState>();
  private nextIndex = 1;

  constructor(device: RdmaDevice) {
    this.device = device;
  }

  /**
   * ib_reg_user_mr: checks the access flags (ib_check_mr_access: remote write or atomic needs local
   * write, EINVAL), chooses the page size (EINVAL when ibUmemFindBestPgsz gives 0) and builds the
   * page list. `iova` defaults to the umem's address.
   */
  registerMr(umem: Umem, access: number, options: { iova?: bigint } = {}): IbMr {
    if (
      (access & (IB_ACCESS_REMOTE_WRITE | IB_ACCESS_REMOTE_ATOMIC)) !== 0 &&
      (access & IB_ACCESS_LOCAL_WRITE) === 0
    ) {
      fail('EINVAL', 'remote write or atomic access needs IB_ACCESS_LOCAL_WRITE (ib_check_mr_access)');
    }
    if ((access & (IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE)) !== 0 && !umem.writable) {
      fail('EACCES', 'writable MR over memory pinned read-only');
    }
    const iova = options.iova ?? umem.address;
    const dmabuf = umem instanceof DmabufUmem ? umem : undefined;
    const ranges = dmabuf !== undefined ? dmabuf.mapPages() : umem.mappedRanges();
    // A dynamic dma-buf MR uses PAGE_SIZE: the layout may change at every re-map
    // (mlx5_umem_dmabuf_default_pgsz, drivers/infiniband/hw/mlx5/mlx5_ib.h).
    const pageSize =
      dmabuf !== undefined && !dmabuf.pinnedMode
        ? (this.device.pgszBitmap & 0x1000n) !== 0n
          ? 0x1000n
          : 0n
        : ibUmemFindBestPgsz(
            { address: umem.address, length: umem.length, dma: ranges },
            this.device.pgszBitmap,
            iova,
          );
    if (pageSize === 0n) {
      fail(
        'EINVAL',
        `no page size in ${formatHex(this.device.pgszBitmap)} can describe this MR at IOVA ${formatHex(iova)}`,
      );
    }
    const numBlocks = ibUmemNumDmaBlocks(iova, umem.length, pageSize);
    const pages = umemDmaBlocks(ranges, pageSize, numBlocks);
    const index = this.nextIndex++;
    // mlx5-style key: mkey index in the high bits, a variant byte low.
    const key = ((index << 8) | (index & 0xff)) >>> 0;
    const mr: MrState = {
      lkey: key,
      rkey: key,
      iova,
      length: umem.length,
      access,
      umem,
      pageSize,
      numBlocks,
      pages,
      valid: true,
    };
    this.mrs.set(key, mr);
    if (dmabuf !== undefined) {
      dmabuf.onInvalidate = () => {
        mr.pages = undefined;
      };
    }
    return mr;
  }

  /** ib_dereg_mr: the key stops working; the umem is released. */
  deregisterMr(mr: IbMr): void {
    const state = this.mrs.get(mr.rkey);
    if (state === undefined || state !== mr)
      fail('EINVAL', `MR with key ${formatHex(BigInt(mr.rkey))} is not registered`);
    this.mrs.delete(mr.rkey);
    state.valid = false;
    state.umem.release();
  }

  /** The page list now (undefined while a dma-buf MR is zapped). */
  pageList(mr: IbMr): BigUint64Array | undefined {
    return this.state(mr.rkey).pages;
  }

  /** The DMA address the HCA uses for `iova` (fails as an access would). */
  translate(rkey: number, iova: bigint, length: bigint, access: number): DmaRangeList {
    const mr = this.checkAccess(rkey, iova, length, access);
    return this.translateChecked(mr, iova, length);
  }

  /** RDMA WRITE from a peer into (rkey, iova): the HCA DMA-writes the payload. */
  rdmaWrite(rkey: number, iova: bigint, data: Uint8Array): void {
    const mr = this.checkAccess(rkey, iova, BigInt(data.length), IB_ACCESS_REMOTE_WRITE);
    let offset = 0;
    this.translateChecked(mr, iova, BigInt(data.length)).forEachRange((address, length) => {
      const n = Number(length);
      this.device.engine.dmaWrite(address, data.subarray(offset, offset + n));
      offset += n;
    });
  }

  /** RDMA READ by a peer from (rkey, iova). */
  rdmaRead(rkey: number, iova: bigint, length: number): Uint8Array {
    const mr = this.checkAccess(rkey, iova, BigInt(length), IB_ACCESS_REMOTE_READ);
    const out = new Uint8Array(length);
    let offset = 0;
    this.translateChecked(mr, iova, BigInt(length)).forEachRange((address, len) => {
      out.set(this.device.engine.dmaRead(address, Number(len)), offset);
      offset += Number(len);
    });
    return out;
  }

  private state(rkey: number): MrState {
    const mr = this.mrs.get(rkey);
    if (mr === undefined || !mr.valid)
      fail('EACCES', `rkey ${formatHex(BigInt(rkey))} names no valid MR (remote access error)`);
    return mr;
  }

  /** Key, bounds and rights, as the HCA checks them before any DMA (a remote access error). */
  private checkAccess(rkey: number, iova: bigint, length: bigint, need: number): MrState {
    const mr = this.state(rkey);
    if ((mr.access & need) === 0) {
      fail(
        'EACCES',
        `MR ${formatHex(BigInt(rkey))} does not allow ${need === IB_ACCESS_REMOTE_WRITE ? 'remote write' : 'remote read'}`,
      );
    }
    if (length < 0n || iova < mr.iova || iova + length > mr.iova + mr.length) {
      fail(
        'EACCES',
        `access ${formatHex(iova)} + ${formatHex(length)} is outside MR ${formatHex(mr.iova)} + ${formatHex(mr.length)}`,
      );
    }
    return mr;
  }

  /** Through the page list (re-mapping a zapped dma-buf MR first); coalesces contiguous blocks. */
  private translateChecked(mr: MrState, iova: bigint, length: bigint): DmaRangeList {
    if (mr.pages === undefined) this.refault(mr);
    const pages = mr.pages!;
    const pgsz = mr.pageSize;
    const base = mr.iova & -pgsz;
    const parts: [bigint, bigint][] = [];
    let at = iova;
    const end = iova + length;
    while (at < end) {
      const index = Number((at - base) / pgsz);
      const inPage = (at - base) % pgsz;
      const take = bigMin(pgsz - inPage, end - at);
      const dma = pages[index]! + inPage;
      const last = parts[parts.length - 1];
      if (last !== undefined && last[0] + last[1] === dma) last[1] += take;
      else parts.push([dma, take]);
      at += take;
    }
    return DmaRangeList.fromRanges(parts);
  }

  /** The dma-buf page-fault path: map the buffer again and rewrite the page list (ENODEV once revoked). */
  private refault(mr: MrState): void {
    const umem = mr.umem;
    if (!(umem instanceof DmabufUmem)) fail('EFAULT', 'MR has no page list');
    const ranges = umem.mapPages();
    mr.pages = umemDmaBlocks(ranges, mr.pageSize, mr.numBlocks);
  }
}

function bigMin(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
