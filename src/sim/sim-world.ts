/**
 * The live state of one scenario run over a platform: the DMA layer's Machine (built once the IOTLB
 * mode is known), the routing fabric, one user address space for the scenario's buffers, and the
 * device models (DMA engines, vfio-pci bindings, IOMMUFD, RDMA contexts) made on first use.
 */
import { type CounterName, fail, type Metrics, metricsDelta } from '../core/index.ts';
import { DmaCapableDevice, type DmaFabric, machineFabric } from '../devices/index.ts';
import { type DmaDevice, type DmaDeviceProps, Machine } from '../dma/index.ts';
import { IommufdCtx } from '../iommufd/index.ts';
import { MemorySystem, MmStruct } from '../mm/index.ts';
import type { Bdf } from '../platform/index.ts';
import { VfioPciDevice } from '../vfio/index.ts';
import { resolveDevice } from './platforms.ts';
import type { SimPlatform } from './registry.ts';
import type { DesignPath } from './report.ts';
import type { SimContext } from './sim-context.ts';

export class SimWorld {
  readonly platform: SimPlatform;
  readonly machine: Machine;
  readonly fabric: DmaFabric;
  readonly memory: MemorySystem;
  /** The scenario's process: every `allocate` maps into it. */
  readonly mm: MmStruct;
  private readonly engines = new Map<Bdf, DmaCapableDevice>();
  private readonly vfios = new Map<Bdf, VfioPciDevice>();
  private iommufdCtx: IommufdCtx | undefined;
  /** Designs whose unmaps queued a lazy IOTLB invalidation not yet drained by a `flush` step. */
  readonly flushQueuedBy = new Set<DesignPath>();

  private readonly setupMetrics: Metrics;

  constructor(platform: SimPlatform, strict: boolean, setupMetrics: Metrics) {
    this.platform = platform;
    this.setupMetrics = setupMetrics;
    this.machine = new Machine(platform.model, { strict });
    this.fabric = machineFabric(this.machine);
    // anonOrders [] would be base pages only; the kernel default (PMD THP) is what a buffer gets.
    this.memory = new MemorySystem(platform.model.folios, {
      bytes: platform.model.bytes,
      metrics: this.machine.metrics,
    });
    this.mm = new MmStruct(this.memory);
  }

  /** A device named by label or BDF. */
  bdf(name: string): Bdf {
    return resolveDevice(this.platform, name);
  }

  /** The device's DMA-API identity (probing it the first time). */
  dmaDevice(name: string): DmaDevice {
    return this.probe(this.bdf(name));
  }

  /**
   * machine.device (iommu_probe_device + default domain on first sight), with what the probe moved
   * recorded as setup so no step is charged for it.
   */
  probe(bdf: Bdf, props: DmaDeviceProps = {}): DmaDevice {
    const metrics = this.machine.metrics;
    const before = metrics.snapshot();
    const device = this.machine.device(bdf, props);
    for (const [name, moved] of Object.entries(metricsDelta(before, metrics.snapshot()))) {
      this.setupMetrics.add(name as CounterName, moved);
    }
    return device;
  }

  /** The device's DMA engine (what moves bytes by DMA address). */
  engine(name: string): DmaCapableDevice {
    const bdf = this.bdf(name);
    let engine = this.engines.get(bdf);
    if (engine === undefined) {
      this.probe(bdf);
      engine = new DmaCapableDevice(this.fabric, bdf);
      this.engines.set(bdf, engine);
    }
    return engine;
  }

  /** The device bound to vfio-pci (made on first use). */
  vfio(name: string): VfioPciDevice {
    const bdf = this.bdf(name);
    let vfio = this.vfios.get(bdf);
    if (vfio === undefined) {
      vfio = new VfioPciDevice({
        topology: this.platform.model.topology,
        bdf,
        metrics: this.machine.metrics,
      });
      this.vfios.set(bdf, vfio);
    }
    return vfio;
  }

  /** The vfio-pci binding of a device, if it has one. */
  vfioOf(name: string): VfioPciDevice | undefined {
    return this.vfios.get(this.bdf(name));
  }

  get iommufd(): IommufdCtx {
    this.iommufdCtx ??= new IommufdCtx(this.machine.metrics);
    return this.iommufdCtx;
  }
}

const worlds = new WeakMap<SimContext, SimWorld>();

/** The scenario's world; ENODEV on a platform without hardware (core-only). */
export function worldOf(context: SimContext): SimWorld {
  let world = worlds.get(context);
  if (world === undefined) {
    const platform = context.platform.machine;
    if (platform === undefined) {
      fail('ENODEV', `platform ${context.platform.name} has no machine: this step needs devices and memory`);
    }
    world = new SimWorld(platform, context.iommuMode === 'strict', context.setupMetrics);
    worlds.set(context, world);
  }
  return world;
}
