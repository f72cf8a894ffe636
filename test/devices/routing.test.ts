import { describe, expect, it } from 'vitest';
import { COUNTER, isPhysrError } from '../../src/core/index.ts';
import { DEVICE_COUNTER, DmaAccessError, DmaCapableDevice, routeDma } from '../../src/devices/index.ts';
import { IOMMU_READ, IOMMU_WRITE } from '../../src/iommu/index.ts';
import {
  acsPort,
  buildTopology,
  downstreamPort,
  endpoint,
  laptop,
  pciSwitch,
  rootPort,
  twoSocketServer,
} from '../../src/platform/index.ts';
import { makeFabric } from './fabric-fixture.ts';

const GPU = '0000:03:00.0';
const NIC = '0000:04:00.0';
const NIC2 = '0000:81:00.0';
const GPU_BAR1 = 0x200_0000_0000n; // the 32 GiB BAR the builder assigns (bus offset 0)
const RW = IOMMU_READ | IOMMU_WRITE;

function pattern(length: number, salt = 1): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 13 + salt) & 0xff);
}

describe('routing through the IOMMU to RAM', () => {
  it('translates each page separately and lands the bytes where the page table points', () => {
    const f = makeFabric(twoSocketServer());
    const domain = f.domains.get(NIC)!;
    domain.map(0x10000n, 0x20_0000n, 0x1000n, RW);
    domain.map(0x11000n, 0x40_0000n, 0x1000n, RW); // second page elsewhere
    const nic = new DmaCapableDevice(f, NIC);
    const data = pattern(0x1800);
    const record = nic.dmaWrite(0x10800n, data);
    expect(record.segments.map((s) => [s.dmaAddress, s.length, s.physAddress, s.path])).toEqual([
      [0x10800n, 0x800, 0x20_0800n, 'iommu'],
      [0x11000n, 0x1000, 0x40_0000n, 'iommu'],
    ]);
    expect(record.segments[0]!.hops.map((h) => h.kind)).toEqual([
      'device',
      'port',
      'port',
      'port',
      'root-complex',
      'iommu',
      'memory',
    ]);
    expect(record.segments[0]!.hops.map((h) => h.name).slice(0, 5)).toEqual([
      NIC,
      '0000:02:01.0',
      '0000:01:00.0',
      '0000:00:01.0',
      'pci0000:00',
    ]);
    expect(f.bytes.read(0x20_0800n, 0x800)).toEqual(data.subarray(0, 0x800));
    expect(f.bytes.read(0x40_0000n, 0x1000)).toEqual(data.subarray(0x800));
    expect(f.metrics.get(COUNTER.dmaBytesWritten)).toBe(0x1800);
    expect(f.metrics.get(COUNTER.iotlbMisses)).toBe(2);
    expect(nic.dmaRead(0x10800n, 0x1800)).toEqual(data);
    expect(f.metrics.get(COUNTER.iotlbHits)).toBe(2);
  });

  it('merges contiguous pages into one segment', () => {
    const f = makeFabric(twoSocketServer());
    f.domains.get(NIC)!.map(0x10000n, 0x20_0000n, 0x4000n, RW);
    const record = routeDma(f, NIC, 'write', 0x10000n, 0x4000);
    expect(record.segments).toHaveLength(1);
    expect(record.segments[0]!.length).toBe(0x4000);
  });

  it('faults on an unmapped IOVA: recorded by the IOMMU, EFAULT, earlier pages already written', () => {
    const f = makeFabric(twoSocketServer());
    f.domains.get(NIC)!.map(0x10000n, 0x20_0000n, 0x1000n, RW);
    const nic = new DmaCapableDevice(f, NIC);
    let error: unknown;
    try {
      nic.dmaWrite(0x10000n, pattern(0x2000));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DmaAccessError);
    const record = (error as DmaAccessError).record;
    expect((error as DmaAccessError).errno).toBe('EFAULT');
    expect(record.bytesMoved).toBe(0x1000);
    expect(record.segments.at(-1)!.target.kind).toBe('fault');
    expect(f.iommus.get('pci0000:00')!.faults).toMatchObject([
      { device: NIC, iova: 0x11000n, access: 'write' },
    ]);
    expect(f.bytes.read(0x20_0000n, 0x1000)).toEqual(pattern(0x2000).subarray(0, 0x1000));
    expect(f.metrics.get(DEVICE_COUNTER.failedAccesses)).toBe(1);
  });

  it('refuses a write through a read-only mapping', () => {
    const f = makeFabric(twoSocketServer());
    f.domains.get(NIC)!.map(0x10000n, 0x20_0000n, 0x1000n, IOMMU_READ);
    const nic = new DmaCapableDevice(f, NIC);
    expect(nic.dmaRead(0x10000n, 16)).toHaveLength(16);
    expect(() => nic.dmaWrite(0x10000n, pattern(16))).toThrow(/permission/);
  });

  it('a translation into a reserved hole lands nowhere (EFAULT naming the address)', () => {
    const f = makeFabric(twoSocketServer());
    f.domains.get(NIC)!.map(0x10000n, 0xfee0_0000n, 0x1000n, RW);
    const record = routeDma(f, NIC, 'write', 0x10000n, 4);
    expect(record.fault?.errno).toBe('EFAULT');
    expect(record.fault?.reason).toContain('0xfee00000');
  });
});

describe('peer-to-peer routing', () => {
  it('a switch routes a bus address in a peer BAR straight to it, bypassing the IOMMU', () => {
    const f = makeFabric(twoSocketServer());
    const nic = new DmaCapableDevice(f, NIC);
    const data = pattern(0x3000, 7);
    const record = nic.dmaWrite(GPU_BAR1 + 0x1000n, data);
    expect(record.segments).toHaveLength(1);
    const s = record.segments[0]!;
    expect(s.path).toBe('switch');
    expect(s.target).toMatchObject({
      kind: 'peer-bar',
      bdf: GPU,
      barIndex: 1,
      offset: 0x1000n,
      via: 'switch',
    });
    expect(s.hops.map((h) => h.name)).toEqual([NIC, '0000:02:01.0', '0000:01:00.0', '0000:02:00.0', GPU]);
    expect(s.hops[2]!.note).toMatch(/common upstream/);
    expect(f.bytes.read(GPU_BAR1 + 0x1000n, 0x3000)).toEqual(data);
    expect(f.metrics.get(COUNTER.iotlbMisses) + f.metrics.get(COUNTER.iotlbHits)).toBe(0);
    expect(f.metrics.get(DEVICE_COUNTER.switchP2pBytes)).toBe(0x3000);
  });

  it('ACS redirect on the switch sends the same request up to the root complex and the IOMMU', () => {
    const f = makeFabric(twoSocketServer({ acsRedirect: true }));
    const record = routeDma(f, NIC, 'write', GPU_BAR1, 64);
    const s = record.segments[0]!;
    expect(s.path).toBe('iommu');
    expect(s.hops.map((h) => [h.kind, h.name])).toEqual([
      ['device', NIC],
      ['port', '0000:02:01.0'],
      ['port', '0000:01:00.0'],
      ['port', '0000:00:01.0'],
      ['root-complex', 'pci0000:00'],
      ['iommu', 'dmar-pci0000:00'],
    ]);
    expect(s.hops[1]!.note).toMatch(/ACS redirect/);
    // No IOVA mapping at the bus address: the IOMMU faults.
    expect(record.fault?.errno).toBe('EFAULT');
  });

  it('with ACS redirect, an IOMMU mapping of the BAR reaches it through the allowlisted host bridge', () => {
    const f = makeFabric(twoSocketServer({ acsRedirect: true }));
    f.domains.get(NIC)!.map(0x8000_0000n, GPU_BAR1, 0x20_0000n, RW);
    const nic = new DmaCapableDevice(f, NIC);
    const data = pattern(256, 3);
    const record = nic.dmaWrite(0x8000_0100n, data);
    const s = record.segments[0]!;
    expect(s.target).toMatchObject({ kind: 'peer-bar', bdf: GPU, via: 'host-bridge', offset: 0x100n });
    expect(s.hops.slice(-4).map((h) => h.name)).toEqual([
      '0000:00:01.0',
      '0000:01:00.0',
      '0000:02:00.0',
      GPU,
    ]);
    expect(f.bytes.read(GPU_BAR1 + 0x100n, 256)).toEqual(data);
    expect(f.metrics.get(DEVICE_COUNTER.hostBridgeP2pBytes)).toBe(256);
  });

  it('a device on the other socket reaches the GPU BAR through both allowlisted host bridges (direct)', () => {
    const f = makeFabric(twoSocketServer(), { translated: (bdf) => bdf !== NIC2 });
    const nic2 = new DmaCapableDevice(f, NIC2);
    const data = pattern(0x2000, 9);
    const record = nic2.dmaWrite(GPU_BAR1 + 0x10_0000n, data);
    expect(record.segments.map((s) => s.path)).toEqual(['direct']);
    expect(record.segments[0]!.target).toMatchObject({ kind: 'peer-bar', bdf: GPU, via: 'host-bridge' });
    expect(record.segments[0]!.hops.map((h) => h.name)).toEqual([
      NIC2,
      '0000:80:01.0',
      'pci0000:80',
      '0000:00:01.0',
      '0000:01:00.0',
      '0000:02:00.0',
      GPU,
    ]);
    expect(f.bytes.read(GPU_BAR1 + 0x10_0000n, 0x2000)).toEqual(data);
  });

  it('host-bridge P2P that p2pdma refuses is an Unsupported Request (EREMOTEIO), nothing written', () => {
    const t = laptop();
    const wifi = [...t.functions.values()].find((fn) => fn.name?.startsWith('Wi-Fi'))!.bdf;
    const igpu = [...t.functions.values()].find((fn) => fn.name?.includes('iGPU'))!;
    const bar = igpu.bars.find((b) => b.index === 2)!;
    const f = makeFabric(t, { translated: () => false });
    const dev = new DmaCapableDevice(f, wifi);
    const record = dev.tryDmaWrite(bar.cpuAddress, pattern(64));
    expect(record.fault?.errno).toBe('EREMOTEIO');
    expect(record.fault?.reason).toMatch(/Unsupported Request.*not in P2PDMA whitelist/);
    expect(record.bytesMoved).toBe(0);
    expect(f.bytes.isResident(bar.cpuAddress)).toBe(false);
    expect(f.metrics.get(DEVICE_COUNTER.unsupportedRequests)).toBe(1);
  });

  it('a switch routes by bus address: with a host bridge offset, the CPU address of the BAR is not claimed', () => {
    const offset = 0x4000_0000_0000n;
    const t = buildTopology({
      cpu: { vendor: 'arm', family: undefined },
      hostBridges: [
        {
          busOffset: offset,
          mmio32: { base: offset + 0x8000_0000n, size: 0x4000_0000n },
          mmio64: { base: offset + 0x10_0000_0000n, size: 0x10_0000_0000n },
          children: [
            rootPort({ acs: acsPort({ redirect: false }) }, [
              pciSwitch({}, [
                downstreamPort({ device: 0 }, [
                  endpoint({ name: 'gpu', bars: [{ index: 0, size: 0x1000_0000n, prefetchable: true }] }),
                ]),
                downstreamPort({ device: 1 }, [endpoint({ name: 'nic' })]),
              ]),
            ]),
          ],
        },
      ],
    });
    const gpu = [...t.functions.values()].find((fn) => fn.name === 'gpu')!;
    const nicBdf = [...t.functions.values()].find((fn) => fn.name === 'nic')!.bdf;
    const cpu = gpu.bars[0]!.cpuAddress;
    const f = makeFabric(t);
    const dev = new DmaCapableDevice(f, nicBdf);
    const record = dev.dmaWrite(cpu - offset + 0x40n, pattern(32));
    expect(record.segments[0]!.path).toBe('switch');
    expect(record.segments[0]!.physAddress).toBe(cpu + 0x40n);
    expect(f.bytes.read(cpu + 0x40n, 32)).toEqual(pattern(32));
    // The CPU address itself is just an IOVA to the fabric: up to the IOMMU, which has no mapping.
    expect(routeDma(f, nicBdf, 'write', cpu, 4).segments[0]!.path).toBe('iommu');
  });
});

describe('unmap: strict faults, lazy leaves stale IOTLB entries until the flush', () => {
  it('strict: the next access after unmap faults', () => {
    const f = makeFabric(twoSocketServer(), { strict: true });
    const domain = f.domains.get(NIC)!;
    const iova = domain.allocIova(0x2000n, (1n << 48n) - 1n);
    domain.map(iova, 0x30_0000n, 0x2000n, RW);
    const nic = new DmaCapableDevice(f, NIC);
    nic.dmaWrite(iova, pattern(0x2000));
    domain.dmaUnmap(iova, 0x2000n);
    const record = nic.tryDmaWrite(iova, pattern(0x2000, 5));
    expect(record.fault?.errno).toBe('EFAULT');
    expect(record.bytesMoved).toBe(0);
    expect(f.bytes.read(0x30_0000n, 0x2000)).toEqual(pattern(0x2000));
  });

  it('lazy: a stale hit still lands in the old page and is counted; after the flush it faults', () => {
    const f = makeFabric(twoSocketServer(), { strict: false });
    const domain = f.domains.get(NIC)!;
    const iova = domain.allocIova(0x2000n, (1n << 48n) - 1n);
    domain.map(iova, 0x30_0000n, 0x2000n, RW);
    const nic = new DmaCapableDevice(f, NIC);
    nic.dmaWrite(iova, pattern(0x2000));
    domain.dmaUnmap(iova, 0x2000n);
    const record = nic.dmaWrite(iova, pattern(0x2000, 5));
    expect(record.segments.reduce((n, s) => n + s.staleHits, 0)).toBe(2);
    expect(record.segments[0]!.hops.find((h) => h.kind === 'iommu')!.note).toMatch(/stale/);
    expect(f.metrics.get(COUNTER.iotlbStaleHits)).toBe(2);
    expect(f.metrics.get(DEVICE_COUNTER.staleAccessBytes)).toBe(0x2000);
    expect(f.bytes.read(0x30_0000n, 0x2000)).toEqual(pattern(0x2000, 5));
    domain.flushQueue();
    expect(nic.tryDmaWrite(iova, pattern(16)).fault?.errno).toBe('EFAULT');
  });
});

describe('argument checks', () => {
  it('refuses unknown devices and bad lengths', () => {
    const f = makeFabric(twoSocketServer());
    expect(() => routeDma(f, '0000:99:00.0', 'read', 0n, 1)).toThrow(/no PCI function/);
    expect(() => routeDma(f, NIC, 'read', 0n, -1)).toThrow(/non-negative/);
    try {
      routeDma(f, NIC, 'read', (1n << 64n) - 1n, 2);
    } catch (e) {
      expect(isPhysrError(e, 'EINVAL')).toBe(true);
    }
  });
});
