/**
 * Linux 7.1's HMM DMA map (mm/hmm.c, include/linux/hmm-dma.h; 6.16), what RDMA on-demand-paging MRs
 * map through (drivers/infiniband/core/umem_odp.c: hmm_dma_map_alloc with entries of
 * 1 << page_shift). It keeps a pfn array (8 bytes an entry, the pfn plus HMM_PFN_* flags) and:
 *  - with dma-iommu, ONE IOVA for the whole range, allocated up front (dma_iova_try_alloc, hint 0);
 *    each entry is linked at idx * entry_size and synced on its own when it faults in;
 *  - otherwise a dma_addr_t array (8 bytes an entry) when unmap needs the addresses, filled by one
 *    dma_map_phys per entry.
 * P2P is decided per page through pci_p2pdma_state: bus-address entries get their bus address and
 * no mapping; through-host-bridge ones are mapped with DMA_ATTR_MMIO. A device that might bounce
 * (needs syncs, or its mask cannot reach all memory) is refused EOPNOTSUPP at alloc.
 */
import { fail, formatHex, PAGE_SIZE } from '../core/index.ts';
import {
  type DmaAttrs,
  type DmaDeviceInfo,
  type DmaIovaState,
  type DmaMapping,
  dmaIovaFree,
  dmaIovaLink,
  dmaIovaSync,
  dmaIovaTryAlloc,
  dmaIovaUnlink,
  dmaNeedUnmap,
  dmaUnmap,
  mapPhys,
} from '../dma/index.ts';
import {
  type P2pdmaMapState,
  p2pdmaMapState,
  pciP2pdmaBusAddrMap,
  pciP2pdmaState,
} from '../platform/index.ts';

/** HMM_PFN_* bits the DMA map sets in its pfn entries (include/linux/hmm.h). */
export const HMM_PFN_DMA_MAPPED = 1 << 0;
export const HMM_PFN_P2PDMA = 1 << 1;
export const HMM_PFN_P2PDMA_BUS = 1 << 2;

/** Bytes of one pfn_list or dma_list entry (unsigned long, dma_addr_t). */
export const HMM_ENTRY_BYTES = 8;
/** struct hmm_dma_map: the embedded dma_iova_state (16), pfn_list, dma_list, dma_entry_size. */
export const HMM_DMA_MAP_BYTES = 40;

/** One entry of the map as the model keeps it: what it points at and how it was mapped. */
interface HmmEntry {
  phys: bigint;
  flags: number;
  dma: bigint;
  /** The dma_map_phys handle (no-IOVA path), for the model's unmap. */
  handle: DmaMapping | undefined;
}

/** struct hmm_dma_map. */
export interface HmmDmaMap {
  readonly device: DmaDeviceInfo;
  readonly nrEntries: number;
  readonly dmaEntrySize: bigint;
  /** The IOVA for the whole range (dma_use_iova), or undefined. */
  readonly state: DmaIovaState | undefined;
  /** Whether the dma_addr_t array exists (no IOVA and dma_need_unmap). */
  readonly hasDmaList: boolean;
  readonly entries: readonly HmmEntry[];
  readonly p2p: P2pdmaMapState;
  /** Bytes held for the map's lifetime: struct hmm_dma_map, pfn_list, dma_list. */
  readonly metadataBytes: number;
  freed: boolean;
}

/**
 * dma_addressing_limited (kernel/dma/mapping.c): the mask is below what the device needs — 32 bits
 * through dma-iommu (dma_get_required_mask), all of RAM on dma-direct.
 */
function dmaAddressingLimited(device: DmaDeviceInfo): boolean {
  if (device.usesIommu) return device.dmaMask < 0xffff_ffffn;
  const lastRam = device.machine.platform.memoryMap.byKind('ram').at(-1)?.last ?? 0n;
  return device.dmaMask < lastRam - device.dmaRangeOffset;
}

/** !dev->dma_skip_sync: syncs may be needed (non-coherent, forced or untrusted bouncing). */
function dmaNeedSync(device: DmaDeviceInfo): boolean {
  return !device.coherent || device.forceBounce || (device.usesIommu && device.untrusted);
}

/** hmm_dma_map_alloc. */
export function hmmDmaMapAlloc(device: DmaDeviceInfo, nrEntries: number, dmaEntrySize: bigint): HmmDmaMap {
  if (!Number.isInteger(nrEntries) || nrEntries <= 0)
    fail('EINVAL', `hmm_dma_map_alloc of ${nrEntries} entries`);
  if (dmaNeedSync(device) || dmaAddressingLimited(device)) {
    fail('EOPNOTSUPP', `${device.bdf} might bounce or need syncs: HMM cannot transfer buffer ownership`);
  }
  const state = dmaIovaTryAlloc(device, 0n, BigInt(nrEntries) * PAGE_SIZE);
  const hasDmaList = state === undefined && dmaNeedUnmap(device);
  const entries: HmmEntry[] = Array.from({ length: nrEntries }, () => ({
    phys: 0n,
    flags: 0,
    dma: 0n,
    handle: undefined,
  }));
  const metadataBytes = HMM_DMA_MAP_BYTES + nrEntries * HMM_ENTRY_BYTES * (hasDmaList ? 2 : 1);
  return {
    device,
    nrEntries,
    dmaEntrySize,
    state,
    hasDmaList,
    entries,
    p2p: p2pdmaMapState(),
    metadataBytes,
    freed: false,
  };
}

function entryAt(map: HmmDmaMap, idx: number): HmmEntry {
  const entry = map.entries[idx];
  if (entry === undefined) fail('EINVAL', `entry ${idx} is outside the ${map.nrEntries}-entry HMM map`);
  return entry;
}

/**
 * hmm_dma_map_pfn: maps entry `idx`, whose page hmm_range_fault found at `phys`, and returns its DMA
 * address. An entry already mapped returns its address again without relinking.
 */
export function hmmDmaMapPfn(map: HmmDmaMap, idx: number, phys: bigint): bigint {
  if (map.freed) fail('EINVAL', 'the HMM map was freed');
  const entry = entryAt(map, idx);
  const device = map.device;
  const offset = BigInt(idx) * map.dmaEntrySize;
  if ((entry.flags & HMM_PFN_DMA_MAPPED) !== 0 && (entry.flags & HMM_PFN_P2PDMA_BUS) === 0) {
    if (entry.phys !== phys)
      fail('EINVAL', `entry ${idx} is mapped to ${formatHex(entry.phys)}, not ${formatHex(phys)}`);
    return entry.dma;
  }
  entry.phys = phys;
  const type = pciP2pdmaState(map.p2p, device.machine.platform.topology, device.bdf, phys);
  let attrs: DmaAttrs = {};
  if (type === 'through-host-bridge') {
    attrs = { mmio: true };
    entry.flags |= HMM_PFN_P2PDMA;
  } else if (type === 'bus-address') {
    entry.flags |= HMM_PFN_P2PDMA_BUS | HMM_PFN_DMA_MAPPED;
    entry.dma = pciP2pdmaBusAddrMap(map.p2p.mem!, phys);
    return entry.dma;
  } else if (type === 'not-supported') {
    // DMA_MAPPING_ERROR, which ib_umem_odp_map_dma_single_page turns into -EFAULT.
    fail('EFAULT', `${device.bdf} cannot reach the peer memory at ${formatHex(phys)} (DMA_MAPPING_ERROR)`);
  }
  try {
    if (map.state !== undefined) {
      dmaIovaLink(device, map.state, phys, offset, map.dmaEntrySize, 'BIDIRECTIONAL', attrs);
      dmaIovaSync(device, map.state, offset, map.dmaEntrySize);
      entry.dma = map.state.addr + offset;
    } else {
      entry.handle = mapPhys(device, phys, map.dmaEntrySize, 'BIDIRECTIONAL', attrs);
      entry.dma = entry.handle.dma.addressAt(0);
    }
  } catch (error) {
    entry.flags &= ~HMM_PFN_P2PDMA;
    throw error;
  }
  entry.flags |= HMM_PFN_DMA_MAPPED;
  return entry.dma;
}

/** hmm_dma_unmap_pfn: false when the entry was not mapped. */
export function hmmDmaUnmapPfn(map: HmmDmaMap, idx: number): boolean {
  const entry = entryAt(map, idx);
  if ((entry.flags & HMM_PFN_DMA_MAPPED) === 0) return false;
  const attrs: DmaAttrs = (entry.flags & HMM_PFN_P2PDMA) !== 0 ? { mmio: true } : {};
  if ((entry.flags & HMM_PFN_P2PDMA_BUS) === 0) {
    if (map.state !== undefined) {
      dmaIovaUnlink(
        map.device,
        map.state,
        BigInt(idx) * map.dmaEntrySize,
        map.dmaEntrySize,
        'BIDIRECTIONAL',
        attrs,
      );
    } else if (entry.handle !== undefined) {
      dmaUnmap(entry.handle);
      entry.handle = undefined;
    }
  }
  entry.flags &= ~(HMM_PFN_DMA_MAPPED | HMM_PFN_P2PDMA | HMM_PFN_P2PDMA_BUS);
  return true;
}

/** hmm_dma_map_free: gives the IOVA back; unmapping every entry first is the caller's job. */
export function hmmDmaMapFree(map: HmmDmaMap): void {
  if (map.freed) fail('EINVAL', 'the HMM map was already freed');
  map.freed = true;
  if (map.state !== undefined) dmaIovaFree(map.device, map.state);
}
