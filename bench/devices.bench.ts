import { DmaRangeList, PhyrList } from '../src/core/index.ts';
import { descriptorPool, Gpu, machineFabric, Nic, setupPrps, setupSgls } from '../src/devices/index.ts';
import { builtinMachine } from '../src/dma/index.ts';
import { folioPhys } from '../src/platform/index.ts';
import { type Benchmark, type Figure, figure, measure, timeSeconds } from './harness.ts';

const NIC = '0000:04:00.0';
const GPU = '0000:03:00.0';
const NVME = '0000:06:00.0';
const MiB = 1 << 20;

export const devicesBenchmark: Benchmark = {
  name: 'devices',
  description:
    'device DMA routing throughput (IOMMU into RAM, switch P2P into a GPU BAR) and NVMe PRP/SGL descriptor cost',
  async run(ctx) {
    const figures: Figure[] = [];
    const machine = builtinMachine('two-socket-server');
    const fabric = machineFabric(machine);
    const bytes = ctx.size(4 * MiB, 64 * 1024);
    const folios = machine.platform.folios.allocPages(BigInt(bytes));
    const ram = machine
      .device(NIC)
      .map(
        PhyrList.fromRanges(folios.map((f) => [folioPhys(f), 1n << (BigInt(f.order) + 12n)])),
        'FROM_DEVICE',
      );
    const nic = new Nic(fabric, NIC);
    const payload = new Uint8Array(bytes).fill(0x5a);
    const rate = (list: DmaRangeList) => {
      nic.clearLog();
      const seconds = timeSeconds(() => {
        nic.postReceive(list);
        nic.receive(payload);
      });
      return bytes / MiB / seconds;
    };
    figures.push(
      await measure(ctx, 'NIC write through the IOMMU into RAM', 'MiB/s', () => rate(ram.dma), {
        note: '4 KiB IOTLB lookups, bytes copied into the byte store',
      }),
    );
    const gpu = new Gpu(fabric, GPU);
    const bar = machine
      .device(NIC)
      .map(PhyrList.fromRanges([[gpu.vramCpuAddress(0n), BigInt(bytes)]]), 'FROM_DEVICE');
    figures.push(
      await measure(ctx, 'NIC write into a GPU BAR through the switch', 'MiB/s', () => rate(bar.dma), {
        note: 'bus address, no IOMMU',
      }),
    );

    // Descriptor memory for 1 MiB in 256 page-sized pieces (PRP) and in 256 odd pieces (SGL only).
    const pool = descriptorPool(machine, NVME);
    const pages = DmaRangeList.fromRanges(
      Array.from({ length: 256 }, (_, i): [bigint, bigint] => [
        0x1_0000_0000n + BigInt(i) * 0x3000n,
        0x1000n,
      ]),
    );
    const prp = setupPrps(pages, pool, machine.platform.bytes);
    const sgl = setupSgls(pages, pool, machine.platform.bytes);
    figures.push(figure('PRP list bytes for 1 MiB in 4 KiB pieces', 'bytes', [prp.descriptorBytes]));
    figures.push(figure('SGL segment bytes for 1 MiB in 4 KiB pieces', 'bytes', [sgl.descriptorBytes]));
    const setups = ctx.size(2000, 2);
    figures.push(
      await measure(ctx, 'PRP setup, 256 entries', 'setups/s', () => {
        const seconds = timeSeconds(() => {
          for (let i = 0; i < setups; i++)
            setupPrps(
              pages,
              { alloc: (size) => ({ cpuAddress: 0x2000_0000n, dmaAddress: 0x2000_0000n, size }) },
              machine.platform.bytes,
            );
        });
        return setups / seconds;
      }),
    );
    pool.release();
    return figures;
  },
};
