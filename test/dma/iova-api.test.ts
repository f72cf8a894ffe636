/**
 * The two-step IOVA API's bookkeeping (include/linux/dma-mapping.h, drivers/iommu/dma-iommu.c, Linux
 * 7.1): dma_use_iova, a state used with its own device only, no link or destroy after destroy, no
 * empty link, unlink at the right IOVA, and an untrusted device's bounce that must keep its granule
 * offset to be linked below it.
 */
import { describe, expect, it } from 'vitest';
import {
  builtinMachine,
  dmaIovaDestroy,
  dmaIovaFree,
  dmaIovaLink,
  dmaIovaTryAlloc,
  dmaIovaUnlink,
  dmaUseIova,
} from '../../src/dma/index.ts';
import { expectErrno } from '../errno.ts';

const GiB = 1n << 30n;
const NVME = '0000:06:00.0';
const NIC = '0000:04:00.0';

describe('dma_use_iova', () => {
  it('is false for no state (dma-direct) and for a zeroed state, true once try_alloc gave IOVA space', () => {
    const direct = builtinMachine('two-socket-server', { iommu: false }).device(NVME);
    expect(dmaUseIova(dmaIovaTryAlloc(direct, 5n * GiB, 0x1000n))).toBe(false);
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME);
    const state = dmaIovaTryAlloc(dev, 5n * GiB, 0x1000n)!;
    expect(dmaUseIova(state)).toBe(true);
    // struct dma_iova_state with __size 0 is what a driver holds before (or without) try_alloc.
    expect(dmaUseIova({ ...state, allocSize: 0n })).toBe(false);
    dmaIovaFree(dev, state);
  });
});

describe('IOVA state checks', () => {
  it('a state is linked only for the device it was allocated for (EINVAL naming both)', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME);
    const other = m.device(NIC);
    const state = dmaIovaTryAlloc(dev, 5n * GiB, 0x2000n)!;
    expectErrno(
      () => dmaIovaLink(other, state, 5n * GiB, 0n, 0x1000n, 'TO_DEVICE'),
      'EINVAL',
      new RegExp(`belongs to ${NVME}, not ${NIC}`),
    );
    expectErrno(() => dmaIovaDestroy(other, state, 0n, 'TO_DEVICE'), 'EINVAL', /belongs to/);
    // Nothing was linked by the refused call.
    expect(dev.domain!.iovaToPhys(state.addr)).toBe(0n); // iommu_iova_to_phys: 0 when unmapped
    dmaIovaDestroy(dev, state, 0n, 'TO_DEVICE');
  });

  it('no link, destroy or free after destroy; no empty link (EINVAL)', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME);
    const state = dmaIovaTryAlloc(dev, 5n * GiB, 0x2000n)!;
    expectErrno(
      () => dmaIovaLink(dev, state, 5n * GiB, 0x1000n, 0n, 'TO_DEVICE'),
      'EINVAL',
      /link of 0 at offset 0x1000/,
    );
    dmaIovaLink(dev, state, 5n * GiB, 0n, 0x1000n, 'TO_DEVICE');
    dmaIovaDestroy(dev, state, 0x1000n, 'TO_DEVICE');
    expectErrno(
      () => dmaIovaLink(dev, state, 5n * GiB, 0n, 0x1000n, 'TO_DEVICE'),
      'EINVAL',
      /already destroyed/,
    );
    expectErrno(() => dmaIovaDestroy(dev, state, 0x1000n, 'TO_DEVICE'), 'EINVAL', /already destroyed/);
    expectErrno(() => dmaIovaFree(dev, state), 'EINVAL', /already freed/);
  });

  it('a mid-granule range past offset 0 is EIO naming the offset and the granule', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME);
    const state = dmaIovaTryAlloc(dev, 5n * GiB, 0x2000n)!;
    expectErrno(
      () => dmaIovaLink(dev, state, 6n * GiB + 0x10n, 0x1000n, 0x100n, 'TO_DEVICE'),
      'EIO',
      /offset 0x1000: 0x18000001\d is not 4K aligned/i,
    );
    dmaIovaFree(dev, state);
  });
});

describe('dma_iova_unlink', () => {
  it('unmaps the IOVA at state->addr + offset and leaves the other links mapped', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME);
    const state = dmaIovaTryAlloc(dev, 5n * GiB, 0x3000n)!;
    dmaIovaLink(dev, state, 5n * GiB, 0n, 0x1000n, 'TO_DEVICE');
    dmaIovaLink(dev, state, 7n * GiB, 0x1000n, 0x1000n, 'TO_DEVICE');
    dmaIovaLink(dev, state, 9n * GiB, 0x2000n, 0x1000n, 'TO_DEVICE');
    dmaIovaUnlink(dev, state, 0x1000n, 0x1000n, 'TO_DEVICE');
    const domain = dev.domain!;
    expect(domain.iovaToPhys(state.addr)).toBe(5n * GiB);
    expect(domain.iovaToPhys(state.addr + 0x1000n)).toBe(0n); // iommu_iova_to_phys: 0 when unmapped
    expect(domain.iovaToPhys(state.addr + 0x2000n)).toBe(9n * GiB);
    dmaIovaUnlink(dev, state, 0n, 0x1000n, 'TO_DEVICE');
    dmaIovaUnlink(dev, state, 0x2000n, 0x1000n, 'TO_DEVICE');
    dmaIovaFree(dev, state);
  });
});

describe('untrusted link through swiotlb (iommu_dma_iova_bounce_and_link)', () => {
  it('a bounce that does not keep the granule offset (no min_align_mask) cannot be linked: EINVAL, slot freed', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME, { untrusted: true });
    const state = dmaIovaTryAlloc(dev, 5n * GiB + 0x100n, 0x1000n)!;
    expectErrno(
      () => dmaIovaLink(dev, state, 5n * GiB + 0x100n, 0n, 0x1000n, 'TO_DEVICE'),
      'EINVAL',
      /does not keep its 4K granule offset \(min_align_mask 0x0\)/i,
    );
    expect(m.swiotlb!.usedSlots).toBe(0);
    expect(state.usedSwiotlb).toBe(false);
    dmaIovaFree(dev, state);
  });

  it('without a swiotlb pool an unaligned untrusted link is ENOMEM, "bounce buffers are inactive"', () => {
    const m = builtinMachine('two-socket-server', { platform: { swiotlbBytes: 0n } });
    const dev = m.device(NVME, { untrusted: true, minAlignMask: 0xfffn });
    const state = dmaIovaTryAlloc(dev, 5n * GiB + 0x100n, 0x1000n)!;
    expectErrno(
      () => dmaIovaLink(dev, state, 5n * GiB + 0x100n, 0n, 0x1000n, 'TO_DEVICE'),
      'ENOMEM',
      new RegExp(`${NVME}: DMA bounce buffers are inactive`),
    );
    dmaIovaFree(dev, state);
  });

  it('a bounced tail linked past offset 0 lands at state->addr + offset (iommu_dma_iova_link_swiotlb)', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME, { untrusted: true, minAlignMask: 0xfffn });
    const state = dmaIovaTryAlloc(dev, 5n * GiB, 0x1800n)!;
    dmaIovaLink(dev, state, 5n * GiB, 0n, 0x1000n, 'TO_DEVICE');
    // 0x800 bytes ending mid-granule: the whole range is the bounced tail.
    m.platform.bytes.fill(6n * GiB, 0x800, 0x6b);
    dmaIovaLink(dev, state, 6n * GiB, 0x1000n, 0x800n, 'TO_DEVICE');
    const domain = dev.domain!;
    expect(domain.iovaToPhys(state.addr)).toBe(5n * GiB);
    const bounced = domain.iovaToPhys(state.addr + 0x1000n);
    expect(m.swiotlb!.contains(bounced)).toBe(true);
    expect(m.platform.bytes.read(bounced, 0x800)).toEqual(new Uint8Array(0x800).fill(0x6b));
    dmaIovaDestroy(dev, state, 0x1800n, 'TO_DEVICE');
    expect(m.swiotlb!.usedSlots).toBe(0);
  });
});
