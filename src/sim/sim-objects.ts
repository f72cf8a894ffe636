/**
 * The named things machine steps create and later steps use: user buffers, pins, DMA targets
 * (DMA-API mappings and IOMMUFD imports: a device-visible DMA range list), dma-bufs and RDMA MRs.
 * Each is a class so the object store can check kinds with instanceof.
 */
import { type DmaRangeList, fail, type PhyrList } from '../core/index.ts';
import type { DmaBuf } from '../dmabuf/index.ts';
import type { MmStruct, PinnedPageArray, PinnedPhyrs } from '../mm/index.ts';
import type { IbMr, RdmaContext } from '../rdma/index.ts';
import type { DesignPath } from './report.ts';

/** User memory: [va, va + length) of the scenario's address space. */
export class SimBuffer {
  constructor(
    readonly mm: MmStruct,
    readonly va: bigint,
    readonly length: bigint,
    readonly backing: string,
  ) {}
}

/** A pin of (part of) a buffer, in one design's form. */
export class SimPin {
  released = false;
  constructor(
    readonly buffer: SimBuffer,
    readonly offset: bigint,
    readonly length: bigint,
    readonly via: DesignPath,
    readonly phyrs: PinnedPhyrs | undefined,
    readonly pages: PinnedPageArray | undefined,
  ) {}
}

/** A device range list exported as a dma-buf (a BAR range through vfio-pci). */
export class SimDmabuf {
  constructor(
    readonly buf: DmaBuf,
    readonly device: string,
    readonly phys: PhyrList,
  ) {}
}

/** Something a device reaches by DMA address: a DMA-API mapping or an IOMMUFD import. */
export class DmaTarget {
  released = false;
  constructor(
    readonly what: string,
    readonly via: DesignPath,
    readonly dma: DmaRangeList,
    /** Offset of DMA byte 0 in the buffer (or dma-buf) it maps: patterns are buffer-relative. */
    readonly bufferOffset: bigint,
    private readonly releaseFn: () => void,
    readonly sync?: (forCpu: boolean) => void,
  ) {}

  release(): void {
    if (this.released) fail('EINVAL', `${this.what} is already unmapped`);
    this.releaseFn();
    this.released = true;
  }
}

/** An RDMA memory region and the context (mkey table) of its HCA. */
export class SimMr {
  released = false;
  constructor(
    readonly context: RdmaContext,
    readonly mr: IbMr,
  ) {}
}

export function isBuffer(v: unknown): v is SimBuffer {
  return v instanceof SimBuffer;
}
export function isPin(v: unknown): v is SimPin {
  return v instanceof SimPin;
}
export function isDmabuf(v: unknown): v is SimDmabuf {
  return v instanceof SimDmabuf;
}
export function isTarget(v: unknown): v is DmaTarget {
  return v instanceof DmaTarget;
}
export function isMr(v: unknown): v is SimMr {
  return v instanceof SimMr;
}
