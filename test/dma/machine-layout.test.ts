/**
 * The Machine's defaults (iommu.strict=1, dma-debug on, one IOMMU unit per host bridge named as the
 * kernel names them: dmar%d in drivers/iommu/intel/dmar.c, AMD-Vi, smmu3) and the IOVA layout
 * helpers' plain cases (src/dma/iova-layout.ts).
 */
import { describe, expect, it } from 'vitest';
import { builtinMachine, coversWholeIova, linkedRunsOf, planPackedLayout } from '../../src/dma/index.ts';

const NVME = '0000:06:00.0';
const NIC = '0000:04:00.0';

describe('Machine defaults', () => {
  it('strict invalidation and dma-debug are on unless turned off', () => {
    const m = builtinMachine('two-socket-server');
    expect(m.strict).toBe(true);
    expect(m.debug.enabled).toBe(true);
    const lazy = builtinMachine('two-socket-server', { strict: false, debug: false });
    expect(lazy.strict).toBe(false);
    expect(lazy.debug.enabled).toBe(false);
  });

  it('names an Intel unit dmar<n>, one per host bridge, and passes the IOTLB capacity on', () => {
    const m = builtinMachine('two-socket-server', { iotlbCapacity: 32 });
    const units = [...m.iommus.values()];
    expect(units.map((u) => u.name)).toEqual(units.map((_, i) => `dmar${i}`));
    expect(units.length).toBe(m.platform.topology.hostBridges.length);
    expect(units.every((u) => u.iotlb.capacity === 32)).toBe(true);
    const defaults = builtinMachine('two-socket-server');
    expect([...defaults.iommus.values()][0]!.iotlb.capacity).toBe(4096);
  });

  it('lists the devices made so far', () => {
    const m = builtinMachine('two-socket-server');
    expect(m.allDevices()).toEqual([]);
    const nvme = m.device(NVME);
    const nic = m.device(NIC);
    expect(m.allDevices()).toEqual([nvme, nic]);
    // A second call returns the device made first.
    expect(m.device(NVME)).toBe(nvme);
    expect(m.allDevices().length).toBe(2);
  });
});

describe('IOVA layout helpers', () => {
  it('the packed layout puts ranges back to back from offset 0', () => {
    expect(
      planPackedLayout([
        { address: 0x5000_0100n, length: 0xf00n },
        { address: 0x7000_0000n, length: 0x20_0000n },
        { address: 0x9000_0000n, length: 0x10n },
      ]),
    ).toEqual({ offsets: [0n, 0xf00n, 0x20_0f00n], size: 0x20_0f10n });
  });

  it('linked stretches merge into gap-free runs whatever their order', () => {
    const want = [
      { offset: 0n, size: 0x3000n },
      { offset: 0x4000n, size: 0x1000n },
    ];
    const stretches = [
      { offset: 0n, size: 0x1000n },
      { offset: 0x1000n, size: 0x2000n },
      { offset: 0x4000n, size: 0x1000n },
    ];
    expect(linkedRunsOf(stretches)).toEqual(want);
    expect(linkedRunsOf([stretches[2]!, stretches[0]!, stretches[1]!])).toEqual(want);
  });

  it('one dma_iova_destroy undoes the runs only when they are exactly [0, size)', () => {
    expect(coversWholeIova([{ offset: 0n, size: 0x3000n }], 0x3000n)).toBe(true);
    expect(coversWholeIova([{ offset: 0x1000n, size: 0x2000n }], 0x3000n)).toBe(false);
    expect(coversWholeIova([{ offset: 0n, size: 0x2000n }], 0x3000n)).toBe(false);
    expect(
      coversWholeIova(
        [
          { offset: 0n, size: 0x1000n },
          { offset: 0x2000n, size: 0x1000n },
        ],
        0x3000n,
      ),
    ).toBe(false);
    expect(coversWholeIova([], 0x3000n)).toBe(false);
    // Each condition on its own: a run of the right size at the wrong offset, a second run after [0, size).
    expect(coversWholeIova([{ offset: 0x1000n, size: 0x3000n }], 0x3000n)).toBe(false);
    expect(
      coversWholeIova(
        [
          { offset: 0n, size: 0x3000n },
          { offset: 0x4000n, size: 0x1000n },
        ],
        0x3000n,
      ),
    ).toBe(false);
  });
});
