/**
 * An RDMA test machine: the two-socket server topology, RAM at 4-8 GiB, the NIC (04:00.0) doing
 * DMA through src/devices' routing with no IOMMU in the way (DMA address = bus address), and a
 * direct DMA mapper standing in for src/dma (identity map; its sg path fills the sg DMA fields).
 */
import { DmaRangeList, Metrics, PhyrList, type SgTable } from '../../src/core/index.ts';
import { type DmaFabric, Nic } from '../../src/devices/index.ts';
import { PhyrExporter } from '../../src/dmabuf/index.ts';
import { MemorySystem, MmStruct } from '../../src/mm/index.ts';
import {
  ByteStore,
  barRegions,
  FolioAllocator,
  MemoryMap,
  twoSocketServer,
} from '../../src/platform/index.ts';
import type { RdmaDevice } from '../../src/rdma/index.ts';

export const NIC_BDF = '0000:04:00.0';
export const GPU_BDF = '0000:03:00.0';
export const GPU_BAR1 = 0x200_0000_0000n;
const GiB = 1n << 30n;

export function rdmaMachine(options: { anonOrders?: readonly number[]; pgszBitmap?: bigint } = {}) {
  const topology = twoSocketServer();
  const metrics = new Metrics();
  const memoryMap = new MemoryMap([
    { kind: 'ram', start: 4n * GiB, last: 8n * GiB - 1n, node: 0 },
    ...barRegions(topology),
  ]);
  const bytes = new ByteStore();
  const fabric: DmaFabric = { topology, memoryMap, bytes, metrics, iommuOf: () => undefined };
  const allocator = new FolioAllocator(memoryMap, { metrics });
  const system = new MemorySystem(allocator, { bytes, metrics, anonOrders: options.anonOrders });
  const mm = new MmStruct(system);
  const nic = new Nic(fabric, NIC_BDF);
  const maps = { live: 0, sg: 0 };
  const device: RdmaDevice = {
    name: 'mlx5_0',
    bdf: NIC_BDF,
    pgszBitmap: options.pgszBitmap ?? 0x1000n | 0x20_0000n | 0x4000_0000n,
    engine: nic,
    dma: {
      maxSegmentSize: 1n << 32n,
      mapPhyrs(list: PhyrList) {
        maps.live++;
        let done = false;
        return {
          dma: DmaRangeList.fromRanges(list),
          unmap() {
            if (done) throw new Error('double unmap');
            done = true;
            maps.live--;
          },
        };
      },
      mapSgTable(table: SgTable) {
        table.forEachSlot((slot) => table.setDma(slot, table.physAt(slot), table.lengthAt(slot)));
        table.setMappedNents(table.origNents);
        maps.sg++;
        return { unmap: () => void maps.sg-- };
      },
    },
  };
  return { topology, metrics, memoryMap, bytes, fabric, allocator, system, mm, nic, device, maps };
}

/**
 * A dynamic dma-buf over two 2-page folios with a third allocated between them, so the two pieces
 * (at `pa` and `pb`) are not physically adjacent.
 */
export function twoPieceDmaBuf() {
  const machine = rdmaMachine();
  const a = machine.allocator.allocFolio(1);
  machine.allocator.allocFolio(1);
  const b = machine.allocator.allocFolio(1);
  const pa = a.pfn << 12n;
  const pb = b.pfn << 12n;
  const exporter = new PhyrExporter(
    PhyrList.fromRanges([
      [pa, 0x2000n],
      [pb, 0x2000n],
    ]),
    { topology: machine.topology, dynamic: true },
  );
  return { ...machine, exporter, pa, pb };
}
