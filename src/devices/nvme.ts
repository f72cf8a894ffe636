/**
 * NVMe data pointers built from a DmaRangeList, and a controller that executes read/write commands by
 * walking them through the routing model (the PRP list pages and SGL segments are themselves fetched
 * by DMA, as a real controller does).
 *
 * PRPs (include/linux/nvme.h, drivers/nvme/host/pci.c nvme_pci_setup_prps): PRP1 is the first data
 * address and may carry an offset into its controller page; every later entry names a whole page.
 * Up to one page after PRP1, PRP2 is that page; beyond that PRP2 points at a PRP list (a 256-byte
 * pool block for up to 32 entries, else a controller page). A full list page gives its last slot to a
 * pointer to the next list page and the entry that would have gone there moves to the new page.
 * So a list is expressible only when every range but the first starts on a page boundary and every
 * range but the last ends on one (the block layer's virt_boundary guarantees this for the kernel).
 *
 * SGLs (nvme_pci_setup_sgls, NVMe base spec "SGL Descriptor"): 16-byte descriptors {addr u64,
 * length u32, 3 reserved bytes, type = format << 4}. One range: the command holds a Data Block
 * descriptor. More: the command holds a (Last) Segment descriptor pointing at a segment of descriptors
 * in memory; a segment holds at most a page of descriptors, and a segment that is not the last ends
 * with a Segment/Last Segment descriptor pointing at the next one.
 */
import { type DmaRangeList, formatHex, PhysrError } from '../core/index.ts';
import { type Bdf, ByteStore } from '../platform/index.ts';
import { DmaCapableDevice } from './device.ts';
import type { DmaFabric } from './routing.ts';

/** NVME_CTRL_PAGE_SIZE: the kernel always programs CC.MPS for 4 KiB controller pages. */
export const NVME_CTRL_PAGE_SIZE = 4096;
/** The small dma_pool block the driver uses for short PRP lists and SGL segments (256 bytes). */
export const NVME_SMALL_POOL_SIZE = 256;
export const NVME_PRP_ENTRY_BYTES = 8;
export const NVME_SGL_DESC_BYTES = 16;

/** SGL descriptor formats (upper nibble of the type byte). */
export const NVME_SGL_FMT_DATA_DESC = 0x0;
export const NVME_SGL_FMT_SEG_DESC = 0x2;
export const NVME_SGL_FMT_LAST_SEG_DESC = 0x3;

/** Longest data block one SGL descriptor takes here (the length field is 32 bits). */
export const NVME_SGL_MAX_DATA_LEN = 0x8000_0000;

/** Memory the driver allocates for descriptors (dma_pool_alloc): CPU and device addresses. */
export interface DescriptorBuffer {
  readonly cpuAddress: bigint;
  readonly dmaAddress: bigint;
  readonly size: number;
}

/** dma_pool_alloc stand-in: blocks of `size` bytes aligned to `size`, device-visible at dmaAddress. */
export interface DescriptorAllocator {
  alloc(size: number): DescriptorBuffer;
}

export interface PrpListPage {
  readonly buffer: DescriptorBuffer;
  /** Entries as written: data page addresses, and a chain pointer in the last slot of a full page. */
  readonly entries: readonly bigint[];
}

export interface PrpSetup {
  readonly kind: 'prp';
  readonly prp1: bigint;
  /** 0, the second data page, or the DMA address of the first PRP list. */
  readonly prp2: bigint;
  readonly lists: readonly PrpListPage[];
  /** Data PRP entries including PRP1 (chain pointers excluded). */
  readonly dataEntries: number;
  /** Descriptor memory allocated (pool block sizes). */
  readonly descriptorBytes: number;
  readonly length: number;
}

export interface SglDescriptor {
  readonly address: bigint;
  readonly length: number;
  /** Format nibble: data, segment or last segment. */
  readonly format: number;
}

export interface SglSegment {
  readonly buffer: DescriptorBuffer;
  readonly descriptors: readonly SglDescriptor[];
}

export interface SglSetup {
  readonly kind: 'sgl';
  /** The descriptor in the command (dptr.sgl). */
  readonly sgl1: SglDescriptor;
  readonly segments: readonly SglSegment[];
  readonly dataDescriptors: number;
  readonly descriptorBytes: number;
  readonly length: number;
}

export type DataPointer = PrpSetup | SglSetup;

function payloadLength(list: DmaRangeList, length: number | undefined): number {
  const total = list.totalLength;
  const want = length ?? Number(total);
  if (!Number.isSafeInteger(want) || want <= 0 || BigInt(want) > total)
    throw new PhysrError('EINVAL', `NVMe payload of ${want} bytes does not fit a DMA list of ${total} bytes`);
  return want;
}

/** The list's ranges trimmed to the first `length` bytes. */
function payloadRanges(list: DmaRangeList, length: number): { address: bigint; length: bigint }[] {
  const out: { address: bigint; length: bigint }[] = [];
  let left = BigInt(length);
  for (let i = 0; i < list.count && left > 0n; i++) {
    const len = list.lengthAt(i) < left ? list.lengthAt(i) : left;
    out.push({ address: list.addressAt(i), length: len });
    left -= len;
  }
  return out;
}

/**
 * Why PRPs cannot express the list (undefined when they can): a range after the first must start on
 * a controller page, and a range before the last must end on one.
 */
export function prpIncompatibility(
  list: DmaRangeList,
  options: { length?: number; pageSize?: number } = {},
): string | undefined {
  const ps = BigInt(options.pageSize ?? NVME_CTRL_PAGE_SIZE);
  const ranges = payloadRanges(list, payloadLength(list, options.length));
  for (let i = 0; i < ranges.length; i++) {
    const r = ranges[i]!;
    if (i > 0 && r.address % ps !== 0n)
      return `range ${i} starts at ${formatHex(r.address)}, not on a ${ps}-byte controller page: only PRP1 may carry an offset`;
    if (i < ranges.length - 1 && (r.address + r.length) % ps !== 0n)
      return `range ${i} ends at ${formatHex(r.address + r.length)}, not on a controller page boundary, and more ranges follow`;
  }
  return undefined;
}

function writeU64(bytes: ByteStore, at: bigint, values: readonly bigint[]): void {
  const buf = new Uint8Array(values.length * 8);
  const view = new DataView(buf.buffer);
  for (let i = 0; i < values.length; i++) view.setBigUint64(i * 8, values[i]!, true);
  bytes.write(at, buf);
}

/**
 * nvme_pci_setup_prps: PRP1/PRP2 and the PRP list pages, written into memory by the CPU (`bytes`).
 * EINVAL when the list has a shape PRPs cannot express (use SGLs).
 */
export function setupPrps(
  list: DmaRangeList,
  alloc: DescriptorAllocator,
  bytes: ByteStore,
  options: { length?: number; pageSize?: number } = {},
): PrpSetup {
  const psNum = options.pageSize ?? NVME_CTRL_PAGE_SIZE;
  const ps = BigInt(psNum);
  const length = payloadLength(list, options.length);
  const bad = prpIncompatibility(list, options);
  if (bad !== undefined)
    throw new PhysrError('EINVAL', `PRPs cannot describe this DMA list: ${bad}; use SGLs`);
  const ranges = payloadRanges(list, length);
  const first = ranges[0]!;
  const prp1 = first.address;
  // Every data page after the one PRP1 starts in, in order.
  const pages: bigint[] = [];
  const firstPageEnd = (prp1 / ps + 1n) * ps;
  for (let i = 0; i < ranges.length; i++) {
    const r = ranges[i]!;
    let at = i === 0 ? firstPageEnd : r.address;
    const end = r.address + r.length;
    for (; at < end; at += ps) pages.push(at);
  }
  const base = { kind: 'prp' as const, prp1, dataEntries: 1 + pages.length, length };
  if (pages.length === 0) return { ...base, prp2: 0n, lists: [], descriptorBytes: 0 };
  if (pages.length === 1) return { ...base, prp2: pages[0]!, lists: [], descriptorBytes: 0 };

  const slots = psNum / NVME_PRP_ENTRY_BYTES;
  const smallEnough = pages.length <= NVME_SMALL_POOL_SIZE / NVME_PRP_ENTRY_BYTES;
  const lists: { buffer: DescriptorBuffer; entries: bigint[] }[] = [];
  let current = { buffer: alloc.alloc(smallEnough ? NVME_SMALL_POOL_SIZE : psNum), entries: [] as bigint[] };
  lists.push(current);
  for (const page of pages) {
    if (current.entries.length === slots) {
      // Full page: its last slot becomes the chain pointer; the displaced entry opens the next page.
      const next = { buffer: alloc.alloc(psNum), entries: [current.entries[slots - 1]!] };
      current.entries[slots - 1] = next.buffer.dmaAddress;
      lists.push(next);
      current = next;
    }
    current.entries.push(page);
  }
  for (const l of lists) writeU64(bytes, l.buffer.cpuAddress, l.entries);
  return {
    ...base,
    prp2: lists[0]!.buffer.dmaAddress,
    lists,
    descriptorBytes: lists.reduce((n, l) => n + l.buffer.size, 0),
  };
}

function encodeSgl(descriptors: readonly SglDescriptor[]): Uint8Array {
  const buf = new Uint8Array(descriptors.length * NVME_SGL_DESC_BYTES);
  const view = new DataView(buf.buffer);
  descriptors.forEach((d, i) => {
    view.setBigUint64(i * 16, d.address, true);
    view.setUint32(i * 16 + 8, d.length, true);
    view.setUint8(i * 16 + 15, d.format << 4);
  });
  return buf;
}

/** Decodes descriptors from segment bytes (the controller's side). */
export function decodeSgl(raw: Uint8Array): SglDescriptor[] {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: SglDescriptor[] = [];
  for (let at = 0; at + NVME_SGL_DESC_BYTES <= raw.length; at += NVME_SGL_DESC_BYTES)
    out.push({
      address: view.getBigUint64(at, true),
      length: view.getUint32(at + 8, true),
      format: view.getUint8(at + 15) >> 4,
    });
  return out;
}

/** nvme_pci_setup_sgls: the command's SGL descriptor and the segments in memory. */
export function setupSgls(
  list: DmaRangeList,
  alloc: DescriptorAllocator,
  bytes: ByteStore,
  options: { length?: number; pageSize?: number } = {},
): SglSetup {
  const psNum = options.pageSize ?? NVME_CTRL_PAGE_SIZE;
  const length = payloadLength(list, options.length);
  const data: SglDescriptor[] = [];
  for (const r of payloadRanges(list, length)) {
    for (let off = 0n; off < r.length; off += BigInt(NVME_SGL_MAX_DATA_LEN)) {
      const left = r.length - off;
      const len = left < BigInt(NVME_SGL_MAX_DATA_LEN) ? Number(left) : NVME_SGL_MAX_DATA_LEN;
      data.push({ address: r.address + off, length: len, format: NVME_SGL_FMT_DATA_DESC });
    }
  }
  const base = { kind: 'sgl' as const, dataDescriptors: data.length, length };
  if (data.length === 1) return { ...base, sgl1: data[0]!, segments: [], descriptorBytes: 0 };

  // Split into segments: a page of descriptors each, the last slot of a non-final one is the link.
  const perPage = psNum / NVME_SGL_DESC_BYTES;
  const groups: SglDescriptor[][] = [];
  let rest = data;
  while (rest.length > perPage) {
    groups.push(rest.slice(0, perPage - 1));
    rest = rest.slice(perPage - 1);
  }
  groups.push(rest);
  const small = groups.length === 1 && data.length <= NVME_SMALL_POOL_SIZE / NVME_SGL_DESC_BYTES;
  const buffers = groups.map(() => alloc.alloc(small ? NVME_SMALL_POOL_SIZE : psNum));
  const segments: SglSegment[] = [];
  const pointerTo = (i: number): SglDescriptor => ({
    address: buffers[i]!.dmaAddress,
    length: (groups[i]!.length + (i < groups.length - 1 ? 1 : 0)) * NVME_SGL_DESC_BYTES,
    format: i === groups.length - 1 ? NVME_SGL_FMT_LAST_SEG_DESC : NVME_SGL_FMT_SEG_DESC,
  });
  groups.forEach((g, i) => {
    const descriptors = i < groups.length - 1 ? [...g, pointerTo(i + 1)] : g;
    bytes.write(buffers[i]!.cpuAddress, encodeSgl(descriptors));
    segments.push({ buffer: buffers[i]!, descriptors });
  });
  return {
    ...base,
    sgl1: pointerTo(0),
    segments,
    descriptorBytes: buffers.reduce((n, b) => n + b.size, 0),
  };
}

/** How the driver picks (nvme_pci_use_sgls, simplified): SGLs when asked or when PRPs cannot express it. */
export function setupDataPointer(
  list: DmaRangeList,
  alloc: DescriptorAllocator,
  bytes: ByteStore,
  options: { length?: number; pageSize?: number; preferSgl?: boolean; sglSupported?: boolean } = {},
): DataPointer {
  const sglOk = options.sglSupported ?? true;
  if (sglOk && options.preferSgl === true) return setupSgls(list, alloc, bytes, options);
  if (prpIncompatibility(list, options) === undefined) return setupPrps(list, alloc, bytes, options);
  if (!sglOk)
    throw new PhysrError(
      'EINVAL',
      `PRPs cannot describe this DMA list (${prpIncompatibility(list, options)}) and the controller has no SGL support`,
    );
  return setupSgls(list, alloc, bytes, options);
}

export interface Transfer {
  readonly dmaAddress: bigint;
  readonly length: number;
}

export interface NvmeCommandResult {
  readonly transfers: readonly Transfer[];
  /** Bytes of PRP lists / SGL segments the controller fetched by DMA. */
  readonly descriptorBytesRead: number;
}

/** The command's view of a data pointer: only what a submission queue entry carries. */
export type CommandPointer =
  | { readonly kind: 'prp'; readonly prp1: bigint; readonly prp2: bigint }
  | { readonly kind: 'sgl'; readonly sgl1: SglDescriptor };

export function commandPointer(dp: DataPointer): CommandPointer {
  return dp.kind === 'prp' ? { kind: 'prp', prp1: dp.prp1, prp2: dp.prp2 } : { kind: 'sgl', sgl1: dp.sgl1 };
}

/**
 * An NVMe controller with one namespace of `blockSize`-byte logical blocks, kept in its own sparse
 * store. Commands name a starting LBA, a block count and a data pointer.
 */
export class NvmeController extends DmaCapableDevice {
  readonly blockSize: number;
  readonly pageSize: number;
  /** The namespace's media (LBA × blockSize → bytes). */
  readonly media = new ByteStore();

  constructor(
    fabric: DmaFabric,
    bdf: Bdf,
    options: { blockSize?: number; pageSize?: number; name?: string } = {},
  ) {
    super(fabric, bdf, options.name);
    this.blockSize = options.blockSize ?? 512;
    this.pageSize = options.pageSize ?? NVME_CTRL_PAGE_SIZE;
  }

  /**
   * Walks a data pointer for `length` bytes: the data ranges in order, fetching PRP list pages and
   * SGL segments by DMA. EINVAL for a malformed pointer (the controller's "invalid field" status).
   */
  walk(pointer: CommandPointer, length: number): NvmeCommandResult {
    return pointer.kind === 'prp'
      ? this.walkPrps(pointer.prp1, pointer.prp2, length)
      : this.walkSgl(pointer.sgl1, length);
  }

  private readDescriptors(at: bigint, bytes: number): Uint8Array {
    this.fabric.metrics.add('devices.nvme_descriptor_bytes_read', bytes);
    return this.dmaRead(at, bytes);
  }

  private walkPrps(prp1: bigint, prp2: bigint, length: number): NvmeCommandResult {
    const ps = BigInt(this.pageSize);
    const transfers: Transfer[] = [];
    let fetched = 0;
    const firstLen = Math.min(length, Number(ps - (prp1 % ps)));
    transfers.push({ dmaAddress: prp1, length: firstLen });
    let left = length - firstLen;
    if (left === 0) return { transfers, descriptorBytesRead: 0 };
    if (left <= this.pageSize) {
      if (prp2 % ps !== 0n) throw new PhysrError('EINVAL', `PRP2 ${formatHex(prp2)} is not page aligned`);
      transfers.push({ dmaAddress: prp2, length: left });
      return { transfers, descriptorBytesRead: 0 };
    }
    let list = prp2;
    if (list % 8n !== 0n)
      throw new PhysrError('EINVAL', `PRP list pointer ${formatHex(list)} is not 8-byte aligned`);
    while (left > 0) {
      const needed = Math.ceil(left / this.pageSize);
      const slots = Number((ps - (list % ps)) / 8n);
      const take = Math.min(needed, slots);
      const raw = this.readDescriptors(list, take * 8);
      fetched += take * 8;
      const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      const chained = needed > slots;
      const dataSlots = chained ? take - 1 : take;
      for (let i = 0; i < dataSlots; i++) {
        const page = view.getBigUint64(i * 8, true);
        if (page % ps !== 0n) throw new PhysrError('EINVAL', `PRP entry ${formatHex(page)} has an offset`);
        const len = Math.min(left, this.pageSize);
        transfers.push({ dmaAddress: page, length: len });
        left -= len;
      }
      if (chained) list = view.getBigUint64((take - 1) * 8, true);
    }
    return { transfers, descriptorBytesRead: fetched };
  }

  private walkSgl(sgl1: SglDescriptor, length: number): NvmeCommandResult {
    const transfers: Transfer[] = [];
    let fetched = 0;
    let left = length;
    const data = (d: SglDescriptor): void => {
      const len = Math.min(left, d.length);
      if (len > 0) transfers.push({ dmaAddress: d.address, length: len });
      left -= len;
    };
    let next: SglDescriptor | undefined = sgl1;
    let lastSeen = false;
    while (next !== undefined && left > 0) {
      const d: SglDescriptor = next;
      next = undefined;
      if (d.format === NVME_SGL_FMT_DATA_DESC) {
        data(d);
        break;
      }
      if (d.format !== NVME_SGL_FMT_SEG_DESC && d.format !== NVME_SGL_FMT_LAST_SEG_DESC)
        throw new PhysrError('EINVAL', `SGL descriptor type ${d.format} is not supported`);
      if (lastSeen) throw new PhysrError('EINVAL', 'a Last Segment holds a segment descriptor');
      if (d.length === 0 || d.length % NVME_SGL_DESC_BYTES !== 0)
        throw new PhysrError('EINVAL', `SGL segment length ${d.length} is not a multiple of 16`);
      lastSeen = d.format === NVME_SGL_FMT_LAST_SEG_DESC;
      const descriptors = decodeSgl(this.readDescriptors(d.address, d.length));
      fetched += d.length;
      descriptors.forEach((e, i) => {
        if (e.format === NVME_SGL_FMT_DATA_DESC) data(e);
        else if (i === descriptors.length - 1) next = e;
        else throw new PhysrError('EINVAL', `SGL segment descriptor at slot ${i} is not the segment's last`);
      });
    }
    if (left > 0)
      throw new PhysrError('EINVAL', `SGL describes ${length - left} bytes, the command moves ${length}`);
    return { transfers, descriptorBytesRead: fetched };
  }

  private checkBlocks(slba: bigint, blocks: number): number {
    if (slba < 0n || !Number.isSafeInteger(blocks) || blocks <= 0)
      throw new PhysrError('EINVAL', `bad LBA range ${slba} + ${blocks}`);
    return blocks * this.blockSize;
  }

  /** NVMe Read: media → host memory along the data pointer (the controller writes by DMA). */
  read(slba: bigint, blocks: number, pointer: CommandPointer): NvmeCommandResult {
    const length = this.checkBlocks(slba, blocks);
    const result = this.walk(pointer, length);
    let at = slba * BigInt(this.blockSize);
    for (const t of result.transfers) {
      this.dmaWrite(t.dmaAddress, this.media.read(at, t.length));
      at += BigInt(t.length);
    }
    return result;
  }

  /** NVMe Write: host memory → media (the controller reads by DMA). */
  write(slba: bigint, blocks: number, pointer: CommandPointer): NvmeCommandResult {
    const length = this.checkBlocks(slba, blocks);
    const result = this.walk(pointer, length);
    let at = slba * BigInt(this.blockSize);
    for (const t of result.transfers) {
      this.media.write(at, this.dmaRead(t.dmaAddress, t.length));
      at += BigInt(t.length);
    }
    return result;
  }
}
