/**
 * One IOMMU unit (src/iommu/iommu.ts): groups and domains (iommu_attach_group, iommu_domain_free),
 * the IOTLB on a device's access, and the fault log (report_iommu_fault, drivers/iommu/iommu.c).
 */
import { describe, expect, test } from 'vitest';
import { COUNTER, Metrics, SZ_2M, SZ_4K } from '../../src/core/index.ts';
import { IOMMU_READ, IOMMU_WRITE, Iommu, IotlbGather, x86SecondStageFormat } from '../../src/iommu/index.ts';

const RW = IOMMU_READ | IOMMU_WRITE;

function unit(name = 'dmar0') {
  const metrics = new Metrics();
  const iommu = new Iommu({ name, format: x86SecondStageFormat(4), metrics });
  return { metrics, iommu };
}

describe('groups and domains', () => {
  test('a device joins one group; another group is EEXIST, an unknown device ENODEV', () => {
    const { iommu } = unit();
    iommu.addDevice('0000:01:00.0', 3);
    iommu.addDevice('0000:01:00.1', 3);
    iommu.addDevice('0000:01:00.0', 3); // again, same group: fine
    iommu.addDevice('0000:02:00.0', 4);
    expect(iommu.devicesOf(3)).toEqual(['0000:01:00.0', '0000:01:00.1']);
    expect(iommu.devicesOf(5)).toEqual([]);
    expect(iommu.groupOf('0000:02:00.0')).toBe(4);
    expect(() => iommu.addDevice('0000:01:00.1', 4)).toThrow(
      'EEXIST: device 0000:01:00.1 is already in IOMMU group 3',
    );
    expect(() => iommu.groupOf('0000:09:00.0')).toThrow(
      'ENODEV: device 0000:09:00.0 is not behind IOMMU dmar0',
    );
    // A new group starts with no domain, and adding a device again does not detach its group.
    expect(iommu.domainOf(3)).toBeUndefined();
    const domain = iommu.allocDomain('paging');
    iommu.attachGroup(3, domain);
    iommu.addDevice('0000:01:00.2', 3);
    expect(iommu.domainOf('0000:01:00.2')).toBe(domain);
  });

  test('a domain of another IOMMU cannot be attached; an attached domain cannot be freed', () => {
    const { iommu } = unit();
    const other = unit('dmar1').iommu;
    const foreign = other.allocDomain('paging');
    expect(() => iommu.attachGroup(1, foreign)).toThrow('EINVAL: domain 1 does not belong to IOMMU dmar0');
    const domain = iommu.allocDomain('paging');
    iommu.attachGroup(1, domain);
    expect(() => iommu.freeDomain(domain)).toThrow('EBUSY: domain 1 is still attached to group 1');
    iommu.detachGroup(1);
    iommu.freeDomain(domain);
    // Freed: no longer this IOMMU's.
    expect(() => iommu.attachGroup(1, domain)).toThrow(/^EINVAL: domain 1 does not belong/);
  });

  test('freeing a domain clears its table and drops its IOTLB entries, and only its', () => {
    const { iommu } = unit();
    const a = iommu.allocDomain('paging');
    const b = iommu.allocDomain('paging');
    expect([a.id, b.id]).toEqual([1, 2]);
    a.map(0x10_0000n, 0x5000_0000n, SZ_4K, RW);
    b.map(0x10_0000n, 0x6000_0000n, SZ_4K, RW);
    iommu.attachGroup(1, a);
    iommu.attachGroup(2, b);
    iommu.translate(1, 0x10_0000n, 'read');
    iommu.translate(2, 0x10_0000n, 'read');
    iommu.detachGroup(1);
    iommu.freeDomain(a);
    expect(iommu.iotlb.entriesOf(1)).toEqual([]);
    expect(iommu.iotlb.entriesOf(2)).toHaveLength(1);
    expect(a.iovaToPhys(0x10_0000n)).toBe(0n);
    expect(b.iovaToPhys(0x10_0000n)).toBe(0x6000_0000n);
  });
});

describe('a device access', () => {
  test('a miss caches the whole leaf: another offset in the 2M page hits and lands at its offset', () => {
    const { metrics, iommu } = unit();
    const d = iommu.allocDomain('paging');
    iommu.attachGroup(1, d);
    d.map(SZ_2M, 0x4000_0000n, SZ_2M, RW);
    expect(iommu.translate(1, SZ_2M + 0x1_2345n, 'read')).toBe(0x4001_2345n);
    expect(iommu.iotlb.entriesOf(d.id)).toEqual([
      { domainId: d.id, leafIova: SZ_2M, pageSize: SZ_2M, phys: 0x4000_0000n, prot: RW },
    ]);
    expect(iommu.translate(1, SZ_2M + 0x1f_fff8n, 'write')).toBe(0x401f_fff8n);
    expect([metrics.get(COUNTER.iotlbMisses), metrics.get(COUNTER.iotlbHits)]).toEqual([1, 1]);
    expect(metrics.get(COUNTER.iotlbStaleHits)).toBe(0);
  });

  test('a hit on a leaf the table maps elsewhere, or with other permissions, is stale; the cached prot decides', () => {
    const { metrics, iommu } = unit();
    const d = iommu.allocDomain('paging');
    iommu.attachGroup(1, d);
    d.map(0x1000n, 0x7000_0000n, SZ_4K, IOMMU_READ);
    expect(iommu.translate(1, 0x1010n, 'read')).toBe(0x7000_0010n);
    // Remapped to another page without an invalidation (unmap into a gather never synced).
    d.unmapFast(0x1000n, SZ_4K, new IotlbGather());
    d.map(0x1000n, 0x7100_0000n, SZ_4K, IOMMU_READ);
    expect(iommu.translate(1, 0x1010n, 'read')).toBe(0x7000_0010n);
    expect(metrics.get(COUNTER.iotlbStaleHits)).toBe(1);
    // The cached leaf is read-only: a write faults, whatever the table says.
    expect(() => iommu.translate(1, 0x1010n, 'write')).toThrow(
      'EFAULT: IOMMU dmar0: group1 write at iova 0x1010 faulted (permission, paging domain 1)',
    );
    expect(metrics.get(COUNTER.iotlbStaleHits)).toBe(2);
    // Back to the cached page but read/write: only the permissions differ, still stale, still read-only.
    d.unmapFast(0x1000n, SZ_4K, new IotlbGather());
    d.map(0x1000n, 0x7000_0000n, SZ_4K, RW);
    expect(iommu.translate(1, 0x1010n, 'read')).toBe(0x7000_0010n);
    expect(metrics.get(COUNTER.iotlbStaleHits)).toBe(3);
    expect(() => iommu.translate(1, 0x1010n, 'write')).toThrow(/permission/);
    expect(metrics.get(COUNTER.iotlbStaleHits)).toBe(4);
    // The same leaf and permissions as cached: a plain hit, not stale.
    d.unmapFast(0x1000n, SZ_4K, new IotlbGather());
    d.map(0x1000n, 0x7000_0000n, SZ_4K, IOMMU_READ);
    expect(iommu.translate(1, 0x1ff8n, 'read')).toBe(0x7000_0ff8n);
    expect(metrics.get(COUNTER.iotlbStaleHits)).toBe(4);
  });

  test('faults are logged with device, group, domain and reason, and counted', () => {
    const { metrics, iommu } = unit();
    iommu.addDevice('0000:03:00.0', 9);
    expect(() => iommu.translate('0000:03:00.0', 0x8000n, 'read')).toThrow(
      'EFAULT: IOMMU dmar0: 0000:03:00.0 read at iova 0x8000 faulted (blocked, no domain)',
    );
    const d = iommu.allocDomain('paging');
    iommu.attachGroup(9, d);
    expect(() => iommu.translate(9, 0x8000n, 'write')).toThrow(
      'EFAULT: IOMMU dmar0: group9 write at iova 0x8000 faulted (no-translation, paging domain 1)',
    );
    expect(iommu.faults).toEqual([
      {
        device: '0000:03:00.0',
        group: 9,
        domainId: undefined,
        iova: 0x8000n,
        access: 'read',
        reason: 'blocked',
      },
      { device: 'group9', group: 9, domainId: 1, iova: 0x8000n, access: 'write', reason: 'no-translation' },
    ]);
    expect(metrics.get(COUNTER.iommuFaults)).toBe(2);
    expect(metrics.get(COUNTER.iotlbMisses)).toBe(1); // the blocked access never reached the IOTLB
  });
});
