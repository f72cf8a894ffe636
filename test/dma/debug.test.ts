import { describe, expect, it } from 'vitest';
import { PhyrList, phyrListToSgTable } from '../../src/core/index.ts';
import {
  builtinMachine,
  type DmaDebugClass,
  dmaMappingError,
  dmaSyncForCpu,
  dmaSyncForDevice,
  dmaSyncSg,
  dmaUnmap,
  dmaUnmapSg,
  mapPhys,
  unmapPhys,
} from '../../src/dma/index.ts';

const GiB = 1n << 30n;
const NVME = '0000:06:00.0';

function setup() {
  const m = builtinMachine('two-socket-server');
  const dev = m.device(NVME);
  return { m, dev };
}

function classes(m: ReturnType<typeof setup>['m']): DmaDebugClass[] {
  return m.debug.findings.map((f) => f.class);
}

const one = PhyrList.fromRanges([[5n * GiB, 0x1000n]]);

describe('DMA-API debug: every misuse class', () => {
  it('a clean map/unmap reports nothing', () => {
    const { m, dev } = setup();
    const map = dev.map(one, 'TO_DEVICE');
    dev.syncForDevice(map);
    dev.unmap(map);
    const p = mapPhys(dev, 5n * GiB, 0x100n, 'FROM_DEVICE');
    dmaMappingError(p);
    dmaSyncForCpu(p);
    unmapPhys(dev, p.dma.addressAt(0), 0x100n, 'FROM_DEVICE');
    expect(m.debug.findings).toEqual([]);
    expect(m.debug.activeCount).toBe(0);
  });

  it('unmap-not-mapped: never mapped, and double unmap', () => {
    const { m, dev } = setup();
    unmapPhys(dev, 0x1234_0000n, 0x1000n, 'TO_DEVICE');
    const map = dev.map(one, 'TO_DEVICE');
    dev.unmap(map);
    dev.unmap(map);
    expect(classes(m)).toEqual(['unmap-not-mapped', 'unmap-not-mapped']);
    expect(m.metrics.get('dma_debug.unmap-not-mapped')).toBe(2);
    expect(m.debug.findings[0]!.message).toMatch(/has not allocated/);
  });

  it('unmap-wrong-size', () => {
    const { m, dev } = setup();
    dmaUnmap(dev.map(one, 'TO_DEVICE'), { size: 0x800n });
    expect(classes(m)).toEqual(['unmap-wrong-size']);
  });

  it('unmap-wrong-direction', () => {
    const { m, dev } = setup();
    dmaUnmap(dev.map(one, 'TO_DEVICE'), { direction: 'FROM_DEVICE' });
    expect(classes(m)).toEqual(['unmap-wrong-direction']);
  });

  it('unmap-wrong-type: mapped with the IOVA API, unmapped as phys', () => {
    const { m, dev } = setup();
    const map = dev.map(one, 'TO_DEVICE');
    unmapPhys(dev, map.dma.addressAt(0), 0x1000n, 'TO_DEVICE');
    expect(classes(m)).toEqual(['unmap-wrong-type']);
    expect(m.debug.findings[0]!.message).toMatch(/mapped as iova\] \[unmapped as phys/);
  });

  it('map-error-not-checked: dma_map_phys without dma_mapping_error', () => {
    const { m, dev } = setup();
    const p = mapPhys(dev, 5n * GiB, 0x100n, 'TO_DEVICE');
    unmapPhys(dev, p.dma.addressAt(0), 0x100n, 'TO_DEVICE');
    expect(classes(m)).toEqual(['map-error-not-checked']);
  });

  it('unmap-wrong-sg-nents', () => {
    const { m, dev } = setup();
    const sgt = phyrListToSgTable(
      PhyrList.fromRanges([
        [5n * GiB, 0x1000n],
        [6n * GiB, 0x1000n],
      ]),
    );
    dev.mapSg(sgt, 'TO_DEVICE');
    dmaUnmapSg(dev, sgt, 'TO_DEVICE', {}, 1);
    expect(classes(m)).toContain('unmap-wrong-sg-nents');
  });

  it('sync-not-mapped', () => {
    const { m, dev } = setup();
    const map = dev.map(one, 'FROM_DEVICE');
    dev.unmap(map);
    dmaSyncForCpu(map);
    expect(classes(m)).toEqual(['sync-not-mapped']);
  });

  it('sync-beyond-mapping', () => {
    const { m, dev } = setup();
    const map = dev.map(one, 'FROM_DEVICE');
    dmaSyncForCpu(map, 0xf00n, 0x200n);
    expect(classes(m)).toEqual(['sync-beyond-mapping']);
    dev.unmap(map);
  });

  it('sync-wrong-direction and sync-read-only-for-cpu', () => {
    const { m, dev } = setup();
    const map = dev.map(one, 'TO_DEVICE');
    dmaSyncForCpu(map, 0n, 0x1000n, 'FROM_DEVICE');
    expect(classes(m)).toEqual(['sync-wrong-direction', 'sync-read-only-for-cpu']);
    dev.unmap(map);
  });

  it('sync-write-only-for-device', () => {
    const { m, dev } = setup();
    const map = dev.map(one, 'FROM_DEVICE');
    dmaSyncForDevice(map, 0n, 0x1000n, 'TO_DEVICE');
    expect(classes(m)).toEqual(['sync-wrong-direction', 'sync-write-only-for-device']);
    dev.unmap(map);
  });

  it('a BIDIRECTIONAL mapping may be synced either way', () => {
    const { m, dev } = setup();
    const map = dev.map(one, 'BIDIRECTIONAL');
    dmaSyncForCpu(map, 0n, 0x1000n, 'FROM_DEVICE');
    dmaSyncForDevice(map, 0n, 0x1000n, 'TO_DEVICE');
    dev.unmap(map);
    expect(m.debug.findings).toEqual([]);
  });

  it('sync-sg-wrong-nents', () => {
    const { m, dev } = setup();
    const sgt = phyrListToSgTable(PhyrList.fromRanges([[5n * GiB, 0x1000n]]));
    dev.mapSg(sgt, 'FROM_DEVICE');
    m.debug.checkSync(NVME, sgt.dmaAddressAt(sgt.sgl), 0x1000n, 'FROM_DEVICE', true, 3);
    dmaSyncSg(dev, sgt, 'FROM_DEVICE', true);
    expect(classes(m)).toEqual(['sync-sg-wrong-nents']);
    dev.unmapSg(sgt, 'FROM_DEVICE');
  });

  it('sg-segment-too-long and sg-segment-crosses-boundary (check_sg_segment)', () => {
    const { m } = setup();
    m.debug.checkSgSegment(NVME, 0x1000n, 0x2_0000n, 0x1_0000n, 0xffff_ffffn);
    m.debug.checkSgSegment(NVME, 0xffff_f000n, 0x2000n, 0x1_0000n, 0xffff_ffffn);
    expect(classes(m)).toEqual(['sg-segment-too-long', 'sg-segment-crosses-boundary']);
  });

  it('a correct map_sg passes check_sg_segment for every segment', () => {
    const { m, dev } = setup();
    // Built to the device's 64 KiB max segment (PCI default): __finalise_sg cannot merge any two.
    const sgt = phyrListToSgTable(PhyrList.fromRanges([[5n * GiB, 0x4_0000n]]), { maxSegment: 0x1_0000 });
    const nents = dev.mapSg(sgt, 'TO_DEVICE');
    expect(nents).toBe(4);
    dev.unmapSg(sgt, 'TO_DEVICE');
    expect(m.debug.findings).toEqual([]);
  });

  it('leaked-mappings at device removal', () => {
    const { m, dev } = setup();
    dev.map(one, 'TO_DEVICE');
    dev.map(PhyrList.fromRanges([[6n * GiB, 0x1000n]]), 'TO_DEVICE');
    expect(m.removeDevice(NVME)).toBe(2);
    expect(classes(m)).toEqual(['leaked-mappings']);
    expect(m.debug.findings[0]!.message).toMatch(/count=2/);
  });

  it('overlapping-cacheline: two device-writable mappings of one cacheline (EEXIST)', () => {
    const { m, dev } = setup();
    const a = dev.map(PhyrList.fromRanges([[5n * GiB + 0x10n, 0x10n]]), 'FROM_DEVICE');
    const b = dev.map(PhyrList.fromRanges([[5n * GiB + 0x20n, 0x10n]]), 'FROM_DEVICE');
    expect(classes(m)).toEqual(['overlapping-cacheline']);
    expect(m.debug.findings[0]!.message).toMatch(/EEXIST/);
    // TO_DEVICE mappings are not tracked, and SKIP_CPU_SYNC silences the warning.
    dev.map(PhyrList.fromRanges([[5n * GiB + 0x30n, 0x10n]]), 'TO_DEVICE');
    dev.map(PhyrList.fromRanges([[5n * GiB + 0x38n, 0x8n]]), 'FROM_DEVICE', { skipCpuSync: true });
    expect(classes(m)).toEqual(['overlapping-cacheline']);
    dev.unmap(a);
    dev.unmap(b);
  });

  it('stack and vmalloc checks are not applicable: physr maps physical addresses only', () => {
    const all: DmaDebugClass[] = [
      'unmap-not-mapped',
      'unmap-wrong-size',
      'unmap-wrong-type',
      'unmap-wrong-sg-nents',
      'unmap-wrong-direction',
      'map-error-not-checked',
      'sync-not-mapped',
      'sync-beyond-mapping',
      'sync-wrong-direction',
      'sync-read-only-for-cpu',
      'sync-write-only-for-device',
      'sync-sg-wrong-nents',
      'sg-segment-too-long',
      'sg-segment-crosses-boundary',
      'leaked-mappings',
      'overlapping-cacheline',
    ];
    expect(all.some((c) => /stack|vmalloc/.test(c))).toBe(false);
  });
});
