/**
 * An RdmaDevice over the real layers: the DMA layer's DmaDevice maps (physr: dma_map of the
 * PhyrList; legacy: dma_map_sgtable) and a src/devices DMA engine (a Nic) moves the bytes, so
 * registration and RDMA accesses go through the IOMMU and P2P routing as any other DMA does.
 */
import type { PhyrList, SgTable } from '../core/index.ts';
import { type DmaDevice, dmaMapPhyrList, dmaMapSg, dmaUnmap, dmaUnmapSg } from '../dma/index.ts';
import type { RdmaDevice, RdmaDmaEngine } from './device.ts';

/** Page sizes of a ConnectX-class HCA's MR tables: every power of two from 4K to 2G (mlx5). */
export const MLX5_PGSZ_BITMAP = ((1n << 32n) - 1n) & -0x1000n;

export function rdmaDeviceOverDma(
  dmaDevice: DmaDevice,
  engine: RdmaDmaEngine,
  options: { name?: string; pgszBitmap?: bigint } = {},
): RdmaDevice {
  return {
    name: options.name ?? `rdma-${dmaDevice.bdf}`,
    bdf: dmaDevice.bdf,
    pgszBitmap: options.pgszBitmap ?? MLX5_PGSZ_BITMAP,
    engine,
    dma: {
      maxSegmentSize: dmaDevice.maxSegmentSize,
      mapPhyrs(list: PhyrList, { mmio }) {
        const mapping = dmaMapPhyrList(dmaDevice, list, 'BIDIRECTIONAL', mmio ? { mmio: true } : {});
        return { dma: mapping.dma, unmap: () => dmaUnmap(mapping) };
      },
      mapSgTable(table: SgTable) {
        dmaMapSg(dmaDevice, table, 'BIDIRECTIONAL');
        return { unmap: () => dmaUnmapSg(dmaDevice, table, 'BIDIRECTIONAL') };
      },
    },
  };
}
