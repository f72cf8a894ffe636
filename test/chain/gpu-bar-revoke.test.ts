/**
 * The seed's chain (issue 6, first "Must hold"): a GPU BAR exported through VFIO as a dma-buf,
 * imported by IOMMUFD (an IOAS attached to a NIC) and by an RDMA MR (a dynamic dma-buf umem on an
 * RDMA NIC on the other socket, mapped through the host bridge); RDMA WRITEs and the NIC's DMA land
 * in the GPU BAR; then the GPU is reset: the revoke reaches both importers, the NICs' next writes to
 * their old addresses fault, and nothing else is touched.
 */
import { describe, expect, it } from 'vitest';
import { machineFabric, Nic } from '../../src/devices/index.ts';
import { builtinMachine } from '../../src/dma/index.ts';
import { IommufdCtx, mmUserPinner } from '../../src/iommufd/index.ts';
import { MemorySystem, MmStruct } from '../../src/mm/index.ts';
import {
  IB_ACCESS_LOCAL_WRITE,
  IB_ACCESS_REMOTE_WRITE,
  ibUmemDmabufGet,
  RdmaContext,
  rdmaDeviceOverDma,
} from '../../src/rdma/index.ts';
import { VfioPciDevice } from '../../src/vfio/index.ts';
import { errnoOf } from '../errno.ts';

const GPU = '0000:03:00.0';
const NIC = '0000:04:00.0';
const NIC2 = '0000:81:00.0';
const NVME = '0000:06:00.0';
const MiB = 1n << 20n;
const GiB = 1n << 30n;
const IOVA_BAR = 0x10_0000_0000n;
const IOVA_RAM = 0x20_0000_0000n;
const MR_IOVA = 0x7f00_0000_0000n;

function pattern(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (seed * 31 + i * 7) & 0xff;
  return out;
}

function setup() {
  const machine = builtinMachine('two-socket-server');
  const { platform } = machine;
  // Register the devices with the DMA layer (IOMMU groups and default domains).
  for (const bdf of [GPU, NIC, NIC2, NVME]) machine.device(bdf);
  const fabric = machineFabric(machine);
  const gpuBar = platform.topology.functions.get(GPU)!.bars.find((b) => b.index === 1)!;
  const vfio = new VfioPciDevice({ topology: platform.topology, bdf: GPU, metrics: machine.metrics });
  const mm = new MmStruct(new MemorySystem(platform.folios, { bytes: platform.bytes }));
  return { machine, platform, fabric, gpuBar, vfio, mm };
}

describe('GPU BAR → VFIO dma-buf → IOMMUFD + DMA importer → NIC writes → GPU reset', () => {
  it('holds end to end', () => {
    const { machine, platform, fabric, gpuBar, vfio, mm } = setup();
    const bytes = platform.bytes;
    const barTarget = gpuBar.cpuAddress + GiB;
    const buf = vfio.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: GiB, length: 2n * MiB }] });

    // IOMMUFD: an IOAS with the GPU BAR (dma-buf) and some user RAM, attached to the NIC.
    const iommu = machine.iommuOf(NIC)!;
    const ctx = new IommufdCtx(machine.metrics);
    const ioas = ctx.ioasAlloc();
    const hwpt = ctx.bindDevice(iommu, NIC).attach(ioas);
    ioas.mapDmaBuf(buf, 0n, 2n * MiB, { iova: IOVA_BAR });
    const va = mm.mmap({ kind: 'anon', length: 2n * MiB });
    ioas.mapUser(mmUserPinner(mm), va, 2n * MiB, { iova: IOVA_RAM });

    // Second importer: an RDMA MR over the dma-buf on NIC2 (the other socket: through the host bridge).
    const nic2 = new Nic(fabric, NIC2);
    const rdma = new RdmaContext(rdmaDeviceOverDma(machine.device(NIC2), nic2));
    const RW = IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE;
    const umem = ibUmemDmabufGet(rdma.device, buf, 0n, 2n * MiB, RW);
    let mrInvalidations = 0;
    const mr = rdma.registerMr(umem, RW, { iova: MR_IOVA });
    const previousInvalidate = umem.onInvalidate;
    umem.onInvalidate = () => {
      mrInvalidations++;
      previousInvalidate?.();
    };
    expect(mr.pageSize).toBeGreaterThanOrEqual(0x1000n);
    const nic2Dma = umem.mappedRanges().addressAt(0);

    // Bytes elsewhere that must not change.
    const otherBar = gpuBar.cpuAddress; // first 4K of the BAR, outside the export
    bytes.write(otherBar, pattern(9, 4096));
    const nvmeBar = platform.topology.functions.get(NVME)!.bars[0]!.cpuAddress;
    bytes.write(nvmeBar, pattern(11, 4096));

    // The NIC writes into the GPU BAR through its IOMMUFD IOVA; the bytes land in the BAR.
    const nic = new Nic(fabric, NIC);
    const data = pattern(1, 8192);
    const rec = nic.dmaWrite(IOVA_BAR + 0x1000n, data);
    expect(rec.fault).toBeUndefined();
    expect(bytes.read(barTarget + 0x1000n, 8192)).toEqual(data);
    // An RDMA WRITE into the MR lands in the GPU BAR (NIC2's DMA through the host bridge).
    const data2 = pattern(2, 4096);
    rdma.rdmaWrite(mr.rkey, MR_IOVA + 0x10_0000n, data2);
    expect(bytes.read(barTarget + 0x10_0000n, 4096)).toEqual(data2);
    // And into user RAM through the same IOAS.
    nic.dmaWrite(IOVA_RAM, pattern(3, 4096));
    expect(mm.readUser(va, 4096)).toEqual(pattern(3, 4096));

    // Reset the GPU: the revoke reaches both importers before it completes.
    const faultsBefore = iommu.faults.length;
    const report = vfio.reset();
    expect(report.revoked.length).toBe(1);
    expect(report.revoked[0]!.report.notified.length).toBe(2);
    expect(report.revoked[0]!.report.unmapTimedOut).toEqual([]);
    expect(ioas.revokes.length).toBe(1);
    expect(ioas.revokes[0]!.unmapped).toEqual([{ domain: hwpt.domain.id, iova: IOVA_BAR, length: 2n * MiB }]);
    // vfio_pci_dma_buf_move invalidates on the revoke and again on the restore after the FLR (7.1).
    expect(mrInvalidations).toBe(2);
    expect(umem.isMapped).toBe(false);
    expect(umem.attachment.mappings.length).toBe(0);

    // The NIC's next write into the BAR faults at the IOMMU and is recorded; nothing lands.
    const snapshot = bytes.read(barTarget, 2 * 1024 * 1024);
    const failed = nic.tryDmaWrite(IOVA_BAR + 0x1000n, pattern(4, 4096));
    expect(failed.fault).toBeDefined();
    expect(failed.bytesMoved).toBe(0);
    expect(iommu.faults.length).toBe(faultsBefore + 1);
    expect(iommu.faults.at(-1)!.iova).toBe(IOVA_BAR + 0x1000n);
    // NIC2's old MR DMA address no longer reaches the BAR either.
    expect(errnoOf(() => nic2.dmaWrite(nic2Dma, pattern(5, 64)))).toBe('EFAULT');
    expect(Buffer.from(bytes.read(barTarget, 2 * 1024 * 1024)).equals(Buffer.from(snapshot))).toBe(true);

    // Nothing else is touched: user RAM mapping still works, other bytes unchanged.
    nic.dmaWrite(IOVA_RAM + 0x1000n, pattern(6, 4096));
    expect(mm.readUser(va + 0x1000n, 4096)).toEqual(pattern(6, 4096));
    expect(mm.readUser(va, 4096)).toEqual(pattern(3, 4096));
    expect(bytes.read(otherBar, 4096)).toEqual(pattern(9, 4096));
    expect(bytes.read(nvmeBar, 4096)).toEqual(pattern(11, 4096));

    // The export itself is usable again after the reset (memory stayed enabled): the dynamic MR maps
    // its pages again on next use (umem_dmabuf); IOMMUFD must unmap and map again (its revoke is
    // permanent).
    expect(buf.revoked).toBe(false);
    rdma.rdmaWrite(mr.rkey, MR_IOVA, pattern(7, 64));
    expect(bytes.read(barTarget, 64)).toEqual(pattern(7, 64));
    expect(umem.mapCount).toBe(2);
    expect(errnoOf(() => nic.dmaWrite(IOVA_BAR, pattern(8, 64)))).toBe('EFAULT');
    ioas.unmap(IOVA_BAR, 2n * MiB);
    ioas.mapDmaBuf(buf, 0n, 2n * MiB, { iova: IOVA_BAR });
    nic.dmaWrite(IOVA_BAR, pattern(8, 64));
    expect(bytes.read(barTarget, 64)).toEqual(pattern(8, 64));
  });

  it('disabling memory decoding revokes until enabled; closing the device revokes for good', () => {
    const { machine, fabric, vfio } = setup();
    const buf = vfio.exportDmaBuf({ regionIndex: 1, ranges: [{ offset: 0n, length: 2n * MiB }] });
    const iommu = machine.iommuOf(NIC)!;
    const ctx = new IommufdCtx(machine.metrics);
    const ioas = ctx.ioasAlloc();
    ctx.bindDevice(iommu, NIC).attach(ioas);
    ioas.mapDmaBuf(buf, 0n, 2n * MiB, { iova: IOVA_BAR });
    const nic = new Nic(fabric, NIC);
    nic.dmaWrite(IOVA_BAR, pattern(1, 64));
    vfio.configWrite(0x04, 0x4);
    expect(nic.tryDmaWrite(IOVA_BAR, pattern(1, 64)).fault).toBeDefined();
    // New maps are refused while revoked.
    expect(errnoOf(() => ioas.mapDmaBuf(buf, 0n, 2n * MiB, { iova: 2n * IOVA_BAR }))).toBe('ENODEV');
    vfio.configWrite(0x04, 0x6);
    ioas.unmap(IOVA_BAR, 2n * MiB);
    ioas.mapDmaBuf(buf, 0n, 2n * MiB, { iova: IOVA_BAR });
    nic.dmaWrite(IOVA_BAR, pattern(2, 64));
    vfio.close();
    expect(nic.tryDmaWrite(IOVA_BAR, pattern(3, 64)).fault).toBeDefined();
    expect(buf.revoked).toBe(true);
    // An RDMA MR over a revoked dma-buf cannot map: every access through it is refused.
    const rdma = new RdmaContext(rdmaDeviceOverDma(machine.device(NIC2), new Nic(fabric, NIC2)));
    const RW = IB_ACCESS_LOCAL_WRITE | IB_ACCESS_REMOTE_WRITE;
    expect(errnoOf(() => rdma.registerMr(ibUmemDmabufGet(rdma.device, buf, 0n, 2n * MiB, RW), RW))).toBe(
      'ENODEV',
    );
  });
});
