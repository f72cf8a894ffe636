import { describe, expect, it } from 'vitest';
import { COUNTER, DmaRangeList, isPhysrError } from '../../src/core/index.ts';
import { DmaCapableDevice, describeAccess, Gpu, Nic, packetPattern } from '../../src/devices/index.ts';
import { IOMMU_READ, IOMMU_WRITE } from '../../src/iommu/index.ts';
import { twoSocketServer } from '../../src/platform/index.ts';
import { makeFabric } from './fabric-fixture.ts';

const GPU = '0000:03:00.0';
const NIC = '0000:04:00.0';
const RW = IOMMU_READ | IOMMU_WRITE;

describe('NIC', () => {
  it('fills posted buffers in order, scattering across ranges; drops with EAGAIN when none is posted', () => {
    const f = makeFabric(twoSocketServer());
    f.domains.get(NIC)!.map(0x10000n, 0x20_0000n, 0x4000n, RW);
    const nic = new Nic(f, NIC);
    const a = DmaRangeList.fromRanges([
      [0x10000n, 0x100n],
      [0x12000n, 0x100n],
    ]);
    const b = DmaRangeList.fromRanges([[0x13000n, 0x200n]]);
    nic.postReceive(a);
    nic.postReceive(b);
    nic.receive(packetPattern(1, 0x180));
    nic.receive(packetPattern(2, 0x200));
    expect(f.bytes.read(0x20_0000n, 0x100)).toEqual(packetPattern(1, 0x180).subarray(0, 0x100));
    expect(f.bytes.read(0x20_2000n, 0x80)).toEqual(packetPattern(1, 0x180).subarray(0x100));
    expect(f.bytes.read(0x20_3000n, 0x200)).toEqual(packetPattern(2, 0x200));
    expect(() => nic.receive(packetPattern(3, 16))).toThrow(/no receive buffer/);
    expect(nic.missed).toBe(1);
    expect(f.metrics.get('devices.nic_rx_packets')).toBe(2);
    expect(nic.transmit(b)).toEqual(packetPattern(2, 0x200));
  });

  it('refuses a packet longer than the buffer (EOVERFLOW) without writing or consuming it', () => {
    const f = makeFabric(twoSocketServer());
    f.domains.get(NIC)!.map(0x10000n, 0x20_0000n, 0x1000n, RW);
    const nic = new Nic(f, NIC);
    nic.postReceive(DmaRangeList.fromRanges([[0x10000n, 0x100n]]));
    try {
      nic.receive(packetPattern(1, 0x101));
      expect.unreachable();
    } catch (e) {
      expect(isPhysrError(e, 'EOVERFLOW')).toBe(true);
    }
    expect(nic.postedBuffers).toBe(1);
    expect(f.metrics.get(COUNTER.dmaBytesWritten)).toBe(0);
  });

  it('packet patterns differ by sequence number and by offset', () => {
    expect(packetPattern(1, 64)).not.toEqual(packetPattern(2, 64));
    const p = packetPattern(1, 4096);
    expect(new Set(p).size).toBeGreaterThan(200);
  });
});

describe('GPU', () => {
  it('picks its largest BAR as VRAM and its copy engine DMAs between VRAM and host memory', () => {
    const f = makeFabric(twoSocketServer());
    const gpu = new Gpu(f, GPU);
    expect(gpu.vramBar.index).toBe(1);
    expect(gpu.vramSize).toBe(32n << 30n);
    f.domains.get(GPU)!.map(0x40000n, 0x30_0000n, 0x2000n, RW);
    const data = packetPattern(4, 0x2000);
    gpu.writeVram(0x1000n, data);
    gpu.copyOut(0x1000n, 0x2000, 0x40000n);
    expect(f.bytes.read(0x30_0000n, 0x2000)).toEqual(data);
    gpu.copyIn(0x40000n, 0x2000, 0x9000n);
    expect(gpu.readVram(0x9000n, 0x2000)).toEqual(data);
    expect(() => gpu.readVram(gpu.vramSize - 1n, 2)).toThrow(/outside BAR1/);
    expect(new Gpu(f, GPU, { barIndex: 3 }).vramSize).toBe(32n << 20n);
    expect(() => new Gpu(f, NIC, { barIndex: 4 })).toThrow(/no memory BAR 4/);
  });
});

describe('access records', () => {
  it('describe an access hop by hop, and the log keeps only the newest records', () => {
    const f = makeFabric(twoSocketServer());
    const dev = new DmaCapableDevice(f, NIC);
    dev.logLimit = 2;
    const record = dev.dmaWrite(0x200_0000_0000n, new Uint8Array(8));
    expect(describeAccess(record)).toBe(
      `${NIC} write 8 bytes at 0x20000000000: 0x20000000000+8: ${NIC} -> 0000:02:01.0 -> 0000:01:00.0 -> 0000:02:00.0 -> ${GPU} => BAR1 of ${GPU} via switch`,
    );
    dev.dmaWrite(0x200_0000_0000n, new Uint8Array(1));
    dev.dmaWrite(0x200_0000_0000n, new Uint8Array(2));
    expect(dev.log.map((r) => r.length)).toEqual([1, 2]);
  });
});
