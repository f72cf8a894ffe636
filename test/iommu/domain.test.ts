import { describe, expect, test } from 'vitest';
import { COUNTER, Metrics, SZ_2M, SZ_4K } from '../../src/core/index.ts';
import { IOMMU_READ, IOMMU_WRITE, Iommu, x86SecondStageFormat } from '../../src/iommu/index.ts';
import { caughtPhysrError } from '../errno.ts';

const RW = IOMMU_READ | IOMMU_WRITE;

function setup(strict: boolean) {
  const metrics = new Metrics();
  const iommu = new Iommu({ name: 'dmar0', format: x86SecondStageFormat(4), metrics });
  const domain = iommu.allocDomain('dma', { strict, fqSize: 4 });
  iommu.addDevice('0000:01:00.0', 7);
  iommu.attachGroup(7, domain);
  return { metrics, iommu, domain };
}

function faultOf(fn: () => unknown): string {
  const error = caughtPhysrError(fn);
  expect(error.errno).toBe('EFAULT');
  return error.reason;
}

describe('domains, IOTLB and faults', () => {
  test('a DMA domain translates through its table and caches the leaf in the IOTLB', () => {
    const { metrics, iommu, domain } = setup(true);
    const iova = domain.allocIova(3n * SZ_4K, (1n << 32n) - 1n);
    expect(iova % (4n * SZ_4K)).toBe(0n); // rcache sizes round up to a power of two, size-aligned
    expect(iova + 4n * SZ_4K - 1n).toBeLessThanOrEqual((1n << 32n) - 1n);
    domain.map(iova, 0x5000_0000n, 3n * SZ_4K, RW);
    expect(iommu.translate('0000:01:00.0', iova + 0x1234n, 'write')).toBe(0x5000_1234n);
    expect(iommu.translate(7, iova + 0x1238n, 'read')).toBe(0x5000_1238n);
    expect(metrics.get(COUNTER.iotlbMisses)).toBe(1);
    expect(metrics.get(COUNTER.iotlbHits)).toBe(1);
  });

  test('strict: one flush per unmap batch, and the freed page faults afterwards', () => {
    const { metrics, iommu, domain } = setup(true);
    const iova = domain.allocIova(16n * SZ_4K, U32);
    domain.map(iova, 0x8000_0000n, 16n * SZ_4K, RW);
    for (let i = 0n; i < 16n; i++) iommu.translate(7, iova + i * SZ_4K, 'read');
    const before = metrics.get(COUNTER.iotlbFlushes);
    expect(domain.dmaUnmap(iova, 16n * SZ_4K)).toBe(16n * SZ_4K);
    expect(metrics.get(COUNTER.iotlbFlushes) - before).toBe(1);
    expect(iommu.iotlb.size).toBe(0);
    expect(faultOf(() => iommu.translate(7, iova, 'read'))).toMatch(/no-translation/);
    expect(iommu.faults.at(-1)).toMatchObject({
      device: 'group7',
      iova,
      access: 'read',
      reason: 'no-translation',
    });
  });

  test('lazy: a stale IOTLB entry still reaches the old page until the flush queue is flushed', () => {
    const { metrics, iommu, domain } = setup(false);
    const iova = domain.allocIova(SZ_4K, U32);
    domain.map(iova, 0x9000_0000n, SZ_4K, RW);
    expect(iommu.translate(7, iova + 8n, 'write')).toBe(0x9000_0008n);
    const flushes = metrics.get(COUNTER.iotlbFlushes);
    domain.dmaUnmap(iova, SZ_4K);
    expect(metrics.get(COUNTER.iotlbFlushes)).toBe(flushes); // no invalidation yet
    expect(domain.queuedIovas).toBe(1);
    expect(domain.iovaToPhys(iova)).toBe(0n);
    expect(iommu.translate(7, iova + 8n, 'write')).toBe(0x9000_0008n); // the stale window
    expect(metrics.get(COUNTER.iotlbStaleHits)).toBe(1);
    // The IOVA is not reusable while queued.
    expect(domain.iovad!.findIova(domain.iovad!.pfnOf(iova))).toBeDefined();
    iommu.advanceClock(9);
    expect(domain.queuedIovas).toBe(1);
    iommu.advanceClock(1); // IOVA_DEFAULT_FQ_TIMEOUT: 10 ms
    expect(domain.queuedIovas).toBe(0);
    expect(metrics.get(COUNTER.iotlbFlushes)).toBe(flushes + 1);
    expect(faultOf(() => iommu.translate(7, iova + 8n, 'write'))).toMatch(/no-translation/);
  });

  test('lazy: the queue flushes by count, one invalidation for the whole batch', () => {
    const { metrics, domain } = setup(false);
    const flushes = metrics.get(COUNTER.iotlbFlushes);
    for (let i = 0; i < 4; i++) {
      const iova = domain.allocIova(SZ_4K, U32);
      domain.map(iova, 0x1000_0000n, SZ_4K, RW);
      domain.dmaUnmap(iova, SZ_4K);
    }
    // dma-iommu.c fq_full: a ring of fqSize slots holds fqSize - 1 IOVAs. The 4th unmap finds it full,
    // flushes and frees the three queued IOVAs, and then waits in the queue itself.
    expect(domain.queuedIovas).toBe(1);
    expect(domain.iovad!.cachedCounts()[0]).toBe(3);
    expect(metrics.get(COUNTER.iotlbFlushes) - flushes).toBe(1);
  });

  test('lazy: only an unmap queues its IOVA; freeing an IOVA that was never mapped returns it at once', () => {
    // iommu_dma_free_iova queues only with a queued gather (an unmap); dma_iova_free and the map
    // error paths pass none and free_iova_fast straight away.
    const { domain } = setup(false);
    const unused = domain.allocIova(SZ_4K, U32);
    domain.freeIova(unused, SZ_4K);
    expect(domain.queuedIovas).toBe(0);
    expect(domain.iovad!.cachedCounts()[0]).toBe(1);
    const mapped = domain.allocIova(SZ_4K, U32);
    domain.map(mapped, 0x1000_0000n, SZ_4K, RW);
    domain.dmaUnmap(mapped, SZ_4K);
    expect(domain.queuedIovas).toBe(1);
  });

  test('lazy: a flush because the queue is full does not rearm the timer (fq_flush_timeout)', () => {
    const { metrics, iommu, domain } = setup(false);
    const cycle = (): void => {
      const iova = domain.allocIova(SZ_4K, U32);
      domain.map(iova, 0x1000_0000n, SZ_4K, RW);
      domain.dmaUnmap(iova, SZ_4K);
    };
    cycle(); // t = 0: the timer is armed for t = 10
    iommu.advanceClock(6);
    for (let i = 0; i < 3; i++) cycle(); // the 4th unmap flushes the full ring at t = 6
    expect(domain.queuedIovas).toBe(1);
    const flushes = metrics.get(COUNTER.iotlbFlushes);
    iommu.advanceClock(4); // the timer armed at t = 0 fires at t = 10 and frees the 4th
    expect(domain.queuedIovas).toBe(0);
    expect(metrics.get(COUNTER.iotlbFlushes) - flushes).toBe(1);
  });

  test('permission faults, blocked and identity domains, and moving a group', () => {
    const { iommu, domain } = setup(true);
    domain.map(SZ_2M, SZ_2M, SZ_2M, IOMMU_READ);
    expect(iommu.translate(7, SZ_2M + 5n, 'read')).toBe(SZ_2M + 5n);
    expect(faultOf(() => iommu.translate(7, SZ_2M, 'write'))).toMatch(/permission/);
    const blocked = iommu.allocDomain('blocked');
    iommu.attachGroup(7, blocked);
    expect(faultOf(() => iommu.translate('0000:01:00.0', SZ_2M, 'read'))).toMatch(/blocked/);
    const identity = iommu.allocDomain('identity');
    iommu.attachGroup(7, identity);
    expect(iommu.translate(7, 0xdead_b000n, 'write')).toBe(0xdead_b000n);
    expect(iommu.domainOf('0000:01:00.0')).toBe(identity);
    iommu.detachGroup(7);
    expect(faultOf(() => iommu.translate(7, 0n, 'read'))).toMatch(/blocked/);
    expect(iommu.faults.map((f) => f.reason)).toEqual(['permission', 'blocked', 'blocked']);
    expect(() => iommu.translate('nope', 0n, 'read')).toThrow(/ENODEV/);
  });
});

const U32 = (1n << 32n) - 1n;
