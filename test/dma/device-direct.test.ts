/**
 * A device's DMA parameters (struct device: dma_parms, dma_mask; kernel/dma/mapping.c) and dma-direct's
 * address rules (kernel/dma/direct.h, Linux 7.1): the dma-range offset, MMIO beyond the mask.
 */
import { describe, expect, it } from 'vitest';
import { PhyrList } from '../../src/core/index.ts';
import { builtinMachine, mapPhys, unmapPhys } from '../../src/dma/index.ts';
import { expectErrno } from '../errno.ts';
import { dmaToPhys } from './helpers.ts';

const GiB = 1n << 30n;
const NVME = '0000:06:00.0';
const NIC = '0000:04:00.0';
const GPU_BAR1 = 0x200_0000_0000n;

describe('device DMA parameters', () => {
  it('a max segment size must be positive (EINVAL naming it)', () => {
    const m = builtinMachine('two-socket-server');
    expectErrno(
      () => m.device(NVME, { maxSegmentSize: 0n }),
      'EINVAL',
      /max segment size 0 must be positive/,
    );
    expectErrno(() => m.device(NVME, { maxSegmentSize: -0x1000n }), 'EINVAL', /max segment size -4096/);
    expect(m.device(NVME, { maxSegmentSize: 1n }).maxSegmentSize).toBe(1n);
  });

  it('a segment boundary mask must be 2^n - 1 (EINVAL naming it)', () => {
    const m = builtinMachine('two-socket-server');
    expectErrno(
      () => m.device(NVME, { segmentBoundaryMask: 0xfff0n }),
      'EINVAL',
      /segment boundary mask 0xfff0 is not 2\^n - 1/,
    );
    expectErrno(() => m.device(NVME, { segmentBoundaryMask: 0x1000n }), 'EINVAL', /0x1000/);
    expect(m.device(NVME, { segmentBoundaryMask: 0xffffn }).segmentBoundaryMask).toBe(0xffffn);
  });

  it('dma-iommu accepts a mask below the DMA zone that dma-direct refuses (dma_direct_supported)', () => {
    const withIommu = builtinMachine('two-socket-server');
    expect(withIommu.device(NVME, { dmaMask: 20 }).dmaMask).toBe(0xf_ffffn);
    const direct = builtinMachine('two-socket-server', { iommu: false });
    expectErrno(() => direct.device(NVME, { dmaMask: 20 }), 'EIO', /below the 24-bit DMA zone/);
    expect(direct.device(NVME, { dmaMask: 24 }).dmaMask).toBe(0xff_ffffn);
  });
});

describe('dma-direct addresses', () => {
  it('RAM is seen at phys minus the dma-range offset (phys_to_dma), and read back through it', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const dev = m.device(NVME, { dmaRangeOffset: GiB });
    const map = mapPhys(dev, 5n * GiB + 0x80n, 0x100n, 'TO_DEVICE');
    expect(map.dma.addressAt(0)).toBe(4n * GiB + 0x80n);
    expect(dmaToPhys(dev, map.dma.addressAt(0))).toBe(5n * GiB + 0x80n);
    unmapPhys(dev, 4n * GiB + 0x80n, 0x100n, 'TO_DEVICE');
    const list = dev.map(PhyrList.fromRanges([[6n * GiB, 0x1000n]]), 'TO_DEVICE');
    expect(list.dma.toArray()).toEqual([{ address: 5n * GiB, length: 0x1000n }]);
    dev.unmap(list);
  });

  it('MMIO beyond the mask cannot be bounced: EIO naming the address and the mask', () => {
    const m = builtinMachine('two-socket-server', { iommu: false });
    const nic = m.device(NIC, { dmaMask: 32 });
    expectErrno(
      () => mapPhys(nic, GPU_BAR1, 0x1000n, 'TO_DEVICE', { mmio: true }),
      'EIO',
      new RegExp(`${NIC}: MMIO 0x20000000000\\+4096 overflows mask 0xffffffff`),
    );
    // Within the mask it maps at its own address.
    const low = mapPhys(nic, 0x8000_0000n, 0x1000n, 'TO_DEVICE', { mmio: true });
    expect(low.dma.addressAt(0)).toBe(0x8000_0000n);
    unmapPhys(nic, 0x8000_0000n, 0x1000n, 'TO_DEVICE');
  });
});
