/**
 * The platform composite every higher layer works on: a PCI topology, the physical memory map built
 * from it (RAM per NUMA node, every memory BAR as `mmio`, reserved holes), the byte store that holds
 * the bytes, the folio allocator over the RAM, and the IOMMU groups the topology implies.
 *
 * The swiotlb pool is carved out of RAM here (not in the DMA layer) because the folio allocator must
 * never hand its pages out: the kernel takes the pool from memblock below 4 GiB at boot
 * (kernel/dma/swiotlb.c swiotlb_init_remap → memblock_alloc_low, top-down), before the buddy allocator
 * owns the rest. The pool is registered as a `reserved` region named "swiotlb".
 */
import { alignDown, fail, formatHex, formatSize, Metrics, SeededRandom, SZ_4K } from '../core/index.ts';
import { parseKernelCmdline } from './acs-boot.ts';
import {
  BUILTIN_TOPOLOGIES,
  type BuiltinBootOptions,
  type BuiltinTopology,
  builtinTopology,
} from './builtin-topologies.ts';
import { ByteStore } from './byte-store.ts';
import { FolioAllocator } from './folio-allocator.ts';
import { deriveIommuGroups, type IommuGroups } from './iommu-groups.ts';
import { MemoryMap, type MemoryRegionInput } from './memory-map.ts';
import type { PciTopology } from './pci-types.ts';

const MiB = 1n << 20n;
const GiB = 1n << 30n;
const LOW_4G = 4n * GiB;

/** Default swiotlb pool (IO_TLB_DEFAULT_SIZE in include/linux/swiotlb.h is 64 MiB). */
export const SWIOTLB_DEFAULT_BYTES = 64n * MiB;

export interface RamLayoutEntry {
  readonly start: bigint;
  readonly size: bigint;
  readonly node: number;
}

export interface ReservedLayoutEntry {
  readonly start: bigint;
  readonly size: bigint;
  readonly name?: string;
}

export type IommuKind = BuiltinTopology['iommu'];

export interface PlatformModelOptions {
  readonly topology: PciTopology;
  readonly ram: readonly RamLayoutEntry[];
  readonly reserved?: readonly ReservedLayoutEntry[];
  readonly seed?: number | bigint;
  readonly name?: string;
  /** Which IOMMU the machine has (default: by CPU vendor: intel-vt-d, amd-vi, arm-smmu-v3). */
  readonly iommu?: IommuKind;
  /** Bytes of the swiotlb pool; 0 for none (swiotlb=noforce). Default 64 MiB. */
  readonly swiotlbBytes?: bigint;
  /**
   * Which BARs a driver published with pci_p2pdma_add_resource (ZONE_DEVICE struct pages):
   * 'prefetchable' (default: the memory GPUs and NVMe CMBs publish) or 'none'.
   */
  readonly p2pdmaBars?: 'prefetchable' | 'none';
  /** Largest folio order of the allocator (default 18 = 1 GiB). */
  readonly maxFolioOrder?: number;
  readonly metrics?: Metrics;
}

export interface SwiotlbPoolRegion {
  readonly start: bigint;
  readonly size: bigint;
}

export interface PlatformModel {
  readonly name: string;
  readonly topology: PciTopology;
  readonly memoryMap: MemoryMap;
  readonly bytes: ByteStore;
  readonly folios: FolioAllocator;
  readonly iommuGroups: IommuGroups;
  readonly iommu: IommuKind;
  /** The carved-out swiotlb pool, or undefined when none was asked for. */
  readonly swiotlbPool: SwiotlbPoolRegion | undefined;
  readonly metrics: Metrics;
  readonly random: SeededRandom;
  readonly seed: number | bigint;
}

/** The IOMMU a machine has by its CPU vendor: VT-d on Intel, AMD-Vi on AMD, SMMUv3 on Arm, none otherwise. */
export function defaultIommuKind(topology: PciTopology): IommuKind {
  switch (topology.cpu.vendor) {
    case 'intel':
      return 'intel-vt-d';
    case 'amd':
      return 'amd-vi';
    case 'arm':
      return 'arm-smmu-v3';
    default:
      return 'none';
  }
}

/**
 * Where swiotlb_init puts its pool: the highest page-aligned `size` bytes of RAM below 4 GiB that fit
 * in one RAM entry (memblock_alloc_low allocates top-down under ARCH_LOW_ADDRESS_LIMIT).
 */
function placeSwiotlb(ram: readonly RamLayoutEntry[], size: bigint): { index: number; start: bigint } {
  let best: { index: number; start: bigint } | undefined;
  ram.forEach((entry, index) => {
    const top = entry.start + entry.size < LOW_4G ? entry.start + entry.size : LOW_4G;
    if (top <= entry.start) return;
    const start = alignDown(top - size, SZ_4K);
    if (start < entry.start) return;
    if (best === undefined || start > best.start) best = { index, start };
  });
  if (best === undefined) {
    fail('ENOMEM', `no RAM below 4 GiB can hold a ${formatSize(size)} swiotlb pool`);
  }
  return best;
}

/**
 * Every memory BAR of a topology as an `mmio` region (I/O-port BARs are not memory). `p2pdmaBars`:
 * which BARs a driver published with pci_p2pdma_add_resource (so they have struct pages).
 */
export function barRegions(
  topology: PciTopology,
  p2pdmaBars: 'prefetchable' | 'none' = 'prefetchable',
): MemoryRegionInput[] {
  const regions: MemoryRegionInput[] = [];
  for (const fn of topology.functions.values()) {
    for (const bar of fn.bars) {
      if (bar.io || bar.size === 0n) continue;
      regions.push({
        kind: 'mmio',
        start: bar.cpuAddress,
        last: bar.cpuAddress + bar.size - 1n,
        bdf: fn.bdf,
        barIndex: bar.index,
        prefetchable: bar.prefetchable,
        is64: bar.is64,
        p2pdmaPages: p2pdmaBars === 'prefetchable' && bar.prefetchable,
        name: `${fn.bdf} BAR${bar.index}`,
      });
    }
  }
  return regions;
}

/** Builds the composite. EINVAL on a malformed layout, EEXIST when RAM overlaps a BAR or another entry. */
export function createPlatformModel(options: PlatformModelOptions): PlatformModel {
  const { topology } = options;
  const metrics = options.metrics ?? new Metrics();
  const seed = options.seed ?? 1;
  const memoryMap = new MemoryMap();
  const swiotlbBytes = options.swiotlbBytes ?? SWIOTLB_DEFAULT_BYTES;
  if (swiotlbBytes < 0n || swiotlbBytes % SZ_4K !== 0n) {
    fail('EINVAL', `swiotlb size ${formatHex(swiotlbBytes)} must be a multiple of 4 KiB`);
  }
  for (const [i, entry] of options.ram.entries()) {
    if (entry.size <= 0n || entry.start % SZ_4K !== 0n || entry.size % SZ_4K !== 0n) {
      fail(
        'EINVAL',
        `RAM entry ${i} (${formatHex(entry.start)} + ${formatHex(entry.size)}) must be page aligned and non-empty`,
      );
    }
  }
  const pool = swiotlbBytes === 0n ? undefined : placeSwiotlb(options.ram, swiotlbBytes);
  for (const [i, entry] of options.ram.entries()) {
    const last = entry.start + entry.size - 1n;
    if (pool !== undefined && pool.index === i) {
      const poolLast = pool.start + swiotlbBytes - 1n;
      if (pool.start > entry.start) {
        memoryMap.add({ kind: 'ram', start: entry.start, last: pool.start - 1n, node: entry.node });
      }
      memoryMap.add({ kind: 'reserved', start: pool.start, last: poolLast, name: 'swiotlb' });
      if (poolLast < last) memoryMap.add({ kind: 'ram', start: poolLast + 1n, last, node: entry.node });
    } else {
      memoryMap.add({ kind: 'ram', start: entry.start, last, node: entry.node });
    }
  }
  for (const hole of options.reserved ?? []) {
    memoryMap.add({
      kind: 'reserved',
      start: hole.start,
      last: hole.start + hole.size - 1n,
      ...(hole.name === undefined ? {} : { name: hole.name }),
    });
  }
  for (const region of barRegions(topology, options.p2pdmaBars ?? 'prefetchable')) memoryMap.add(region);
  const folios = new FolioAllocator(memoryMap, {
    metrics,
    ...(options.maxFolioOrder === undefined ? {} : { maxOrder: options.maxFolioOrder }),
  });
  return {
    name: options.name ?? 'custom',
    topology,
    memoryMap,
    bytes: new ByteStore(),
    folios,
    iommuGroups: deriveIommuGroups(topology),
    iommu: options.iommu ?? defaultIommuKind(topology),
    swiotlbPool: pool === undefined ? undefined : { start: pool.start, size: swiotlbBytes },
    metrics,
    random: new SeededRandom(seed),
    seed,
  };
}

/**
 * RAM layouts for the built-in machines. x86: low RAM from 1 MiB to 2 GiB (the 32-bit MMIO window and
 * firmware sit at 2..4 GiB), the rest above 4 GiB; ARM: a low 1 GiB bank and a high bank.
 * Sizes stay modest so a model builds in milliseconds.
 */
const BUILTIN_LAYOUTS: Readonly<
  Record<string, { ram: readonly RamLayoutEntry[]; reserved: readonly ReservedLayoutEntry[] }>
> = {
  x86TwoSocket: {
    ram: [
      { start: MiB, size: 2n * GiB - MiB, node: 0 },
      { start: 4n * GiB, size: 60n * GiB, node: 0 },
      { start: 64n * GiB, size: 64n * GiB, node: 1 },
    ],
    reserved: [
      { start: 0n, size: MiB, name: 'BIOS and legacy' },
      { start: 0xfe00_0000n, size: 32n * MiB, name: 'IOAPIC, LAPIC and firmware' },
    ],
  },
  x86OneNode: {
    ram: [
      { start: MiB, size: 2n * GiB - MiB, node: 0 },
      { start: 4n * GiB, size: 14n * GiB, node: 0 },
    ],
    reserved: [
      { start: 0n, size: MiB, name: 'BIOS and legacy' },
      { start: 0xfe00_0000n, size: 32n * MiB, name: 'IOAPIC, LAPIC and firmware' },
    ],
  },
  x86Amd: {
    ram: [
      { start: MiB, size: 2n * GiB - MiB, node: 0 },
      { start: 4n * GiB, size: 60n * GiB, node: 0 },
    ],
    reserved: [
      { start: 0n, size: MiB, name: 'BIOS and legacy' },
      { start: 0xfe00_0000n, size: 32n * MiB, name: 'IOAPIC, LAPIC and firmware' },
    ],
  },
  arm: {
    ram: [
      { start: GiB, size: GiB, node: 0 },
      { start: 0x80_0000_0000n, size: 64n * GiB, node: 0 },
    ],
    reserved: [{ start: 0x4000_0000n - 16n * MiB, size: 16n * MiB, name: 'firmware (ATF, UEFI)' }],
  },
};

const LAYOUT_OF: Readonly<Record<string, keyof typeof BUILTIN_LAYOUTS>> = {
  'two-socket-server': 'x86TwoSocket',
  laptop: 'x86OneNode',
  'arm-server': 'arm',
  'amd-server': 'x86Amd',
};

/** Names `builtinPlatform` accepts (the built-in topologies). */
export function builtinPlatformNames(): string[] {
  return BUILTIN_TOPOLOGIES.map((b) => b.name);
}

/**
 * A built-in machine with its RAM layout: `two-socket-server` (RAM on nodes 0 and 1), `laptop`,
 * `arm-server`, `amd-server`, booted as Linux boots (ACS redirect on with the IOMMU) unless
 * `disableAcsRedir` (the `pci=disable_acs_redir=` devices) says otherwise. ENOENT for an unknown name.
 */
export function builtinPlatform(
  name: string,
  options: Omit<PlatformModelOptions, 'topology' | 'ram' | 'reserved' | 'name' | 'iommu'> & {
    /** Kernel command line the machine boots with (`pci=disable_acs_redir=...`, see parseKernelCmdline). */
    readonly cmdline?: string;
    /** Whether the kernel runs with the IOMMU (default: the platform has one); without it ACS stays as firmware left it. */
    readonly iommuEnabled?: boolean;
  } = {},
): PlatformModel {
  const builtin = builtinTopology(name);
  const layoutName = LAYOUT_OF[name];
  if (builtin === undefined || layoutName === undefined) {
    fail('ENOENT', `no built-in platform "${name}" (known: ${builtinPlatformNames().join(', ')})`);
  }
  const layout = BUILTIN_LAYOUTS[layoutName]!;
  const { cmdline, iommuEnabled, ...modelOptions } = options;
  const boot: BuiltinBootOptions = {
    ...(cmdline === undefined ? {} : parseKernelCmdline(cmdline, { field: 'cmdline' })),
    ...(iommuEnabled === undefined ? {} : { iommu: iommuEnabled }),
  };
  return createPlatformModel({
    ...modelOptions,
    topology: builtin.build(boot),
    ram: layout.ram,
    reserved: layout.reserved,
    name,
    iommu: builtin.iommu,
  });
}
