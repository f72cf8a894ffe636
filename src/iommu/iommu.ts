/**
 * One IOMMU hardware unit: its page-table format, its IOTLB, its domains, the groups attached to
 * them and its fault log. Devices are named by a string id and belong to a group (a number); the
 * DMA layer above ties them to the platform's PCI topology.
 *
 * A group is attached to one domain at a time (iommu_attach_group; attaching elsewhere moves it). A
 * group with no domain behaves as blocked.
 *
 * Device access: `translate` is what the IOMMU does with a device's DMA. A miss walks the page table
 * and fills the IOTLB; a hit uses the cached leaf even if the page table no longer holds it (counted
 * as a stale hit, and the access lands where the old translation pointed). An access without a
 * translation, with the wrong permission or through a blocked domain is recorded in the fault log
 * (report_iommu_fault in drivers/iommu/iommu.c) and fails with EFAULT: the kernel has no errno for a
 * device's faulting DMA (the device sees an aborted transaction), and "bad address" is the closest.
 */
import { COUNTER, fail, formatHex, Metrics } from '../core/index.ts';
import { type DomainOptions, type DomainType, IommuDomain } from './domain.ts';
import type { PageTableFormat } from './format.ts';
import { Iotlb } from './iotlb.ts';
import { type Access, protAllows } from './prot.ts';

export type FaultReason = 'no-translation' | 'permission' | 'blocked';

export interface IommuFault {
  readonly device: string;
  readonly group: number;
  readonly domainId: number | undefined;
  readonly iova: bigint;
  readonly access: Access;
  readonly reason: FaultReason;
}

export interface IommuOptions {
  readonly name: string;
  readonly format: PageTableFormat;
  readonly metrics?: Metrics;
  readonly iotlbCapacity?: number;
}

export class Iommu {
  readonly name: string;
  readonly format: PageTableFormat;
  readonly metrics: Metrics;
  readonly iotlb: Iotlb;
  readonly faults: IommuFault[] = [];
  private readonly domains = new Map<number, IommuDomain>();
  private readonly groupDomain = new Map<number, IommuDomain | undefined>();
  private readonly deviceGroup = new Map<string, number>();
  private nextDomainId = 1;

  constructor(options: IommuOptions) {
    this.name = options.name;
    this.format = options.format;
    this.metrics = options.metrics ?? new Metrics();
    this.iotlb = new Iotlb(this.metrics, options.iotlbCapacity);
  }

  allocDomain(type: DomainType, options: DomainOptions = {}): IommuDomain {
    const domain = new IommuDomain(this.nextDomainId++, type, this, options);
    this.domains.set(domain.id, domain);
    return domain;
  }

  /** iommu_domain_free: refused while a group is attached (EBUSY); drops its IOTLB entries. */
  freeDomain(domain: IommuDomain): void {
    for (const [group, d] of this.groupDomain) {
      if (d === domain) fail('EBUSY', `domain ${domain.id} is still attached to group ${group}`);
    }
    domain.pageTable?.clear();
    this.iotlb.invalidateDomain(domain.id);
    this.domains.delete(domain.id);
  }

  /** Registers a device in a group (iommu_probe_device / iommu_group_add_device). */
  addDevice(deviceId: string, group: number): void {
    const existing = this.deviceGroup.get(deviceId);
    if (existing !== undefined && existing !== group) {
      fail('EEXIST', `device ${deviceId} is already in IOMMU group ${existing}`);
    }
    this.deviceGroup.set(deviceId, group);
    if (!this.groupDomain.has(group)) this.groupDomain.set(group, undefined);
  }

  groupOf(deviceId: string): number {
    const group = this.deviceGroup.get(deviceId);
    if (group === undefined) fail('ENODEV', `device ${deviceId} is not behind IOMMU ${this.name}`);
    return group;
  }

  /** Devices in a group. */
  devicesOf(group: number): string[] {
    return [...this.deviceGroup].filter(([, g]) => g === group).map(([d]) => d);
  }

  /** Attaches (or moves) a group to a domain of this IOMMU. */
  attachGroup(group: number, domain: IommuDomain): void {
    if (this.domains.get(domain.id) !== domain) {
      fail('EINVAL', `domain ${domain.id} does not belong to IOMMU ${this.name}`);
    }
    this.groupDomain.set(group, domain);
  }

  /** Detaches a group; until attached again its devices' accesses are blocked. */
  detachGroup(group: number): void {
    this.groupDomain.set(group, undefined);
  }

  /** The domain a device or group is attached to. */
  domainOf(groupOrDevice: number | string): IommuDomain | undefined {
    const group = typeof groupOrDevice === 'number' ? groupOrDevice : this.groupOf(groupOrDevice);
    return this.groupDomain.get(group);
  }

  /** Advances the modelled clock of every domain (flush-queue timers). */
  advanceClock(ms: number): void {
    for (const domain of this.domains.values()) domain.advanceClock(ms);
  }

  /**
   * A device's access to `iova`: the physical address it reaches, or a recorded fault and EFAULT.
   */
  translate(groupOrDevice: number | string, iova: bigint, access: Access): bigint {
    const device = typeof groupOrDevice === 'string' ? groupOrDevice : `group${groupOrDevice}`;
    const group = typeof groupOrDevice === 'number' ? groupOrDevice : this.groupOf(groupOrDevice);
    const domain = this.groupDomain.get(group);
    if (domain === undefined || domain.type === 'blocked') {
      return this.fault(device, group, domain, iova, access, 'blocked');
    }
    if (domain.type === 'identity') return iova;
    const cached = this.iotlb.lookup(domain.id, iova, domain.pageSizesDescending);
    if (cached !== undefined) {
      this.metrics.add(COUNTER.iotlbHits);
      const current = domain.pageTable!.lookup(iova);
      const offset = iova - cached.leafIova;
      if (current === undefined || current.phys !== cached.phys + offset || current.prot !== cached.prot) {
        this.metrics.add(COUNTER.iotlbStaleHits);
      }
      if (!protAllows(cached.prot, access))
        return this.fault(device, group, domain, iova, access, 'permission');
      return cached.phys + offset;
    }
    this.metrics.add(COUNTER.iotlbMisses);
    const walk = domain.pageTable!.lookup(iova);
    if (walk === undefined) return this.fault(device, group, domain, iova, access, 'no-translation');
    const leafPhys = walk.phys - (iova - walk.leafIova);
    this.iotlb.insert({
      domainId: domain.id,
      leafIova: walk.leafIova,
      pageSize: walk.pageSize,
      phys: leafPhys,
      prot: walk.prot,
    });
    if (!protAllows(walk.prot, access)) return this.fault(device, group, domain, iova, access, 'permission');
    return walk.phys;
  }

  private fault(
    device: string,
    group: number,
    domain: IommuDomain | undefined,
    iova: bigint,
    access: Access,
    reason: FaultReason,
  ): never {
    this.faults.push({ device, group, domainId: domain?.id, iova, access, reason });
    this.metrics.add(COUNTER.iommuFaults);
    this.metrics.traceSink?.({ kind: 'io_page_fault', device, iova, driver: this.name });
    const where = domain === undefined ? 'no domain' : `${domain.type} domain ${domain.id}`;
    fail(
      'EFAULT',
      `IOMMU ${this.name}: ${device} ${access} at iova ${formatHex(iova)} faulted (${reason}, ${where})`,
    );
  }
}
