/**
 * What every dma-iommu path shares (drivers/iommu/dma-iommu.c, Linux 7.1): dma_info_to_prot,
 * iommu_dma_alloc_iova's 32-bit first try, and the zeroed padding around an untrusted device's bounce.
 */
import { describe, expect, it } from 'vitest';
import {
  bigintMin,
  builtinMachine,
  dmaDomainOf,
  iommuDmaAllocIova,
  mapPhys,
  unmapPhys,
  zeroPadding,
} from '../../src/dma/index.ts';
import { expectErrno } from '../errno.ts';

const GiB = 1n << 30n;
const NVME = '0000:06:00.0';
const FOUR_GIB = 1n << 32n;

describe('dma_info_to_prot (dma-iommu.c) as the device sees it', () => {
  // The prot table itself is in dma-info-to-prot.test.ts; here what a device sees of it.
  it('a TO_DEVICE mapping lets the device read but not write (the IOMMU faults the write)', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME);
    const map = mapPhys(dev, 5n * GiB, 0x1000n, 'TO_DEVICE');
    const dma = map.dma.addressAt(0);
    expect(dev.iommu!.translate(dev.id, dma, 'read')).toBe(5n * GiB);
    expectErrno(() => dev.iommu!.translate(dev.id, dma, 'write'), 'EFAULT');
    unmapPhys(dev, dma, 0x1000n, 'TO_DEVICE');
  });
});

describe('iommu_dma_alloc_iova (dma-iommu.c)', () => {
  it('a 64-bit PCI device gets IOVAs below 4 GiB first, then above for good once they run out', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME);
    const domain = dmaDomainOf(dev)!;
    expect(dev.pci32bitWorkaround).toBe(true);
    const low = iommuDmaAllocIova(dev, domain, 0x1000n);
    expect(low < FOUR_GIB).toBe(true);
    expect(dev.pci32bitWorkaround).toBe(true);
    // 8 GiB cannot fit below 4 GiB: the wide retry succeeds and the workaround is dropped.
    const big = iommuDmaAllocIova(dev, domain, 8n * GiB);
    expect(big >= FOUR_GIB).toBe(true);
    expect(dev.pci32bitWorkaround).toBe(false);
    // From now on even a page goes above 4 GiB (dev->iommu->pci_32bit_workaround stays false).
    const next = iommuDmaAllocIova(dev, domain, 0x1000n);
    expect(next >= FOUR_GIB).toBe(true);
    expect(next <= dev.dmaMask).toBe(true);
    domain.freeIova(low, 0x1000n);
    domain.freeIova(big, 8n * GiB);
    domain.freeIova(next, 0x1000n);
  });

  it('a 32-bit device has no separate first try: its failure leaves the workaround set', () => {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME, { dmaMask: 32 });
    const domain = dmaDomainOf(dev)!;
    expectErrno(() => iommuDmaAllocIova(dev, domain, 8n * GiB), 'ENOMEM');
    expect(dev.pci32bitWorkaround).toBe(true);
    const iova = iommuDmaAllocIova(dev, domain, 0x2000n);
    expect(iova + 0x2000n - 1n <= 0xffff_ffffn).toBe(true);
    domain.freeIova(iova, 0x2000n);
  });
});

describe('zero padding around an untrusted bounce (iommu_dma_map_swiotlb)', () => {
  const GRANULE = 0x1000n;
  const SLOT = 0x40_0000n; // a scratch page-aligned spot in RAM

  function setup(untrusted: boolean) {
    const m = builtinMachine('two-socket-server');
    const dev = m.device(NVME, { untrusted });
    const bytes = m.platform.bytes;
    // Two granules and their neighbours full of 0xaa.
    bytes.fill(SLOT - GRANULE, Number(4n * GRANULE), 0xaa);
    return { dev, bytes };
  }

  it('zeroes the granule bytes before and after the bounced data, nothing else', () => {
    const { dev, bytes } = setup(true);
    const tlbAddr = SLOT + 0x300n;
    const size = 0x1100n; // ends at SLOT + 0x1400, inside the second granule
    zeroPadding(dev, tlbAddr, size, GRANULE);
    const got = bytes.read(SLOT - GRANULE, Number(4n * GRANULE));
    const want = new Uint8Array(Number(4n * GRANULE)).fill(0xaa);
    // [SLOT, tlbAddr) and [tlbAddr + size, SLOT + 2 granules) are zero.
    want.fill(0, Number(GRANULE), Number(GRANULE + 0x300n));
    want.fill(0, Number(GRANULE + 0x1400n), Number(3n * GRANULE));
    expect(got).toEqual(want);
  });

  it('an aligned bounce has no padding to zero', () => {
    const { dev, bytes } = setup(true);
    zeroPadding(dev, SLOT, 2n * GRANULE, GRANULE);
    expect(bytes.read(SLOT - GRANULE, Number(4n * GRANULE))).toEqual(
      new Uint8Array(Number(4n * GRANULE)).fill(0xaa),
    );
  });

  it('a trusted device gets no padding zeroed', () => {
    const { dev, bytes } = setup(false);
    zeroPadding(dev, SLOT + 0x300n, 0x100n, GRANULE);
    expect(bytes.read(SLOT - GRANULE, Number(4n * GRANULE))).toEqual(
      new Uint8Array(Number(4n * GRANULE)).fill(0xaa),
    );
  });
});

describe('bigintMin', () => {
  it('takes the smaller of two 64-bit values without losing bits', () => {
    expect(bigintMin((1n << 63n) + 1n, 1n << 63n)).toBe(1n << 63n);
    expect(bigintMin(3n, 5n)).toBe(3n);
  });
});
