/**
 * Hardware page tables and devices (drivers/iommu/iommufd/hw_pagetable.c, device.c):
 *  - a HWPT_PAGING object is an IOMMU domain of type 'paging' on one IOMMU, linked to an IOAS, which
 *    fills it with every area and keeps it in step with every later map and unmap;
 *  - a device bound to iommufd (it must be behind an IOMMU: ENODEV otherwise) attaches its IOMMU
 *    group to a HWPT; attaching to an IOAS finds a HWPT of that IOAS on the same IOMMU or makes one
 *    (iommufd_device_auto_get_domain);
 *  - a HWPT with attached devices cannot be destroyed (EBUSY); detaching leaves the group blocked.
 */
import { fail, type Metrics, Metrics as MetricsClass } from '../core/index.ts';
import type { Iommu, IommuDomain } from '../iommu/index.ts';
import { Ioas } from './io-pagetable.ts';

let nextObjectId = 1;

export class HwPagetable {
  readonly id: number;
  readonly iommu: Iommu;
  readonly ioas: Ioas;
  readonly domain: IommuDomain;
  /** Attached devices. */
  readonly devices = new Set<IommufdDevice>();
  private destroyed = false;

  /** @internal use IommufdCtx.hwptAlloc */
  constructor(iommu: Iommu, ioas: Ioas) {
    this.id = nextObjectId++;
    this.iommu = iommu;
    this.ioas = ioas;
    // iommufd's paging domains are strict: every unmap invalidates the IOTLB at once.
    this.domain = iommu.allocDomain('paging', { strict: true });
    try {
      ioas.addDomain(this.domain, `hwpt${this.id}`);
    } catch (error) {
      iommu.freeDomain(this.domain);
      throw error;
    }
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  destroy(): void {
    if (this.destroyed) fail('ENOENT', `hwpt ${this.id} is already destroyed`);
    if (this.devices.size > 0)
      fail('EBUSY', `hwpt ${this.id} still has ${this.devices.size} attached device(s)`);
    this.ioas.removeDomain(this.domain, `hwpt${this.id}`);
    this.iommu.freeDomain(this.domain);
    this.destroyed = true;
  }
}

export class IommufdDevice {
  readonly id: number;
  readonly iommu: Iommu;
  /** The device name the IOMMU knows (its BDF). */
  readonly deviceId: string;
  readonly group: number;
  private hwpt: HwPagetable | undefined;
  private readonly ctx: IommufdCtx;

  /** @internal use IommufdCtx.bindDevice */
  constructor(ctx: IommufdCtx, iommu: Iommu, deviceId: string) {
    this.id = nextObjectId++;
    this.ctx = ctx;
    this.iommu = iommu;
    this.deviceId = deviceId;
    this.group = iommu.groupOf(deviceId);
  }

  get attached(): HwPagetable | undefined {
    return this.hwpt;
  }

  /** IOMMU_DEVICE_ATTACH (iommufd_device_attach) to a HWPT or, through auto-domain, to an IOAS. */
  attach(target: HwPagetable | Ioas): HwPagetable {
    const hwpt = target instanceof Ioas ? this.ctx.autoDomain(this.iommu, target) : target;
    if (hwpt.isDestroyed) fail('ENOENT', `hwpt ${hwpt.id} is destroyed`);
    if (hwpt.iommu !== this.iommu)
      fail(
        'EINVAL',
        `hwpt ${hwpt.id} belongs to IOMMU ${hwpt.iommu.name}, ${this.deviceId} sits behind ${this.iommu.name}`,
      );
    if (this.hwpt !== undefined) this.hwpt.devices.delete(this);
    this.iommu.attachGroup(this.group, hwpt.domain);
    hwpt.devices.add(this);
    this.hwpt = hwpt;
    return hwpt;
  }

  /** IOMMU_DEVICE_DETACH: the group is left blocked (no DMA reaches anything). */
  detach(): void {
    if (this.hwpt === undefined) fail('EINVAL', `${this.deviceId} is not attached`);
    this.hwpt.devices.delete(this);
    this.hwpt = undefined;
    this.iommu.detachGroup(this.group);
  }
}

/** One iommufd file: its objects. */
export class IommufdCtx {
  readonly metrics: Metrics;
  private readonly hwpts: HwPagetable[] = [];

  constructor(metrics?: Metrics) {
    this.metrics = metrics ?? new MetricsClass();
  }

  ioasAlloc(): Ioas {
    return new Ioas(this.metrics);
  }

  hwptAlloc(iommu: Iommu, ioas: Ioas): HwPagetable {
    const hwpt = new HwPagetable(iommu, ioas);
    this.hwpts.push(hwpt);
    return hwpt;
  }

  /** VFIO_DEVICE_BIND_IOMMUFD: ENODEV when the device is not behind this IOMMU. */
  bindDevice(iommu: Iommu, deviceId: string): IommufdDevice {
    return new IommufdDevice(this, iommu, deviceId);
  }

  /** @internal iommufd_device_auto_get_domain. */
  autoDomain(iommu: Iommu, ioas: Ioas): HwPagetable {
    const existing = this.hwpts.find((h) => !h.isDestroyed && h.iommu === iommu && h.ioas === ioas);
    return existing ?? this.hwptAlloc(iommu, ioas);
  }
}
