/**
 * What RDMA memory registration needs from the layers below, as narrow interfaces so an RDMA
 * device can be built over the DMA layer (src/dma: map a PhyrList, or an sg table on the legacy
 * path) and a DMA engine (src/devices: a NIC that reads and writes by DMA address). A
 * `DmaCapableDevice` from src/devices satisfies {@link RdmaDmaEngine} as it is.
 */
import type { DmaRangeList, PhyrList, SgTable } from '../core/index.ts';
import type { Bdf } from '../platform/index.ts';

/** A live DMA mapping of a PhyrList for the device. */
export interface RdmaDmaMapping {
  readonly dma: DmaRangeList;
  unmap(): void;
}

export interface RdmaDmaOps {
  /** dma_map of a PhyrList, bidirectional (the physr path). `mmio` for BAR memory (P2P). */
  mapPhyrs(list: PhyrList, options: { mmio: boolean }): RdmaDmaMapping;
  /** ib_dma_map_sgtable_attrs (legacy): fills the table's DMA fields and nents; returns the unmap. */
  mapSgTable(table: SgTable): { unmap(): void };
  /** dma_get_max_seg_size of the device (what ib_umem_get passes as max_segment). */
  readonly maxSegmentSize: bigint;
}

/** The device's DMA engine: transfers by DMA address, faulting as the fabric decides. */
export interface RdmaDmaEngine {
  dmaWrite(dmaAddress: bigint, bytes: Uint8Array): unknown;
  dmaRead(dmaAddress: bigint, length: number): Uint8Array;
}

/** An RDMA device (struct ib_device, as much of it as registration uses). */
export interface RdmaDevice {
  readonly name: string;
  readonly bdf: Bdf | undefined;
  /** Page sizes the HCA's MR page tables support (a bit per size: 1 << 12 for 4K, ...). */
  readonly pgszBitmap: bigint;
  readonly dma: RdmaDmaOps;
  readonly engine: RdmaDmaEngine;
}

// enum ib_access_flags (include/rdma/ib_verbs.h).
export const IB_ACCESS_LOCAL_WRITE = 1;
export const IB_ACCESS_REMOTE_WRITE = 2;
export const IB_ACCESS_REMOTE_READ = 4;
export const IB_ACCESS_REMOTE_ATOMIC = 8;
/** IB_ACCESS_ON_DEMAND and IB_ACCESS_HUGETLB (include/rdma/ib_verbs.h, IB_UVERBS_ACCESS_*). */
export const IB_ACCESS_ON_DEMAND = 1 << 6;
export const IB_ACCESS_HUGETLB = 1 << 7;

/** ib_access_writable: the pages must be pinned for write. */
export function ibAccessWritable(access: number): boolean {
  return (access & (IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE | IB_ACCESS_REMOTE_ATOMIC)) !== 0;
}
