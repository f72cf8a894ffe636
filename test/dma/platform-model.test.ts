import { describe, expect, it } from 'vitest';
import { isPhysrError } from '../../src/core/index.ts';
import { Machine } from '../../src/dma/index.ts';
import {
  builtinPlatform,
  builtinPlatformNames,
  createPlatformModel,
  laptop,
  regionSize,
} from '../../src/platform/index.ts';

/**
 * Booted with redirect off on the switch's downstream ports and the root port above them: no ACS
 * isolation on that path, so GPU and NIC fall into one IOMMU group (Linux sets ACS with an IOMMU).
 */
const SWITCH_P2P = 'pci=disable_acs_redir=0000:00:01.0;0000:02:00.0;0000:02:01.0';

const GiB = 1n << 30n;

describe('PlatformModel', () => {
  it('builds every built-in machine with RAM, BARs as mmio, and a swiotlb hole', () => {
    for (const name of builtinPlatformNames()) {
      const p = builtinPlatform(name);
      expect(p.memoryMap.totalRam() > 0n).toBe(true);
      for (const fn of p.topology.functions.values()) {
        for (const bar of fn.bars) {
          if (bar.io) continue;
          const region = p.memoryMap.lookup(bar.cpuAddress)!;
          expect(region.kind).toBe('mmio');
        }
      }
      const pool = p.swiotlbPool!;
      expect(p.memoryMap.lookup(pool.start)!.kind).toBe('reserved');
      expect(pool.start + pool.size <= 4n * GiB).toBe(true);
      // The allocator never hands out pool pages: its pages are exactly the RAM pages.
      expect(BigInt(p.folios.totalPages) * 4096n).toBe(p.memoryMap.totalRam());
    }
  });

  it('two-socket-server has RAM on node 0 and node 1 and a VT-d IOMMU per host bridge', () => {
    const p = builtinPlatform('two-socket-server');
    const nodes = new Set(p.memoryMap.byKind('ram').map((r) => r.node));
    expect([...nodes].sort()).toEqual([0, 1]);
    expect(p.folios.nodes()).toEqual([0, 1]);
    const m = new Machine(p);
    expect([...m.iommus.values()].map((i) => i.name)).toEqual(['dmar0', 'dmar1']);
    expect(m.iommuOf('0000:81:00.0')!.name).toBe('dmar1');
    expect(m.iommuOf('0000:81:00.0')!.format.name).toMatch(/x86-64/);
  });

  it('ARM machines get LPAE tables; prefetchable BARs are published for P2PDMA', () => {
    const p = builtinPlatform('arm-server');
    const m = new Machine(p);
    expect(m.iommuOf('0001:01:00.0')!.format.name).toMatch(/arm-lpae/);
    const gpuBar = p.memoryMap.lookup(0x200_0000_0000n)!;
    expect(gpuBar.kind === 'mmio' && gpuBar.p2pdmaPages).toBe(true);
    expect(p.memoryMap.hasStructPage(0x200_0000_0000n)).toBe(true);
  });

  it('devices of one IOMMU group share the default DMA domain; passthrough conflicts are EBUSY', () => {
    const m = new Machine(builtinPlatform('two-socket-server', { cmdline: SWITCH_P2P }));
    const gpu = m.device('0000:03:00.0');
    const nic = m.device('0000:04:00.0');
    expect(gpu.group).toBe(nic.group);
    expect(gpu.domain).toBe(nic.domain);
    expect(m.device('0000:04:00.0')).toBe(nic);
    const other = new Machine(builtinPlatform('two-socket-server', { cmdline: SWITCH_P2P }));
    other.device('0000:03:00.0');
    try {
      other.device('0000:04:00.0', { passthrough: true });
      throw new Error('attached');
    } catch (error) {
      expect(isPhysrError(error, 'EBUSY')).toBe(true);
    }
  });

  it('a machine without an IOMMU maps direct', () => {
    const m = new Machine(builtinPlatform('laptop'), { iommu: false });
    expect(m.hasIommu).toBe(false);
    expect(m.device('0000:01:00.0').usesIommu).toBe(false);
  });

  it('refuses RAM over a BAR (EEXIST), unaligned RAM (EINVAL), no low RAM for swiotlb (ENOMEM), unknown names (ENOENT)', () => {
    const topology = laptop();
    const cases: [() => unknown, string][] = [
      [() => createPlatformModel({ topology, ram: [{ start: 0x8000_0000n, size: GiB, node: 0 }] }), 'EEXIST'],
      [() => createPlatformModel({ topology, ram: [{ start: 0x10n, size: GiB, node: 0 }] }), 'EINVAL'],
      [() => createPlatformModel({ topology, ram: [{ start: 8n * GiB, size: GiB, node: 0 }] }), 'ENOMEM'],
      [() => builtinPlatform('mainframe'), 'ENOENT'],
    ];
    for (const [fn, errno] of cases) {
      try {
        fn();
        throw new Error(`expected ${errno}`);
      } catch (error) {
        expect(isPhysrError(error, errno as 'EINVAL')).toBe(true);
      }
    }
    const noPool = createPlatformModel({
      topology,
      ram: [{ start: 8n * GiB, size: GiB, node: 0 }],
      swiotlbBytes: 0n,
    });
    expect(noPool.swiotlbPool).toBeUndefined();
    expect(new Machine(noPool).swiotlb).toBeUndefined();
    expect(regionSize(noPool.memoryMap.byKind('ram')[0]!)).toBe(GiB);
  });
});
