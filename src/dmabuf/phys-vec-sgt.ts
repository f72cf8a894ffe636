/**
 * Linux 7.1's dma-buf mapping helper for MMIO exporters (drivers/dma-buf/dma-buf-mapping.c, 6.19):
 * the exporter (vfio-pci) keeps its BAR ranges as a `phys_vec` array (16 bytes a range, the same
 * {addr, len} pair as a physr range) and each importer's map builds a DMA-only sg_table from it with
 * dma_buf_phys_vec_to_sgt:
 *  - the map type comes from the exporter's p2pdma_provider and the importer (pci_p2pdma_map_type);
 *    not supported is EINVAL;
 *  - bus address: each range's bus address, no IOVA;
 *  - through the host bridge: dma_iova_try_alloc for the whole size (hint phys 0); with an IOVA every
 *    range is dma_iova_link'ed with DMA_ATTR_MMIO, then one dma_iova_sync, and the table holds ONE
 *    entry for the IOVA; without one, dma_map_phys per range;
 *  - every DMA run is cut into entries of at most UINT_MAX bytes (fill_sg_entry), the page fields are
 *    left empty and orig_nents is 0: importers get DMA addresses only.
 * Each range is linked at IOVA offset 0 in the kernel code read for 7.1 (dma_iova_link(..., paddr, 0,
 * len, ...)); the model does the same, so a through-host-bridge map of a multi-range export behind an
 * IOMMU fails on the second link, as the kernel's would.
 */
import { fail, type PhyrList, RANGE_BYTES, type SgTable, sgAllocTable, UINT_MAX } from '../core/index.ts';
import {
  DMA_IOVA_STATE_BYTES,
  type DmaDeviceInfo,
  type DmaDirection,
  type DmaIovaState,
  type DmaMapping,
  dmaIovaDestroy,
  dmaIovaLink,
  dmaIovaSync,
  dmaIovaTryAlloc,
  dmaUnmap,
  mapPhys,
} from '../dma/index.ts';
import {
  type P2pdmaProvider,
  type P2pMapType,
  pciP2pdmaBusAddrMap,
  pciP2pdmaMapType,
} from '../platform/index.ts';

/** struct dma_buf_dma beyond its embedded sg_table: the state pointer and the size. */
const DMA_BUF_DMA_EXTRA_BYTES = 16;

/** One DMA-only sg entry: sg_dma_address / sg_dma_len (the page fields stay empty). */
export interface DmaOnlySgEntry {
  readonly addr: bigint;
  readonly len: number;
}

/** struct dma_buf_dma: the table an importer gets, and what dma_buf_free_sgt needs. */
export interface DmaBufDma {
  readonly device: DmaDeviceInfo;
  readonly mapType: P2pMapType;
  readonly dir: DmaDirection;
  readonly sgt: SgTable;
  readonly entries: readonly DmaOnlySgEntry[];
  /** The IOVA state (through-host-bridge with dma-iommu). */
  readonly state: DmaIovaState | undefined;
  /** Per-range dma_map_phys handles (through-host-bridge without an IOVA). */
  readonly perRange: readonly DmaMapping[];
  readonly size: bigint;
  /** Bytes the importer's side holds: the sg entries and sg_table, dma_buf_dma, the IOVA state. */
  readonly metadataBytes: number;
  freed: boolean;
}

/** fill_sg_entry: a DMA run as entries of at most UINT_MAX bytes, each at addr + i * UINT_MAX. */
function dmaOnlyEntries(addr: bigint, length: bigint): DmaOnlySgEntry[] {
  const out: DmaOnlySgEntry[] = [];
  const max = BigInt(UINT_MAX);
  let left = length;
  for (let i = 0n; left > 0n; i++) {
    const len = left < max ? left : max;
    out.push({ addr: addr + i * max, len: Number(len) });
    left -= len;
  }
  return out;
}

/** dma_buf_phys_vec_to_sgt for the importer `device`. */
export function dmaBufPhysVecToSgt(
  device: DmaDeviceInfo,
  provider: P2pdmaProvider,
  physVec: PhyrList,
  dir: DmaDirection,
): DmaBufDma {
  const topology = device.machine.platform.topology;
  const mapType = pciP2pdmaMapType(topology, provider, device.bdf);
  if (mapType === 'not-supported') {
    fail(
      'EINVAL',
      `dma_buf_phys_vec_to_sgt: ${device.bdf} cannot reach ${provider.owner} BAR ${provider.bar}`,
    );
  }
  const size = physVec.totalLength;
  const state = mapType === 'through-host-bridge' ? dmaIovaTryAlloc(device, 0n, size) : undefined;
  const entries: DmaOnlySgEntry[] = [];
  const perRange: DmaMapping[] = [];
  let mapped = 0n;
  try {
    physVec.forEachRange((paddr, len) => {
      if (mapType === 'bus-address') {
        entries.push(...dmaOnlyEntries(pciP2pdmaBusAddrMap(provider, paddr), len));
      } else if (state !== undefined) {
        dmaIovaLink(device, state, paddr, 0n, len, dir, { mmio: true });
        mapped += len;
      } else {
        const h = mapPhys(device, paddr, len, dir, { mmio: true });
        perRange.push(h);
        entries.push(...dmaOnlyEntries(h.dma.addressAt(0), len));
      }
    });
    if (state !== undefined) {
      dmaIovaSync(device, state, 0n, mapped);
      entries.push(...dmaOnlyEntries(state.addr, mapped));
    }
  } catch (error) {
    // err_unmap_dma: destroy what was linked, or unmap what was mapped.
    if (state !== undefined) dmaIovaDestroy(device, state, mapped, dir, { mmio: true });
    for (const h of perRange) dmaUnmap(h);
    throw error;
  }
  const sgt = sgAllocTable(entries.length);
  let slot = sgt.sgl;
  entries.forEach((e, i) => {
    sgt.setDma(slot, e.addr, e.len);
    if (i + 1 < entries.length) slot = sgt.next(slot);
  });
  sgt.setMappedNents(entries.length);
  const metadataBytes =
    sgt.metadataBytes +
    DMA_BUF_DMA_EXTRA_BYTES +
    (mapType === 'through-host-bridge' ? DMA_IOVA_STATE_BYTES : 0);
  return { device, mapType, dir, sgt, entries, state, perRange, size, metadataBytes, freed: false };
}

/** dma_buf_free_sgt: nothing for bus addresses, dma_iova_destroy of the size, else each entry unmapped. */
export function dmaBufFreeSgt(dma: DmaBufDma): void {
  if (dma.freed) fail('EINVAL', `dma-buf table of ${dma.device.bdf} was already freed`);
  dma.freed = true;
  if (dma.state !== undefined) dmaIovaDestroy(dma.device, dma.state, dma.size, dma.dir, { mmio: true });
  for (const h of dma.perRange) dmaUnmap(h);
}

/** The exporter's array: struct phys_vec, 16 bytes a range (vfio_pci_dma_buf.phys_vec). */
export function physVecBytes(physVec: PhyrList): number {
  return physVec.count * RANGE_BYTES;
}
