import { describe, expect, it } from 'vitest';
import { PhyrList } from '../../src/core/index.ts';
import { machineFabric, Nic } from '../../src/devices/index.ts';
import { builtinMachine } from '../../src/dma/index.ts';
import { PhyrExporter } from '../../src/dmabuf/index.ts';
import { MemorySystem, MmStruct } from '../../src/mm/index.ts';
import {
  IB_ACCESS_LOCAL_WRITE,
  IB_ACCESS_REMOTE_READ,
  IB_ACCESS_REMOTE_WRITE,
  ibUmemDmabufGetPinned,
  ibUmemGet,
  ibUmemGetLegacy,
  MLX5_PGSZ_BITMAP,
  RdmaContext,
  rdmaDeviceOverDma,
} from '../../src/rdma/index.ts';

const RW = IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE | IB_ACCESS_REMOTE_READ;
const MiB = 1n << 20n;

function setup() {
  const machine = builtinMachine('two-socket-server', { strict: true });
  const { platform } = machine;
  const system = new MemorySystem(platform.folios, { bytes: platform.bytes, metrics: platform.metrics });
  const mm = new MmStruct(system);
  const bdf = '0000:04:00.0';
  const dmaDevice = machine.device(bdf, { maxSegmentSize: 1n << 31n });
  const nic = new Nic(machineFabric(machine), bdf);
  return { machine, mm, nic, dmaDevice, device: rdmaDeviceOverDma(dmaDevice, nic) };
}

describe('MRs over the DMA layer and a NIC behind the IOMMU', () => {
  it('registers THP memory through one IOVA mapping and an RDMA WRITE lands in the process', () => {
    const { mm, nic, device, machine } = setup();
    expect(machine.hasIommu).toBe(true);
    const va = mm.mmap({ kind: 'anon', length: 4n * MiB, address: 0x10_0020_0000n });
    const ctx = new RdmaContext(device);
    const umem = ibUmemGet(device, mm, va, 4n * MiB, RW);
    // The IOMMU path gives one contiguous IOVA range for the whole list.
    expect(umem.dma.totalLength).toBe(4n * MiB);
    const mr = ctx.registerMr(umem, RW);
    expect(mr.pageSize).toBe(2n * MiB);
    const data = Uint8Array.from({ length: 0x3000 }, (_, i) => (i * 7) & 0xff);
    ctx.rdmaWrite(mr.rkey, va + 2n * MiB - 0x1000n, data);
    expect(mm.readUser(va + 2n * MiB - 0x1000n, data.length)).toEqual(data);
    // The page list names IOVAs, not physical addresses.
    const iova = ctx.pageList(mr)![0]!;
    expect(iova).not.toBe(mm.translate(va)!.phys);
    ctx.deregisterMr(mr);
    // After deregistration the IOVA is unmapped: the NIC's write faults in the IOMMU.
    expect(nic.tryDmaWrite(iova, new Uint8Array(8)).fault).toBeDefined();
  });

  it('the legacy sg path maps the same memory to the same page size', () => {
    const { mm, device } = setup();
    const va = mm.mmap({ kind: 'anon', length: 4n * MiB, address: 0x10_0020_0000n });
    const ctx = new RdmaContext(device);
    const legacy = ibUmemGetLegacy(device, mm, va, 4n * MiB, RW);
    const mr = ctx.registerMr(legacy, RW);
    expect(mr.pageSize).toBe(2n * MiB);
    // Two 2 MiB THP folios the buddy hands out back to back: one physically contiguous sg entry.
    expect(legacy.table.origNents).toBe(1);
    ctx.rdmaWrite(mr.rkey, va + 0x10n, new Uint8Array([9, 8, 7]));
    expect(mm.readUser(va + 0x10n, 3)).toEqual(new Uint8Array([9, 8, 7]));
    ctx.deregisterMr(mr);
  });
});

describe('rdmaDeviceOverDma', () => {
  it('names the device after its BDF and gives it mlx5 page sizes (every power of two, 4K to 2G)', () => {
    const { device, dmaDevice, nic } = setup();
    expect(device.name).toBe('rdma-0000:04:00.0');
    expect(device.bdf).toBe('0000:04:00.0');
    // Bits 12..31.
    expect(MLX5_PGSZ_BITMAP).toBe(0xffff_f000n);
    expect(device.pgszBitmap).toBe(0xffff_f000n);
    expect(device.dma.maxSegmentSize).toBe(1n << 31n);
    const named = rdmaDeviceOverDma(dmaDevice, nic, { name: 'mlx5_1', pgszBitmap: 0x1000n });
    expect([named.name, named.pgszBitmap]).toEqual(['mlx5_1', 0x1000n]);
  });

  it('the legacy path maps and unmaps its sg table DMA_BIDIRECTIONAL; the IOVA faults afterwards', () => {
    const { mm, nic, device, machine } = setup();
    const va = mm.mmap({ kind: 'anon', length: 4n * MiB, address: 0x10_0020_0000n });
    const ctx = new RdmaContext(device);
    const mr = ctx.registerMr(ibUmemGetLegacy(device, mm, va, 4n * MiB, RW), RW);
    const iova = ctx.pageList(mr)![0]!;
    // ib_dma_map_sgtable_attrs maps DMA_BIDIRECTIONAL (include/rdma/ib_verbs.h); dma-debug sees it.
    expect(machine.debug.entriesOf('0000:04:00.0').map((e) => [e.type, e.direction])).toEqual([
      ['sg', 'BIDIRECTIONAL'],
    ]);
    expect(nic.tryDmaWrite(iova, new Uint8Array(8)).fault).toBeUndefined();
    ctx.deregisterMr(mr);
    expect(machine.debug.entriesOf('0000:04:00.0')).toEqual([]);
    expect(machine.debug.findings).toEqual([]);
    expect(nic.tryDmaWrite(iova, new Uint8Array(8)).fault).toBeDefined();
  });

  it('a pinned dma-buf over a GPU BAR maps as MMIO and an RDMA WRITE lands in the BAR', () => {
    const { machine, device } = setup();
    const bar = 0x200_0000_0000n;
    const exporter = new PhyrExporter(PhyrList.fromRanges([[bar, 2n * MiB]]), {
      topology: machine.platform.topology,
    });
    const umem = ibUmemDmabufGetPinned(device, exporter.buf, 0n, 2n * MiB, RW);
    expect(umem.attachment.mappings[0]!.path).toBe('p2p');
    const ctx = new RdmaContext(device);
    const mr = ctx.registerMr(umem, RW, { iova: 0n });
    const data = Uint8Array.from({ length: 64 }, (_, i) => i + 1);
    ctx.rdmaWrite(mr.rkey, 0x1000n, data);
    expect(machine.platform.bytes.read(bar + 0x1000n, 64)).toEqual(data);
    ctx.deregisterMr(mr);
  });
});
