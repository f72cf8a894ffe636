/** A small machine for device tests, built without the DMA layer: one IOMMU per host bridge. */
import { Metrics } from '../../src/core/index.ts';
import type { DeviceIommu, DmaFabric } from '../../src/devices/index.ts';
import { Iommu, type IommuDomain, x86SecondStageFormat } from '../../src/iommu/index.ts';
import { type Bdf, ByteStore, barRegions, MemoryMap, type PciTopology } from '../../src/platform/index.ts';

export const RAM_START = 0x10_0000n;
export const RAM_LAST = 0x7fff_ffffn;

export interface TestFabric extends DmaFabric {
  readonly iommus: ReadonlyMap<string, Iommu>;
  /** Each translated device's own DMA domain. */
  readonly domains: Map<Bdf, IommuDomain>;
}

export interface FabricOptions {
  /** Devices whose DMA goes through an IOMMU (default: every endpoint); others are direct. */
  readonly translated?: (bdf: Bdf) => boolean;
  readonly strict?: boolean;
}

export function makeFabric(topology: PciTopology, options: FabricOptions = {}): TestFabric {
  const metrics = new Metrics();
  const memoryMap = new MemoryMap([
    { kind: 'ram', start: RAM_START, last: RAM_LAST, node: 0 },
    ...barRegions(topology),
  ]);
  const iommus = new Map<string, Iommu>();
  for (const hb of topology.hostBridges)
    iommus.set(hb.id, new Iommu({ name: `dmar-${hb.id}`, format: x86SecondStageFormat(), metrics }));
  const domains = new Map<Bdf, IommuDomain>();
  const translated = options.translated ?? (() => true);
  let group = 0;
  for (const fn of topology.functions.values()) {
    if (fn.kind !== 'endpoint' && fn.kind !== 'rc-integrated-endpoint') continue;
    if (!translated(fn.bdf)) continue;
    const iommu = iommus.get(fn.hostBridge)!;
    iommu.addDevice(fn.bdf, group);
    const domain = iommu.allocDomain('dma', { strict: options.strict ?? true });
    iommu.attachGroup(group, domain);
    domains.set(fn.bdf, domain);
    group++;
  }
  return {
    topology,
    memoryMap,
    bytes: new ByteStore(),
    metrics,
    iommus,
    domains,
    iommuOf(bdf: Bdf): DeviceIommu | undefined {
      if (!domains.has(bdf)) return undefined;
      return { iommu: iommus.get(topology.functions.get(bdf)!.hostBridge)!, deviceId: bdf };
    },
  };
}
