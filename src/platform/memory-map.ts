/**
 * The physical memory map: non-overlapping regions `[start, last]` (inclusive last, so a region may
 * end at 2^64-1) of RAM, persistent memory, MMIO (PCI BARs) and reserved ranges — what
 * kernel/resource.c keeps as the iomem_resource tree, flattened to its leaves.
 *
 * Invariant: `regions` is sorted by start and no two regions share a byte. Lookup is a binary search
 * over a parallel BigUint64Array of starts, O(log n).
 */
import { fail, formatHex, type PhysAddr, toU64, U64_MAX } from '../core/index.ts';
import type { Bdf } from './pci-types.ts';

/** Page frame numbers use 4 KiB pages (PAGE_SHIFT 12, as on x86-64 and 4K-granule arm64). */
export const PFN_SHIFT = 12n;
export const PFN_PAGE_SIZE = 1n << PFN_SHIFT;

/** PHYS_PFN(): the frame holding an address. */
export function addrToPfn(addr: bigint): bigint {
  return addr >> PFN_SHIFT;
}

/** PFN_PHYS(): the first byte of a frame. */
export function pfnToAddr(pfn: bigint): bigint {
  return pfn << PFN_SHIFT;
}

/** PFN_UP(): frames needed to cover `addr` bytes (rounds up). */
export function pfnUp(addr: bigint): bigint {
  return (addr + PFN_PAGE_SIZE - 1n) >> PFN_SHIFT;
}

/** PFN_DOWN(): the frame containing `addr` (rounds down). */
export function pfnDown(addr: bigint): bigint {
  return addr >> PFN_SHIFT;
}

export type MemoryRegionKind = 'ram' | 'pmem' | 'mmio' | 'reserved';

interface RegionCommon {
  readonly start: bigint;
  /** Inclusive last byte. */
  readonly last: bigint;
  /** What /proc/iomem would print (e.g. `System RAM`, `0000:01:00.0`). */
  readonly name: string;
}

/** System RAM: every page has a struct page and belongs to a NUMA node. */
export interface RamRegion extends RegionCommon {
  readonly kind: 'ram';
  /** NUMA node; undefined when the source did not say (e.g. /proc/iomem alone). */
  readonly node: number | undefined;
}

/**
 * Persistent memory / DAX. With `structPages` it is ZONE_DEVICE memory (devm_memremap_pages, an
 * fsdax/devdax namespace in "memory" mode); without, it is raw PFN-mapped memory that GUP cannot pin.
 */
export interface PmemRegion extends RegionCommon {
  readonly kind: 'pmem';
  readonly node: number | undefined;
  readonly structPages: boolean;
}

/**
 * A PCI BAR (or part of one). `p2pdmaPages` marks memory a driver published with
 * pci_p2pdma_add_resource (drivers/pci/p2pdma.c): ZONE_DEVICE struct pages then exist for it.
 * Facts a source did not give are undefined, never guessed.
 */
export interface MmioRegion extends RegionCommon {
  readonly kind: 'mmio';
  readonly bdf: Bdf | undefined;
  readonly barIndex: number | undefined;
  readonly prefetchable: boolean | undefined;
  readonly is64: boolean | undefined;
  readonly p2pdmaPages: boolean;
}

/** Firmware, ACPI, ECAM, IOAPIC and other ranges that are neither RAM nor a BAR. */
export interface ReservedRegion extends RegionCommon {
  readonly kind: 'reserved';
}

export type MemoryRegion = RamRegion | PmemRegion | MmioRegion | ReservedRegion;

/** What `add` takes: a region, with the optional facts allowed to be omitted. */
export type MemoryRegionInput =
  | (Omit<RamRegion, 'node' | 'name'> & { node?: number; name?: string })
  | (Omit<PmemRegion, 'node' | 'name' | 'structPages'> & {
      node?: number;
      name?: string;
      structPages?: boolean;
    })
  | (Omit<MmioRegion, 'bdf' | 'barIndex' | 'prefetchable' | 'is64' | 'p2pdmaPages' | 'name'> & {
      bdf?: Bdf;
      barIndex?: number;
      prefetchable?: boolean;
      is64?: boolean;
      p2pdmaPages?: boolean;
      name?: string;
    })
  | (Omit<ReservedRegion, 'name'> & { name?: string });

const DEFAULT_NAME: Record<MemoryRegionKind, string> = {
  ram: 'System RAM',
  pmem: 'Persistent Memory',
  mmio: 'PCI BAR',
  reserved: 'Reserved',
};

function normalize(input: MemoryRegionInput): MemoryRegion {
  const start = toU64(input.start, 'region start');
  const last = toU64(input.last, 'region last');
  if (last < start) {
    fail('EINVAL', `region ${formatHex(start)}-${formatHex(last)} ends before it starts`);
  }
  const name = input.name ?? DEFAULT_NAME[input.kind];
  switch (input.kind) {
    case 'ram':
      checkNode(input.node);
      return { kind: 'ram', start, last, name, node: input.node };
    case 'pmem':
      checkNode(input.node);
      return { kind: 'pmem', start, last, name, node: input.node, structPages: input.structPages ?? false };
    case 'mmio':
      if (input.barIndex !== undefined && !(Number.isInteger(input.barIndex) && input.barIndex >= 0)) {
        fail('EINVAL', `BAR index ${input.barIndex} is not a BAR number`);
      }
      return {
        kind: 'mmio',
        start,
        last,
        name: input.name ?? input.bdf ?? DEFAULT_NAME.mmio,
        bdf: input.bdf,
        barIndex: input.barIndex,
        prefetchable: input.prefetchable,
        is64: input.is64,
        p2pdmaPages: input.p2pdmaPages ?? false,
      };
    case 'reserved':
      return { kind: 'reserved', start, last, name };
  }
}

function checkNode(node: number | undefined): void {
  if (node !== undefined && !(Number.isInteger(node) && node >= 0))
    fail('EINVAL', `NUMA node ${node} is invalid`);
}

export function describeRegion(region: MemoryRegion): string {
  const range = `${formatHex(region.start)}-${formatHex(region.last)}`;
  return `${range} ${region.kind} "${region.name}"`;
}

/** Size in bytes of a region (may be 2^64 for a region covering everything). */
export function regionSize(region: { start: bigint; last: bigint }): bigint {
  return region.last - region.start + 1n;
}

export class MemoryMap {
  private list: MemoryRegion[] = [];
  /** Starts of `list`, for a cache-friendly binary search. */
  private starts = new BigUint64Array(0);

  constructor(regions: Iterable<MemoryRegionInput> = []) {
    for (const region of regions) this.add(region);
  }

  get size(): number {
    return this.list.length;
  }

  /**
   * Adds a region. Overlap with an existing region is EEXIST (request_resource in kernel/resource.c
   * refuses a conflicting resource the same way); a malformed region is EINVAL.
   */
  add(input: MemoryRegionInput): MemoryRegion {
    const region = normalize(input);
    const at = this.upperBound(region.start); // first region starting after region.start
    const before = this.list[at - 1];
    const after = this.list[at];
    const clash =
      before !== undefined && before.last >= region.start
        ? before
        : after !== undefined && after.start <= region.last
          ? after
          : undefined;
    if (clash !== undefined) {
      fail('EEXIST', `region ${describeRegion(region)} overlaps ${describeRegion(clash)}`);
    }
    this.list.splice(at, 0, region);
    const starts = new BigUint64Array(this.list.length);
    starts.set(this.starts.subarray(0, at), 0);
    starts[at] = region.start;
    starts.set(this.starts.subarray(at), at + 1);
    this.starts = starts;
    return region;
  }

  /** Removes the region that starts exactly at `start`; ENOENT if none does. */
  remove(start: bigint): MemoryRegion {
    const at = this.upperBound(start) - 1;
    const region = this.list[at];
    if (region === undefined || region.start !== start) {
      fail('ENOENT', `no memory region starts at ${formatHex(start)}`);
    }
    this.list.splice(at, 1);
    const starts = new BigUint64Array(this.list.length);
    starts.set(this.starts.subarray(0, at), 0);
    starts.set(this.starts.subarray(at + 1), at);
    this.starts = starts;
    return region;
  }

  /** The region containing `addr`, or undefined for a hole. O(log n). */
  lookup(addr: bigint | PhysAddr): MemoryRegion | undefined {
    const region = this.list[this.upperBound(addr) - 1];
    return region !== undefined && addr <= region.last ? region : undefined;
  }

  /** Every region sharing at least one byte with `[start, last]`, in address order. */
  overlapping(start: bigint, last: bigint): MemoryRegion[] {
    const out: MemoryRegion[] = [];
    let at = this.upperBound(start) - 1;
    if (at < 0 || this.list[at]!.last < start) at += 1;
    for (; at < this.list.length; at++) {
      const region = this.list[at]!;
      if (region.start > last) break;
      out.push(region);
    }
    return out;
  }

  /** True when every byte of `[start, last]` lies in one region; returns that region. */
  containing(start: bigint, last: bigint): MemoryRegion | undefined {
    const region = this.lookup(start);
    return region !== undefined && last <= region.last ? region : undefined;
  }

  regions(): readonly MemoryRegion[] {
    return this.list;
  }

  byKind<K extends MemoryRegionKind>(kind: K): Extract<MemoryRegion, { kind: K }>[] {
    return this.list.filter((r): r is Extract<MemoryRegion, { kind: K }> => r.kind === kind);
  }

  /** Total bytes of System RAM. */
  totalRam(): bigint {
    let total = 0n;
    for (const region of this.list) if (region.kind === 'ram') total += regionSize(region);
    return total;
  }

  /**
   * Whether the kernel has a struct page for this address (pfn_valid + a memmap): all RAM, pmem
   * mapped as ZONE_DEVICE, and BAR memory registered for P2PDMA. Holes, reserved firmware ranges and
   * plain BARs have none: they can only reach the DMA API as a physical address (the physr case).
   */
  hasStructPage(addr: bigint): boolean {
    const region = this.lookup(addr);
    if (region === undefined) return false;
    switch (region.kind) {
      case 'ram':
        return true;
      case 'pmem':
        return region.structPages;
      case 'mmio':
        return region.p2pdmaPages;
      case 'reserved':
        return false;
    }
  }

  /** Highest address of any region (max_pfn's byte form), or undefined when empty. */
  lastAddress(): bigint | undefined {
    return this.list[this.list.length - 1]?.last;
  }

  /** Index of the first region whose start is > addr (binary search over the starts column). */
  private upperBound(addr: bigint): number {
    const starts = this.starts;
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (starts[mid]! <= addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** `[start, start + length - 1]` as a region input helper, refusing ranges that pass 2^64. */
export function spanOf(start: bigint, length: bigint): { start: bigint; last: bigint } {
  if (length <= 0n) fail('EINVAL', `length ${length} at ${formatHex(start)} must be positive`);
  const last = start + length - 1n;
  if (last > U64_MAX) fail('EINVAL', `${formatHex(start)} + ${formatHex(length)} runs past 2^64`);
  return { start, last };
}
