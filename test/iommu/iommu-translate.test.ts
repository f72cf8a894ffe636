/**
 * The IOMMU's translation path: groups and their devices, IOTLB hits that the page table no longer
 * backs (a stale hit is what a missing flush looks like), permission faults from a walk and from a
 * cached entry, and IOTLB lookups that must not return a smaller leaf for a neighbouring page.
 */
import { describe, expect, test } from 'vitest';
import { COUNTER, Metrics, SZ_2M, SZ_4K } from '../../src/core/index.ts';
import { IOMMU_READ, IOMMU_WRITE, Iommu, x86SecondStageFormat } from '../../src/iommu/index.ts';
import { expectErrno } from '../errno.ts';

const RW = IOMMU_READ | IOMMU_WRITE;
const DEV = '0000:01:00.0';

function setup() {
  const metrics = new Metrics();
  const iommu = new Iommu({ name: 'dmar0', format: x86SecondStageFormat(4), metrics });
  const domain = iommu.allocDomain('dma', { strict: true });
  iommu.addDevice(DEV, 7);
  iommu.attachGroup(7, domain);
  return { metrics, iommu, domain };
}

describe('groups', () => {
  test('devicesOf lists a group’s devices in the order they were added, and no others', () => {
    const { iommu } = setup();
    iommu.addDevice('0000:01:00.1', 7);
    iommu.addDevice('0000:02:00.0', 8);
    expect(iommu.devicesOf(7)).toEqual([DEV, '0000:01:00.1']);
    expect(iommu.devicesOf(8)).toEqual(['0000:02:00.0']);
    expect(iommu.devicesOf(9)).toEqual([]);
  });

  test('a device joining an attached group leaves the group attached (iommu_group_add_device)', () => {
    const { iommu, domain } = setup();
    iommu.addDevice('0000:01:00.1', 7);
    expect(iommu.domainOf(7)).toBe(domain);
    expect(iommu.domainOf('0000:01:00.1')).toBe(domain);
  });

  test('a device of no group is ENODEV, naming the device and the IOMMU', () => {
    const { iommu } = setup();
    expectErrno(
      () => iommu.groupOf('0000:09:00.0'),
      'ENODEV',
      /device 0000:09:00\.0 is not behind IOMMU dmar0/,
    );
  });

  test("attaching another IOMMU's domain is EINVAL and leaves the group as it was", () => {
    const { iommu, domain } = setup();
    const other = new Iommu({ name: 'dmar1', format: x86SecondStageFormat(4) });
    const foreign = other.allocDomain('dma');
    expectErrno(() => iommu.attachGroup(7, foreign), 'EINVAL', /does not belong to IOMMU dmar0/);
    expect(iommu.domainOf(7)).toBe(domain);
  });
});

describe('translation and the IOTLB', () => {
  test('a hit the table still backs is not stale; one after an unflushed unmap or remap is', () => {
    const { metrics, iommu, domain } = setup();
    const iova = 0x10_0000n;
    domain.map(iova, 0x5000_0000n, SZ_4K, RW);
    expect(iommu.translate(DEV, iova + 0x10n, 'read')).toBe(0x5000_0010n); // miss: cached
    expect(iommu.translate(DEV, iova + 0x20n, 'read')).toBe(0x5000_0020n); // hit at an offset
    expect(metrics.get(COUNTER.iotlbHits)).toBe(1);
    expect(metrics.get(COUNTER.iotlbStaleHits)).toBe(0);
    // Changed behind the IOTLB's back (the page table alone, no invalidation): the device still
    // reaches the old frame, and the model counts the stale hit.
    domain.pageTable!.unmap(iova, SZ_4K);
    expect(iommu.translate(DEV, iova + 0x30n, 'read')).toBe(0x5000_0030n);
    expect(metrics.get(COUNTER.iotlbStaleHits)).toBe(1);
    domain.pageTable!.map(iova, 0x6000_0000n, SZ_4K, RW);
    expect(iommu.translate(DEV, iova, 'read')).toBe(0x5000_0000n);
    expect(metrics.get(COUNTER.iotlbStaleHits)).toBe(2);
    // Same frame, other permissions: stale too.
    domain.pageTable!.unmap(iova, SZ_4K);
    domain.pageTable!.map(iova, 0x5000_0000n, SZ_4K, IOMMU_READ);
    expect(iommu.translate(DEV, iova, 'read')).toBe(0x5000_0000n);
    expect(metrics.get(COUNTER.iotlbStaleHits)).toBe(3);
  });

  test('a write to a read-only page faults on the walk and on the cached entry alike', () => {
    const { iommu, domain } = setup();
    domain.map(0x20_0000n, 0x7000_0000n, SZ_4K, IOMMU_READ);
    expectErrno(
      () => iommu.translate(DEV, 0x20_0000n, 'write'),
      'EFAULT',
      /write at iova 0x200000 faulted \(permission, dma domain/,
    );
    expect(iommu.iotlb.size).toBe(1); // the walk cached the leaf before refusing the write
    expect(iommu.translate(DEV, 0x20_0008n, 'read')).toBe(0x7000_0008n);
    expectErrno(() => iommu.translate(DEV, 0x20_0010n, 'write'), 'EFAULT', /\(permission,/);
    expect(iommu.faults.map((f) => f.reason)).toEqual(['permission', 'permission']);
  });

  test('a cached 4K leaf at a 2M-aligned IOVA does not answer for the next 4K page', () => {
    const { iommu, domain } = setup();
    const base = 0x4000_0000n; // 2M aligned: the 2M probe and the 4K leaf share a key IOVA
    domain.map(base, 0x8000_0000n, SZ_4K, RW);
    domain.map(base + SZ_4K, 0x9000_0000n, SZ_4K, RW);
    expect(base % SZ_2M).toBe(0n);
    expect(iommu.translate(DEV, base, 'read')).toBe(0x8000_0000n);
    expect(iommu.translate(DEV, base + SZ_4K + 4n, 'read')).toBe(0x9000_0004n);
    // Two leaves, two entries, each listed for its domain only.
    expect(iommu.iotlb.size).toBe(2);
    expect(
      iommu.iotlb
        .entriesOf(domain.id)
        .map((e) => e.leafIova)
        .sort((a, b) => (a < b ? -1 : 1)),
    ).toEqual([base, base + SZ_4K]);
    expect(iommu.iotlb.entriesOf(domain.id + 1)).toEqual([]);
  });
});
