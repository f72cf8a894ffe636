/**
 * The Machine: a PlatformModel plus what the DMA layer adds — one IOMMU unit per host bridge (DMAR
 * unit / AMD-Vi / SMMU, format by CPU: x86 → x86-64 second stage, ARM → LPAE stage 1) or none,
 * strict or lazy invalidation, the swiotlb pool, the DMA-API debug checker and the one shared Metrics.
 *
 * `machine.device(bdf)` gives the DmaDevice of a PCI function: registered in its IOMMU group and, the
 * first time the group is seen, the group gets its default domain (iommu_setup_default_domain): a DMA
 * domain, or identity when passthrough is asked. Later devices of the group share that domain.
 */
import { fail, type Metrics, type PhyrList, type SgTable } from '../core/index.ts';
import {
  armLpaeFormat,
  Iommu,
  type IommuDomain,
  type PageTableFormat,
  x86SecondStageFormat,
} from '../iommu/index.ts';
import {
  type Bdf,
  builtinPlatform,
  hostBridgeOf,
  type PlatformModel,
  requireFunction,
} from '../platform/index.ts';
import { DmaDebug } from './debug.ts';
import { DmaDeviceInfo } from './device.ts';
import { dmaMapPhyrList, dmaSyncForCpu, dmaSyncForDevice, dmaUnmap } from './map.ts';
import { dmaMapSg, dmaUnmapSg } from './map-sg.ts';
import { type DmaMapping, liveMappings } from './mapping.ts';
import { Swiotlb } from './swiotlb.ts';
import type { DmaAttrs, DmaDeviceProps, DmaDirection } from './types.ts';

const DEFAULT_CPUS = 8;

export interface MachineOptions {
  /** Use the platform's IOMMU (default true when it has one); false models iommu=off. */
  readonly iommu?: boolean;
  /** Strict (default) or lazy IOTLB invalidation for DMA domains (iommu.strict=). */
  readonly strict?: boolean;
  /** DMA-API debug on (default true). */
  readonly debug?: boolean;
  readonly iotlbCapacity?: number;
  /**
   * num_possible_cpus, which sets the swiotlb areas (default 8; swiotlb_adjust_nareas rounds it up
   * to a power of two). Mappings run on CPU 0, so they search area 0 first.
   */
  readonly cpus?: number;
  /** Flush-queue size for lazy domains (default 256). */
  readonly fqSize?: number;
}

function formatFor(platform: PlatformModel): PageTableFormat {
  return platform.topology.cpu.vendor === 'arm'
    ? armLpaeFormat({ iasBits: 48, oasBits: 48 })
    : x86SecondStageFormat(4);
}

function unitName(platform: PlatformModel, index: number): string {
  switch (platform.iommu) {
    case 'amd-vi':
      return `AMD-Vi${index}`;
    case 'arm-smmu-v3':
      return `smmu3.${index}`;
    default:
      return `dmar${index}`;
  }
}

export class Machine {
  readonly platform: PlatformModel;
  readonly metrics: Metrics;
  readonly strict: boolean;
  readonly swiotlb: Swiotlb | undefined;
  readonly debug: DmaDebug;
  /** IOMMU unit per host bridge id; empty when the machine runs without an IOMMU. */
  readonly iommus: ReadonlyMap<string, Iommu>;
  private readonly devices = new Map<Bdf, DmaDevice>();
  private readonly groupDomains = new Map<string, IommuDomain>();
  private readonly fqSize: number | undefined;
  private nextMappingId = 1;

  constructor(platform: PlatformModel, options: MachineOptions = {}) {
    this.platform = platform;
    this.metrics = platform.metrics;
    this.strict = options.strict ?? true;
    this.fqSize = options.fqSize;
    this.debug = new DmaDebug(this.metrics, options.debug ?? true);
    const pool = platform.swiotlbPool;
    this.swiotlb =
      pool === undefined
        ? undefined
        : new Swiotlb(pool.start, pool.size, platform.bytes, this.metrics, {
            nareas: options.cpus ?? DEFAULT_CPUS,
          });
    const iommus = new Map<string, Iommu>();
    if ((options.iommu ?? true) && platform.iommu !== 'none') {
      const format = formatFor(platform);
      platform.topology.hostBridges.forEach((hb, i) => {
        iommus.set(
          hb.id,
          new Iommu({
            name: unitName(platform, i),
            format,
            metrics: this.metrics,
            ...(options.iotlbCapacity === undefined ? {} : { iotlbCapacity: options.iotlbCapacity }),
          }),
        );
      });
    }
    this.iommus = iommus;
  }

  /** Live mappings per device (what unmap-by-address and leak checks look up). */
  get live(): ReadonlyMap<Bdf, ReadonlySet<DmaMapping>> {
    return new Map([...this.devices].map(([bdf, device]) => [bdf, liveMappings(device)]));
  }

  get hasIommu(): boolean {
    return this.iommus.size > 0;
  }

  /** The IOMMU unit translating a function's DMA, or undefined. */
  iommuOf(bdf: Bdf): Iommu | undefined {
    return this.iommus.get(requireFunction(this.platform.topology, bdf).hostBridge);
  }

  /** Devices made so far. */
  allDevices(): DmaDevice[] {
    return [...this.devices.values()];
  }

  /**
   * The DmaDevice of a PCI function; `props` apply the first time (later calls return the same
   * device, and EBUSY if they ask for different passthrough than the group's default domain).
   * ENODEV for an unknown BDF.
   */
  device(bdf: Bdf, props: DmaDeviceProps = {}): DmaDevice {
    const existing = this.devices.get(bdf);
    if (existing !== undefined) return existing;
    const fn = requireFunction(this.platform.topology, bdf);
    const hostBridge = hostBridgeOf(this.platform.topology, bdf);
    const iommu = this.iommus.get(fn.hostBridge);
    let group: number | undefined;
    if (iommu !== undefined) {
      group = this.platform.iommuGroups.groupOf.get(bdf);
      if (group === undefined) fail('ENODEV', `${bdf} has no IOMMU group`);
      iommu.addDevice(bdf, group);
      const key = `${iommu.name}/${group}`;
      const wanted = props.passthrough === true ? 'identity' : 'dma';
      let domain = this.groupDomains.get(key);
      if (domain === undefined) {
        domain = iommu.allocDomain(wanted, {
          strict: this.strict,
          ...(this.fqSize === undefined ? {} : { fqSize: this.fqSize }),
        });
        this.groupDomains.set(key, domain);
        iommu.attachGroup(group, domain);
      } else if (props.passthrough !== undefined && domain.type !== wanted) {
        fail('EBUSY', `IOMMU group ${group} of ${bdf} already has a ${domain.type} default domain`);
      }
    }
    const device = new DmaDevice(this, fn, hostBridge, iommu, group, props);
    this.devices.set(bdf, device);
    return device;
  }

  /**
   * The driver unbinds (dma_debug_device_change): every mapping still live is reported as a leak.
   * The mappings stay in place (the kernel does not tear them down either). Returns the leak count.
   */
  removeDevice(bdf: Bdf): number {
    const device = this.devices.get(bdf);
    if (device === undefined) fail('ENODEV', `${bdf} has no DmaDevice`);
    const leaked = this.debug.deviceRemoved(bdf);
    return Math.max(leaked, liveMappings(device).size);
  }

  /** Advances the modelled clock (lazy flush-queue timers). */
  advanceClock(ms: number): void {
    for (const iommu of this.iommus.values()) iommu.advanceClock(ms);
  }

  /** Flushes every lazy domain's queue now. */
  flushQueues(): void {
    for (const domain of this.groupDomains.values()) if (domain.type === 'dma') domain.flushQueue();
  }

  /** @internal Ids for mapping handles. */
  takeMappingId(): number {
    return this.nextMappingId++;
  }
}

/**
 * The DMA device a driver holds: its DMA description (device.ts) in a Machine, with the short forms
 * of the map calls (a struct device's dma_map_ops, so to speak).
 */
export class DmaDevice extends DmaDeviceInfo {
  declare readonly machine: Machine;

  map(list: PhyrList, dir: DmaDirection, attrs: DmaAttrs = {}): DmaMapping {
    return dmaMapPhyrList(this, list, dir, attrs);
  }

  unmap(mapping: DmaMapping): void {
    dmaUnmap(mapping);
  }

  syncForCpu(mapping: DmaMapping, offset?: bigint, size?: bigint): void {
    dmaSyncForCpu(mapping, offset, size);
  }

  syncForDevice(mapping: DmaMapping, offset?: bigint, size?: bigint): void {
    dmaSyncForDevice(mapping, offset, size);
  }

  mapSg(sgt: SgTable, dir: DmaDirection, attrs: DmaAttrs = {}): number {
    return dmaMapSg(this, sgt, dir, attrs);
  }

  unmapSg(sgt: SgTable, dir: DmaDirection, attrs: DmaAttrs = {}): void {
    dmaUnmapSg(this, sgt, dir, attrs);
  }
}

export function createMachine(platform: PlatformModel, options: MachineOptions = {}): Machine {
  return new Machine(platform, options);
}

/** A built-in platform (see builtinPlatform) wrapped in a Machine. */
export function builtinMachine(
  name: string,
  options: MachineOptions & {
    readonly platform?: Parameters<typeof builtinPlatform>[1];
  } = {},
): Machine {
  // Without the IOMMU the kernel leaves ACS as firmware set it (pci_enable_acs, drivers/pci/pci.c).
  const platform = { ...(options.iommu === false ? { iommuEnabled: false } : {}), ...options.platform };
  return new Machine(builtinPlatform(name, platform), options);
}
