/**
 * A device's DMA description (struct device's DMA fields): mask, coherence, segment rules, trust, and
 * the IOMMU domain its group is attached to. Every map path takes it as its first argument; it
 * imports nothing from the mapping code. The driver-facing DmaDevice (machine.ts) extends it with the
 * short forms of the map calls.
 */
import { dmaBitMask, fail, formatHex, type Metrics, U64_MAX } from '../core/index.ts';
import type { Iommu, IommuDomain } from '../iommu/index.ts';
import type { HostBridge, PciFunction, PlatformModel } from '../platform/index.ts';
import type { DmaDebug } from './debug.ts';
import type { Swiotlb } from './swiotlb.ts';
import type { DmaAttrs, DmaDeviceProps } from './types.ts';

/** What a device's DMA needs of the machine it sits in (the Machine in machine.ts is one). */
export interface DmaHost {
  readonly platform: PlatformModel;
  readonly metrics: Metrics;
  readonly swiotlb: Swiotlb | undefined;
  readonly debug: DmaDebug;
  /** Ids for mapping handles. */
  takeMappingId(): number;
}

/** PCI core defaults (drivers/pci/probe.c pci_device_add: dma_set_max_seg_size 64 KiB, boundary 4 GiB). */
export const PCI_DEFAULT_MAX_SEGMENT = 0x1_0000n;
export const PCI_DEFAULT_SEG_BOUNDARY = 0xffff_ffffn;

export function maskFrom(value: number | bigint): bigint {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 1 || value > 64)
      fail('EINVAL', `DMA mask of ${value} bits is not 1..64`);
    return dmaBitMask(value);
  }
  if (value <= 0n || value > U64_MAX) fail('EINVAL', `DMA mask ${formatHex(value)} is outside 1..2^64-1`);
  return value;
}

export class DmaDeviceInfo {
  readonly bdf: string;
  readonly machine: DmaHost;
  readonly fn: PciFunction;
  readonly hostBridge: HostBridge;
  /** The IOMMU unit above the device, or undefined on a machine without one. */
  readonly iommu: Iommu | undefined;
  readonly group: number | undefined;
  readonly coherent: boolean;
  readonly maxSegmentSize: bigint;
  readonly segmentBoundaryMask: bigint;
  readonly minAlignMask: bigint;
  readonly untrusted: boolean;
  readonly forceBounce: boolean;
  readonly dmaRangeOffset: bigint;
  private mask: bigint;
  /** dev->iommu->pci_32bit_workaround: PCI devices try IOVAs below 4 GiB first (dma-iommu.c). */
  pci32bitWorkaround = true;

  constructor(
    machine: DmaHost,
    fn: PciFunction,
    hostBridge: HostBridge,
    iommu: Iommu | undefined,
    group: number | undefined,
    props: DmaDeviceProps,
  ) {
    this.machine = machine;
    this.bdf = fn.bdf;
    this.fn = fn;
    this.hostBridge = hostBridge;
    this.iommu = iommu;
    this.group = group;
    this.coherent = props.coherent ?? true;
    this.maxSegmentSize = props.maxSegmentSize ?? PCI_DEFAULT_MAX_SEGMENT;
    this.segmentBoundaryMask = props.segmentBoundaryMask ?? PCI_DEFAULT_SEG_BOUNDARY;
    if (this.maxSegmentSize <= 0n) fail('EINVAL', `max segment size ${this.maxSegmentSize} must be positive`);
    if ((this.segmentBoundaryMask & (this.segmentBoundaryMask + 1n)) !== 0n) {
      fail('EINVAL', `segment boundary mask ${formatHex(this.segmentBoundaryMask)} is not 2^n - 1`);
    }
    this.minAlignMask = props.minAlignMask ?? 0n;
    this.untrusted = props.untrusted ?? false;
    this.forceBounce = props.forceBounce ?? false;
    this.dmaRangeOffset = props.dmaRangeOffset ?? 0n;
    this.mask = dmaBitMask(64);
    if (props.dmaMask !== undefined) this.setDmaMask(props.dmaMask);
  }

  get dmaMask(): bigint {
    return this.mask;
  }

  /** The domain the device's group is attached to now (undefined: no IOMMU). */
  get domain(): IommuDomain | undefined {
    return this.iommu === undefined || this.group === undefined ? undefined : this.iommu.domainOf(this.group);
  }

  /** use_dma_iommu(): the DMA API goes through dma-iommu (a translating DMA domain). */
  get usesIommu(): boolean {
    return this.domain?.type === 'dma';
  }

  /** The string id the IOMMU knows the device by. */
  get id(): string {
    return this.bdf;
  }

  /**
   * dma_set_mask (kernel/dma/mapping.c): EIO when the DMA ops cannot support it. dma-direct needs the
   * mask to reach the lowest DMA zone (dma_direct_supported: ZONE_DMA, 24 bits on x86, 32 on arm64);
   * dma-iommu accepts any mask (IOVAs are allocated below it).
   */
  setDmaMask(value: number | bigint): void {
    const mask = maskFrom(value);
    if (!this.usesIommu) {
      const zoneBits = this.machine.platform.topology.cpu.vendor === 'arm' ? 32 : 24;
      const minMask = dmaBitMask(zoneBits);
      if (mask < minMask) {
        fail('EIO', `dma_set_mask(${formatHex(mask)}) on ${this.bdf}: below the ${zoneBits}-bit DMA zone`);
      }
    }
    this.mask = mask;
  }
}

/** The device's translating DMA domain, or undefined (use_dma_iommu false). */
export function dmaDomainOf(device: DmaDeviceInfo): IommuDomain | undefined {
  const domain = device.domain;
  return domain?.type === 'dma' ? domain : undefined;
}

/** Cache maintenance at map time for a non-coherent device (never MMIO, not with SKIP_CPU_SYNC). */
export function cacheSync(device: DmaDeviceInfo, size: bigint, attrs: DmaAttrs): void {
  if (!device.coherent && attrs.skipCpuSync !== true && attrs.mmio !== true) {
    device.machine.metrics.add('dma.cache_sync_bytes', Number(size));
  }
}
