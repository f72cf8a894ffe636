/**
 * The DMA-API debug checker (kernel/dma/debug.c, CONFIG_DMA_API_DEBUG): every live mapping is an
 * entry keyed by (device, DMA address); unmaps and syncs are checked against the entry and every
 * misuse becomes a structured finding, also counted as `dma_debug.<class>` in the shared Metrics.
 *
 * Classes, each named for the check in debug.c that reports it:
 *  - check_unmap: `unmap-not-mapped` (never mapped, or a double unmap), `unmap-wrong-size`,
 *    `unmap-wrong-type` (single vs phys vs sg vs iova), `unmap-wrong-sg-nents`,
 *    `unmap-wrong-direction`, `map-error-not-checked` (dma_mapping_error never called);
 *  - check_sync: `sync-not-mapped`, `sync-beyond-mapping`, `sync-wrong-direction`,
 *    `sync-read-only-for-cpu`, `sync-write-only-for-device`, `sync-sg-wrong-nents`;
 *  - check_sg_segment: `sg-segment-too-long`, `sg-segment-crosses-boundary`;
 *  - dma_debug_device_change: `leaked-mappings` at device removal;
 *  - active_cacheline_insert: `overlapping-cacheline` (EEXIST: two live non-TO_DEVICE mappings share
 *    a cacheline, which the cache maintenance of one would corrupt for the other).
 * Not applicable: mapping from the stack or vmalloc space (check_for_stack, is_vmalloc_addr) and
 * kernel text/rodata (check_for_illegal_area): physr has no kernel virtual address space, only
 * physical addresses, so those classes cannot arise.
 */
import { formatHex, type Metrics } from '../core/index.ts';
import type { DmaDirection, DmaMappingType } from './types.ts';

/** L1_CACHE_SHIFT on x86-64 and arm64. */
export const L1_CACHE_SHIFT = 6n;
/** ACTIVE_CACHELINE_MAX_OVERLAP: the overlap counter's ceiling in debug.c. */
export const ACTIVE_CACHELINE_MAX_OVERLAP = 7;

export type DmaDebugClass =
  | 'unmap-not-mapped'
  | 'unmap-wrong-size'
  | 'unmap-wrong-type'
  | 'unmap-wrong-sg-nents'
  | 'unmap-wrong-direction'
  | 'map-error-not-checked'
  | 'sync-not-mapped'
  | 'sync-beyond-mapping'
  | 'sync-wrong-direction'
  | 'sync-read-only-for-cpu'
  | 'sync-write-only-for-device'
  | 'sync-sg-wrong-nents'
  | 'sg-segment-too-long'
  | 'sg-segment-crosses-boundary'
  | 'leaked-mappings'
  | 'overlapping-cacheline';

export interface DmaDebugFinding {
  readonly class: DmaDebugClass;
  readonly device: string;
  readonly dmaAddress: bigint;
  readonly message: string;
}

export interface DmaDebugEntry {
  readonly device: string;
  readonly type: DmaMappingType;
  readonly dmaAddress: bigint;
  readonly size: bigint;
  readonly direction: DmaDirection;
  /** CPU physical address of the first byte (for the cacheline check). */
  readonly paddr: bigint;
  /** sg: entries passed to map (sg_call_ents) and DMA segments produced (sg_mapped_ents). */
  readonly sgCallEnts: number;
  readonly sgMappedEnts: number;
  /** MAP_ERR_NOT_CHECKED until dma_mapping_error is called (single/phys only). */
  mapErrorChecked: boolean;
  readonly skipCpuSync: boolean;
}

export interface UnmapCheck {
  readonly type: DmaMappingType;
  readonly size: bigint;
  readonly direction: DmaDirection;
  readonly sgNents?: number;
}

function key(device: string, addr: bigint): string {
  return `${device}@${addr.toString(16)}`;
}

export class DmaDebug {
  readonly findings: DmaDebugFinding[] = [];
  private readonly entries = new Map<string, DmaDebugEntry>();
  /** cacheline number → live overlapping mappings (active_cacheline radix tree). */
  private readonly cachelines = new Map<bigint, number>();
  private readonly metrics: Metrics;
  enabled: boolean;

  constructor(metrics: Metrics, enabled = true) {
    this.metrics = metrics;
    this.enabled = enabled;
  }

  get activeCount(): number {
    return this.entries.size;
  }

  /** Live entries of a device. */
  entriesOf(device: string): DmaDebugEntry[] {
    return [...this.entries.values()].filter((e) => e.device === device);
  }

  findingsOf(cls: DmaDebugClass): DmaDebugFinding[] {
    return this.findings.filter((f) => f.class === cls);
  }

  /** add_dma_entry + active_cacheline_insert. */
  add(entry: Omit<DmaDebugEntry, 'mapErrorChecked'> & { readonly mapErrorChecked?: boolean }): void {
    if (!this.enabled) return;
    const full: DmaDebugEntry = {
      ...entry,
      mapErrorChecked: entry.mapErrorChecked ?? !(entry.type === 'single' || entry.type === 'phys'),
    };
    this.entries.set(key(entry.device, entry.dmaAddress), full);
    // Only mappings the device may write are tracked (debug.c skips DMA_TO_DEVICE).
    if (entry.direction === 'TO_DEVICE') return;
    const line = entry.paddr >> L1_CACHE_SHIFT;
    const overlap = this.cachelines.get(line);
    if (overlap === undefined) {
      this.cachelines.set(line, 0);
      return;
    }
    this.cachelines.set(line, Math.min(overlap + 1, ACTIVE_CACHELINE_MAX_OVERLAP));
    if (!entry.skipCpuSync) {
      this.report(
        'overlapping-cacheline',
        entry.device,
        entry.dmaAddress,
        `cacheline tracking EEXIST, overlapping mappings aren't supported (cacheline ${formatHex(line << L1_CACHE_SHIFT)})`,
      );
    }
  }

  /** dma_mapping_error(): marks the entry checked. */
  markChecked(device: string, dmaAddress: bigint): void {
    const entry = this.entries.get(key(device, dmaAddress));
    if (entry !== undefined) entry.mapErrorChecked = true;
  }

  /** check_unmap: the entry is removed whatever is wrong (as the kernel does once it finds it). */
  checkUnmap(device: string, dmaAddress: bigint, check: UnmapCheck): void {
    if (!this.enabled) return;
    const k = key(device, dmaAddress);
    const entry = this.entries.get(k);
    const where = `[device address=${formatHex(dmaAddress)}] [size=${check.size} bytes]`;
    if (entry === undefined) {
      this.report(
        'unmap-not-mapped',
        device,
        dmaAddress,
        `device driver tries to free DMA memory it has not allocated ${where}`,
      );
      return;
    }
    if (entry.size !== check.size) {
      this.report(
        'unmap-wrong-size',
        device,
        dmaAddress,
        `device driver frees DMA memory with different size [device address=${formatHex(dmaAddress)}] [map size=${entry.size} bytes] [unmap size=${check.size} bytes]`,
      );
    }
    if (entry.type !== check.type) {
      this.report(
        'unmap-wrong-type',
        device,
        dmaAddress,
        `device driver frees DMA memory with wrong function ${where} [mapped as ${entry.type}] [unmapped as ${check.type}]`,
      );
    }
    if (entry.type === 'sg' && check.sgNents !== undefined && entry.sgCallEnts !== check.sgNents) {
      this.report(
        'unmap-wrong-sg-nents',
        device,
        dmaAddress,
        `device driver frees DMA sg list with different entry count [map count=${entry.sgCallEnts}] [unmap count=${check.sgNents}]`,
      );
    }
    if (entry.direction !== check.direction) {
      this.report(
        'unmap-wrong-direction',
        device,
        dmaAddress,
        `device driver frees DMA memory with different direction ${where} [mapped with ${entry.direction}] [unmapped with ${check.direction}]`,
      );
    }
    if (!entry.mapErrorChecked) {
      this.report(
        'map-error-not-checked',
        device,
        dmaAddress,
        `device driver failed to check map error ${where} [mapped as ${entry.type}]`,
      );
    }
    this.remove(k, entry);
  }

  /**
   * check_sync: `dmaAddress` may point inside a mapping (dma_sync_single_range_*); the entry is
   * found by the mapping's start as the kernel's bucket search does for ranges within an entry.
   */
  checkSync(
    device: string,
    dmaAddress: bigint,
    size: bigint,
    direction: DmaDirection,
    toCpu: boolean,
    sgNents?: number,
  ): void {
    if (!this.enabled) return;
    const entry = this.findContaining(device, dmaAddress);
    if (entry === undefined) {
      this.report(
        'sync-not-mapped',
        device,
        dmaAddress,
        `device driver tries to sync DMA memory it has not allocated [device address=${formatHex(dmaAddress)}] [size=${size} bytes]`,
      );
      return;
    }
    if (dmaAddress + size > entry.dmaAddress + entry.size) {
      this.report(
        'sync-beyond-mapping',
        device,
        dmaAddress,
        `device driver syncs DMA memory outside allocated range [device address=${formatHex(entry.dmaAddress)}] [allocation size=${entry.size} bytes] [sync offset+size=${dmaAddress - entry.dmaAddress + size}]`,
      );
    }
    if (entry.type === 'sg' && sgNents !== undefined && entry.sgCallEnts !== sgNents) {
      this.report(
        'sync-sg-wrong-nents',
        device,
        dmaAddress,
        `device driver syncs DMA sg list with different entry count [map count=${entry.sgCallEnts}] [sync count=${sgNents}]`,
      );
    }
    if (entry.direction === 'BIDIRECTIONAL') return;
    if (entry.direction !== direction) {
      this.report(
        'sync-wrong-direction',
        device,
        dmaAddress,
        `device driver syncs DMA memory with different direction [mapped with ${entry.direction}] [synced with ${direction}]`,
      );
    }
    if (toCpu && entry.direction !== 'FROM_DEVICE' && direction !== 'TO_DEVICE') {
      this.report(
        'sync-read-only-for-cpu',
        device,
        dmaAddress,
        `device driver syncs device read-only DMA memory for cpu [mapped with ${entry.direction}] [synced with ${direction}]`,
      );
    }
    if (!toCpu && entry.direction !== 'TO_DEVICE' && direction !== 'FROM_DEVICE') {
      this.report(
        'sync-write-only-for-device',
        device,
        dmaAddress,
        `device driver syncs device write-only DMA memory to device [mapped with ${entry.direction}] [synced with ${direction}]`,
      );
    }
  }

  /** check_sg_segment: a DMA segment longer than the device's max or crossing its boundary. */
  checkSgSegment(
    device: string,
    dmaAddress: bigint,
    length: bigint,
    maxSeg: bigint,
    boundaryMask: bigint,
  ): void {
    if (!this.enabled) return;
    if (length > maxSeg) {
      this.report(
        'sg-segment-too-long',
        device,
        dmaAddress,
        `mapping sg segment longer than device claims to support [len=${length}] [max=${maxSeg}]`,
      );
    }
    const last = dmaAddress + length - 1n;
    if ((dmaAddress | boundaryMask) !== (last | boundaryMask)) {
      this.report(
        'sg-segment-crosses-boundary',
        device,
        dmaAddress,
        `mapping sg segment across boundary [start=${formatHex(dmaAddress)}] [end=${formatHex(last)}] [boundary=${formatHex(boundaryMask)}]`,
      );
    }
  }

  /** dma_debug_device_change (driver unbound): every live entry is a leak. Returns the count. */
  deviceRemoved(device: string): number {
    if (!this.enabled) return 0;
    const leaked = this.entriesOf(device);
    if (leaked.length > 0) {
      this.report(
        'leaked-mappings',
        device,
        leaked[0]!.dmaAddress,
        `device driver has pending DMA allocations while released from device [count=${leaked.length}]`,
      );
      for (const entry of leaked) this.remove(key(entry.device, entry.dmaAddress), entry);
    }
    return leaked.length;
  }

  private findContaining(device: string, addr: bigint): DmaDebugEntry | undefined {
    const exact = this.entries.get(key(device, addr));
    if (exact !== undefined) return exact;
    for (const entry of this.entries.values()) {
      if (entry.device === device && addr >= entry.dmaAddress && addr < entry.dmaAddress + entry.size)
        return entry;
    }
    return undefined;
  }

  private remove(k: string, entry: DmaDebugEntry): void {
    this.entries.delete(k);
    if (entry.direction === 'TO_DEVICE') return;
    const line = entry.paddr >> L1_CACHE_SHIFT;
    const overlap = this.cachelines.get(line);
    if (overlap === undefined) return;
    if (overlap === 0) this.cachelines.delete(line);
    else this.cachelines.set(line, overlap - 1);
  }

  private report(cls: DmaDebugClass, device: string, dmaAddress: bigint, message: string): void {
    this.findings.push({ class: cls, device, dmaAddress, message: `DMA-API: ${device}: ${message}` });
    this.metrics.add(`dma_debug.${cls}`);
  }
}
