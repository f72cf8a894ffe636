/**
 * Per-device DMA state over a trace: live mappings (single maps, coherent allocations, sg lists),
 * the IOMMU's live IOVA ranges where the trace has iommu:map/unmap, recent unmaps (for double unmaps
 * and faults after unmap), counts, and findings in the classes of kernel/dma/debug.c.
 *
 * Rules and where they come from:
 *  - an unmap is matched by device and DMA address (dma-debug's hash key), then checked for size
 *    and direction (check_unmap); an sg unmap by its entries' phys addresses, which is all the
 *    dma_unmap_sg event prints;
 *  - iommu:map/unmap print no device: IOVA ranges are kept for the whole trace;
 *  - 7.0 and early 7.1 kernels drop iommu:map on IOMMUs converted to the generic page table code, so
 *    a missing map there is "unknown", not unmapped.
 */
import type {
  AllocEvent,
  FreeEvent,
  IommuMapEvent,
  IommuUnmapEvent,
  IoPageFaultEvent,
  MapEvent,
  MapSgEvent,
  SyncSgEvent,
  SyncSingleEvent,
  TraceDirection,
  TraceEvent,
  TraceOrigin,
  UnmapEvent,
  UnmapSgEvent,
} from './events.ts';
import type { Finding, FindingClass } from './findings.ts';
import { LiveRanges } from './live-ranges.ts';
import { type Timeline, type TimelineKind, TimelineRecorder } from './timeline.ts';
import { UnmapHistory } from './unmap-history.ts';

/** Largest number of sg entries the dma_map_sg event prints (DMA_TRACE_MAX_ENTRIES, include/trace/events/dma.h). */
export const DMA_TRACE_MAX_ENTRIES = 128;

export type MappingKind = 'single' | 'alloc' | 'sg';

/** A mapping made in the trace, live until its unmap. */
export interface TracedMapping {
  readonly kind: MappingKind;
  readonly id: number;
  readonly device: string;
  readonly dir: TraceDirection | undefined;
  /** DMA address of the first byte (sg: of the first DMA segment). */
  readonly dma: bigint;
  /** Bytes mapped (sg: the printed DMA segments' lengths; see `truncated`). */
  readonly size: bigint;
  readonly at: TraceOrigin;
  /** The map event itself (what the model replays). */
  readonly event: MapEvent | MapSgEvent | AllocEvent;
}

interface UnmapRecord {
  readonly start: bigint;
  readonly last: bigint;
  readonly mapAt: TraceOrigin | undefined;
  readonly unmapAt: TraceOrigin;
}

/** Counts a device's trace shows. */
export interface DeviceCounts {
  maps: number;
  unmaps: number;
  sgMaps: number;
  sgUnmaps: number;
  sgEntries: number;
  sgSegments: number;
  truncatedSgLists: number;
  /** Entries of truncated lists the trace does not print (counted from nents). */
  unprintedSgEntries: number;
  allocs: number;
  frees: number;
  syncs: number;
  mapErrors: number;
  faults: number;
  bouncedBytes: bigint;
  mappedBytes: bigint;
  peakLive: number;
  peakLiveBytes: bigint;
}

export interface IommuCounts {
  maps: number;
  unmaps: number;
  mappedBytes: bigint;
  unmappedBytes: bigint;
}

/** Affected by the dropped iommu:map: 7.0.x and 7.1 before the fix (we cannot tell rcs apart). */
export function kernelDropsIommuMap(version: string | undefined): boolean | undefined {
  if (version === undefined) return undefined;
  const m = /^(\d+)\.(\d+)/.exec(version);
  if (m === null) return undefined;
  const major = Number(m[1]);
  const minor = Number(m[2]);
  return major === 7 && (minor === 0 || minor === 1);
}

export interface ReplayOptions {
  /** The traced machine's kernel release (`uname -r`), when known. */
  readonly kernel?: string;
  /** Most findings kept per class (all are counted). Default 1000. */
  readonly maxFindingsPerClass?: number;
  /** Recent unmaps remembered per device (and for the IOMMU) for double unmaps and use after unmap. Default 8192. */
  readonly unmapHistory?: number;
  /**
   * Most events kept on each device's timeline (and the IOMMU's): the first half and the last half
   * of them, with a count of what was left out between. Default 1000.
   */
  readonly timelineEvents?: number;
  /** Called for every mapping made and every unmap matched (the model replay hooks in here). */
  readonly onMap?: (m: TracedMapping) => void;
  readonly onUnmap?: (m: TracedMapping, at: TraceOrigin) => void;
}

class DeviceState {
  readonly singles: ByKey<AddrKey> = new Map();
  readonly allocs: ByKey<AddrKey> = new Map();
  readonly sgs: ByKey<string> = new Map();
  readonly ranges = new LiveRanges<TracedMapping>();
  readonly unmapped: UnmapHistory<AddrKey, UnmapRecord>;
  /** Recent sg unmaps by their entries' phys addresses (all dma_unmap_sg prints). */
  readonly sgUnmapped: UnmapHistory<string, UnmapRecord>;

  readonly timeline: TimelineRecorder;

  constructor(history: number, timelineEvents: number) {
    this.unmapped = new UnmapHistory(history);
    this.sgUnmapped = new UnmapHistory(history);
    this.timeline = newTimeline(timelineEvents);
  }
  liveBytes = 0n;
  live = 0;
  iommuMapMissingReported = false;
  readonly counts: DeviceCounts = {
    maps: 0,
    unmaps: 0,
    sgMaps: 0,
    sgUnmaps: 0,
    sgEntries: 0,
    sgSegments: 0,
    truncatedSgLists: 0,
    unprintedSgEntries: 0,
    allocs: 0,
    frees: 0,
    syncs: 0,
    mapErrors: 0,
    faults: 0,
    bouncedBytes: 0n,
    mappedBytes: 0n,
    peakLive: 0,
    peakLiveBytes: 0n,
  };
}

function mark(
  t: TimelineRecorder,
  kind: TimelineKind,
  at: TraceOrigin,
  address: bigint | undefined,
  size: bigint | undefined,
): void {
  t.add(at.timeUs, kind, address, size, at.line);
}

function newTimeline(events: number): TimelineRecorder {
  const head = Math.ceil(events / 2);
  return new TimelineRecorder(head, events - head);
}

function sgKey(physAddrs: readonly bigint[]): string {
  const n = Math.min(physAddrs.length, DMA_TRACE_MAX_ENTRIES);
  let key = '';
  for (let i = 0; i < n; i++) key += `${physAddrs[i]!.toString(16)},`;
  return key;
}

function hex(v: bigint): string {
  return `0x${v.toString(16)}`;
}

/**
 * Map key of a 64-bit address: the number itself while exact (below 2^53: hashing a number is far
 * cheaper than hashing a bigint), else its hex string.
 */
type AddrKey = number | string;

function addrKey(a: bigint): AddrKey {
  return a <= 0x1f_ffff_ffff_ffffn ? Number(a) : a.toString(16);
}

/** Live mappings by key: one mapping, or (rarely: the same address mapped twice) a list, oldest first. */
type ByKey<K> = Map<K, TracedMapping | TracedMapping[]>;

function take<K>(map: ByKey<K>, key: K): TracedMapping | undefined {
  const v = map.get(key);
  if (v === undefined || !Array.isArray(v)) {
    if (v !== undefined) map.delete(key);
    return v;
  }
  const m = v.shift();
  if (v.length === 1) map.set(key, v[0]!);
  return m;
}

function put<K>(map: ByKey<K>, key: K, m: TracedMapping): void {
  const v = map.get(key);
  if (v === undefined) map.set(key, m);
  else if (Array.isArray(v)) v.push(m);
  else map.set(key, [v, m]);
}

export interface ReplayResult {
  readonly devices: ReadonlyMap<string, DeviceCounts>;
  readonly iommu: IommuCounts;
  readonly findings: readonly Finding[];
  /** Findings per class, all of them (the list keeps at most maxFindingsPerClass of each). */
  readonly findingCounts: ReadonlyMap<FindingClass, number>;
  /** Mappings live at the end, per device. */
  readonly liveAtEnd: ReadonlyMap<string, number>;
  readonly iommuLiveAtEnd: number;
  readonly firstTimeUs: number | undefined;
  readonly lastTimeUs: number | undefined;
  /** Each device's events over time (bounded). */
  readonly timelines: ReadonlyMap<string, Timeline>;
  /** iommu:map and iommu:unmap over time (they name no device). */
  readonly iommuTimeline: Timeline;
}

export class TraceReplay {
  private readonly devices = new Map<string, DeviceState>();
  private readonly iommuLive = new LiveRanges<IommuMapEvent>();
  private readonly iommuUnmapped: UnmapHistory<AddrKey, UnmapRecord>;
  private readonly iommuCounts: IommuCounts = { maps: 0, unmaps: 0, mappedBytes: 0n, unmappedBytes: 0n };
  private readonly findings: Finding[] = [];
  private readonly findingCounts = new Map<FindingClass, number>();
  private readonly maxPerClass: number;
  private readonly historySize: number;
  private readonly timelineEvents: number;
  private readonly iommuTimeline: TimelineRecorder;
  private readonly dropsIommuMap: boolean | undefined;
  private iommuEventsSeen = false;
  private nextId = 1;
  private firstTimeUs: number | undefined;
  private lastTimeUs: number | undefined;

  constructor(private readonly options: ReplayOptions = {}) {
    this.maxPerClass = options.maxFindingsPerClass ?? 1000;
    this.historySize = options.unmapHistory ?? 8192;
    this.timelineEvents = options.timelineEvents ?? 1000;
    this.iommuTimeline = newTimeline(this.timelineEvents);
    this.iommuUnmapped = new UnmapHistory(this.historySize);
    this.dropsIommuMap = kernelDropsIommuMap(options.kernel);
  }

  private device(name: string): DeviceState {
    let d = this.devices.get(name);
    if (d === undefined) {
      d = new DeviceState(this.historySize, this.timelineEvents);
      this.devices.set(name, d);
    }
    return d;
  }

  private report(f: Finding): void {
    const n = (this.findingCounts.get(f.class) ?? 0) + 1;
    this.findingCounts.set(f.class, n);
    if (n <= this.maxPerClass) this.findings.push(f);
  }

  private remember<K>(history: UnmapHistory<K, UnmapRecord>, key: K, r: UnmapRecord): void {
    history.set(key, r);
  }

  onEvent(e: TraceEvent): void {
    this.firstTimeUs ??= e.at.timeUs;
    this.lastTimeUs = e.at.timeUs;
    switch (e.kind) {
      case 'map':
        this.map(e);
        return;
      case 'unmap':
        this.unmap(e);
        return;
      case 'map_sg':
        this.mapSg(e);
        return;
      case 'unmap_sg':
        this.unmapSg(e);
        return;
      case 'map_sg_err': {
        const d = this.device(e.device);
        d.counts.mapErrors++;
        mark(d.timeline, 'map_error', e.at, undefined, undefined);
        return;
      }
      case 'alloc':
        this.alloc(e);
        return;
      case 'free':
        this.free(e);
        return;
      case 'sync_single':
        this.syncSingle(e);
        return;
      case 'sync_sg':
        this.syncSg(e);
        return;
      case 'swiotlb_bounced': {
        const d = this.device(e.device);
        d.counts.bouncedBytes += e.size;
        mark(d.timeline, 'bounce', e.at, e.devAddr, e.size);
        return;
      }
      case 'iommu_map':
        this.iommuMap(e);
        return;
      case 'iommu_unmap':
        this.iommuUnmap(e);
        return;
      case 'io_page_fault':
        this.fault(e);
        return;
      case 'iommu_device':
        this.device(e.device);
        return;
    }
  }

  /** Registers a mapping's DMA segments (an sg list's printed ones; else its one range). */
  private add(d: DeviceState, m: TracedMapping): void {
    const e = m.event;
    if (e.kind === 'map_sg') {
      for (let i = 0; i < e.dmaAddrs.length; i++) this.addRange(d, m, e.dmaAddrs[i]!, e.sizes[i]!);
    } else {
      this.addRange(d, m, m.dma, m.size);
    }
    d.live++;
    d.liveBytes += m.size;
    if (d.live > d.counts.peakLive) d.counts.peakLive = d.live;
    if (d.liveBytes > d.counts.peakLiveBytes) d.counts.peakLiveBytes = d.liveBytes;
    d.counts.mappedBytes += m.size;
    this.options.onMap?.(m);
  }

  private addRange(d: DeviceState, m: TracedMapping, start: bigint, size: bigint): void {
    if (size === 0n) return;
    const last = start + size - 1n;
    const other = d.ranges.overlapping(start, last);
    if (other !== undefined && other.value !== m) {
      this.report({
        class: 'overlap',
        severity: 'error',
        device: m.device,
        address: start,
        size,
        message: `${m.device}: map of ${hex(start)}+${hex(size)} overlaps the live ${other.value.kind} mapping ${hex(other.start)}..${hex(other.last)}`,
        lines: [other.value.at, m.at],
      });
    }
    d.ranges.insert(start, last, m);
  }

  private drop(d: DeviceState, m: TracedMapping, at: TraceOrigin): void {
    const e = m.event;
    if (e.kind === 'map_sg') {
      for (let i = 0; i < e.dmaAddrs.length; i++) this.dropRange(d, m, e.dmaAddrs[i]!, e.sizes[i]!, at);
    } else {
      this.dropRange(d, m, m.dma, m.size, at);
    }
    d.live--;
    d.liveBytes -= m.size;
    this.options.onUnmap?.(m, at);
  }

  private dropRange(d: DeviceState, m: TracedMapping, start: bigint, size: bigint, at: TraceOrigin): void {
    if (size === 0n) return;
    d.ranges.remove(start, m);
    this.remember(d.unmapped, addrKey(start), { start, last: start + size - 1n, mapAt: m.at, unmapAt: at });
  }

  private checkIommuMapped(
    d: DeviceState,
    device: string,
    dma: bigint,
    phys: bigint | undefined,
    at: TraceOrigin,
  ) {
    // A translated address (dma != phys) with iommu events on but no iommu:map covering it.
    if (!this.iommuEventsSeen || d.iommuMapMissingReported || phys === dma) return;
    if (this.iommuLive.holding(dma) !== undefined) return;
    d.iommuMapMissingReported = true;
    this.missingIommuMap(device, dma, at, 'DMA address');
  }

  private missingIommuMap(device: string | undefined, iova: bigint, at: TraceOrigin, what: string): void {
    const unknown = this.dropsIommuMap !== false;
    this.report({
      class: 'iommu-map-missing',
      severity: unknown ? 'unknown' : 'error',
      device,
      address: iova,
      size: undefined,
      message: unknown
        ? `${what} ${hex(iova)} has no iommu:map in the trace: unknown, not unmapped (7.0 and early 7.1 kernels do not emit iommu:map on some IOMMUs${this.dropsIommuMap === undefined ? '; pass the kernel release to decide' : ''})`
        : `${what} ${hex(iova)} has no iommu:map in the trace, and this kernel emits it`,
      lines: [at],
    });
  }

  /** A live mapping made by event `e`, numbered in trace order. */
  private record(
    kind: MappingKind,
    e: MapEvent | MapSgEvent | AllocEvent,
    dma: bigint,
    size: bigint,
  ): TracedMapping {
    return { kind, id: this.nextId++, device: e.device, dir: e.dir, dma, size, at: e.at, event: e };
  }

  private map(e: MapEvent): void {
    const d = this.device(e.device);
    d.counts.maps++;
    mark(d.timeline, 'map', e.at, e.dma, e.size);
    const m = this.record('single', e, e.dma, e.size);
    this.checkIommuMapped(d, e.device, e.dma, e.phys, e.at);
    put(d.singles, addrKey(e.dma), m);
    this.add(d, m);
  }

  private notMapped(
    d: DeviceState,
    device: string,
    addr: bigint,
    size: bigint | undefined,
    at: TraceOrigin,
    what: string,
    before = d.unmapped.get(addrKey(addr)),
  ) {
    if (before !== undefined) {
      this.report({
        class: 'double-unmap',
        severity: 'error',
        device,
        address: addr,
        size,
        message: `${device}: ${what} of ${hex(addr)}, already unmapped at ${before.unmapAt.time}`,
        lines: [...(before.mapAt === undefined ? [] : [before.mapAt]), before.unmapAt, at],
      });
      return;
    }
    this.report({
      class: 'unmap-never-mapped',
      severity: 'error',
      device,
      address: addr,
      size,
      message: `${device}: ${what} of ${hex(addr)}, which the trace never mapped`,
      lines: [at],
    });
  }

  private checkMatch(
    m: TracedMapping,
    size: bigint | undefined,
    dir: TraceDirection | undefined,
    at: TraceOrigin,
  ) {
    if (size !== undefined && size !== m.size) {
      this.report({
        class: 'size-mismatch',
        severity: 'error',
        device: m.device,
        address: m.dma,
        size,
        message: `${m.device}: ${hex(m.dma)} mapped with size ${m.size}, unmapped with size ${size}`,
        lines: [m.at, at],
      });
    }
    if (dir !== undefined && m.dir !== undefined && dir !== m.dir) {
      this.report({
        class: 'dir-mismatch',
        severity: 'error',
        device: m.device,
        address: m.dma,
        size: m.size,
        message: `${m.device}: ${hex(m.dma)} mapped ${m.dir}, unmapped ${dir}`,
        lines: [m.at, at],
      });
    }
  }

  private wrongFunction(m: TracedMapping, at: TraceOrigin, what: string): void {
    this.report({
      class: 'wrong-function',
      severity: 'error',
      device: m.device,
      address: m.dma,
      size: m.size,
      message: `${m.device}: ${hex(m.dma)} was made by ${m.event.event}, released by ${what}`,
      lines: [m.at, at],
    });
  }

  private unmap(e: UnmapEvent): void {
    const d = this.device(e.device);
    d.counts.unmaps++;
    mark(d.timeline, 'unmap', e.at, e.dma, e.size);
    this.release(d, e, d.singles, d.allocs);
  }

  /**
   * An unmap (of a single mapping) or free (of a coherent buffer): matched by address among its own
   * kind first; found among the other kind, it is the wrong function (dma-debug's type check).
   */
  private release(
    d: DeviceState,
    e: UnmapEvent | FreeEvent,
    own: ByKey<AddrKey>,
    other: ByKey<AddrKey>,
  ): void {
    const key = addrKey(e.dma);
    const m = take(own, key);
    if (m === undefined) {
      const wrong = take(other, key);
      if (wrong !== undefined) {
        this.wrongFunction(wrong, e.at, e.event);
        this.drop(d, wrong, e.at);
        return;
      }
      this.notMapped(d, e.device, e.dma, e.size, e.at, e.event);
      return;
    }
    this.checkMatch(m, e.size, e.dir, e.at);
    this.drop(d, m, e.at);
  }

  private mapSg(e: MapSgEvent): void {
    const d = this.device(e.device);
    d.counts.sgMaps++;
    d.counts.sgEntries += e.nents;
    d.counts.sgSegments += e.ents;
    if (e.truncated) {
      d.counts.truncatedSgLists++;
      d.counts.unprintedSgEntries += e.nents - e.physAddrs.length;
    }
    let size = 0n;
    for (const s of e.sizes) size += s;
    mark(d.timeline, 'map_sg', e.at, e.dmaAddrs[0], size);
    const m = this.record('sg', e, e.dmaAddrs[0] ?? 0n, size);
    if (e.dmaAddrs.length > 0)
      this.checkIommuMapped(
        d,
        e.device,
        e.dmaAddrs[0]!,
        e.nents === e.ents ? e.physAddrs[0] : undefined,
        e.at,
      );
    put(d.sgs, sgKey(e.physAddrs), m);
    this.add(d, m);
  }

  private unmapSg(e: UnmapSgEvent): void {
    const d = this.device(e.device);
    d.counts.sgUnmaps++;
    const key = sgKey(e.physAddrs);
    const m = take(d.sgs, key);
    mark(d.timeline, 'unmap_sg', e.at, m?.dma, m?.size);
    const first = e.physAddrs[0] ?? 0n;
    if (m === undefined) {
      const what = `${e.event} of ${e.physAddrs.length} entries at phys`;
      this.notMapped(d, e.device, first, undefined, e.at, what, d.sgUnmapped.get(key));
      return;
    }
    this.checkMatch(m, undefined, e.dir, e.at);
    this.drop(d, m, e.at);
    this.remember(d.sgUnmapped, key, { start: first, last: first, mapAt: m.at, unmapAt: e.at });
  }

  private alloc(e: AllocEvent): void {
    const d = this.device(e.device);
    if (e.failed) {
      d.counts.mapErrors++;
      mark(d.timeline, 'map_error', e.at, undefined, e.size);
      return;
    }
    d.counts.allocs++;
    mark(d.timeline, 'alloc', e.at, e.dma, e.size);
    const m = this.record('alloc', e, e.dma, e.size);
    put(d.allocs, addrKey(e.dma), m);
    this.add(d, m);
  }

  private free(e: FreeEvent): void {
    const d = this.device(e.device);
    d.counts.frees++;
    mark(d.timeline, 'free', e.at, e.dma, e.size);
    this.release(d, e, d.allocs, d.singles);
  }

  private checkSync(device: string, dma: bigint, size: bigint, at: TraceOrigin, event: string): void {
    const d = this.device(device);
    d.counts.syncs++;
    mark(d.timeline, 'sync', at, dma, size);
    const r = d.ranges.holding(dma);
    if (r !== undefined && (size === 0n || dma + size - 1n <= r.last)) return;
    this.report({
      class: 'sync-not-mapped',
      severity: 'error',
      device,
      address: dma,
      size,
      message: `${device}: ${event} of ${hex(dma)}+${hex(size)}, which is not ${r === undefined ? 'mapped' : 'wholly inside one mapping'}`,
      lines: r === undefined ? [at] : [r.value.at, at],
    });
  }

  private syncSingle(e: SyncSingleEvent): void {
    this.checkSync(e.device, e.dma, e.size, e.at, e.event);
  }

  private syncSg(e: SyncSgEvent): void {
    if (e.dmaAddrs.length === 0) {
      const d = this.device(e.device);
      d.counts.syncs++;
      mark(d.timeline, 'sync', e.at, undefined, undefined);
      return;
    }
    this.checkSync(e.device, e.dmaAddrs[0]!, e.sizes[0]!, e.at, e.event);
  }

  private iommuMap(e: IommuMapEvent): void {
    this.iommuEventsSeen = true;
    this.iommuCounts.maps++;
    mark(this.iommuTimeline, 'iommu_map', e.at, e.iova, e.size);
    this.iommuCounts.mappedBytes += e.size;
    if (e.size > 0n) this.iommuLive.insert(e.iova, e.iova + e.size - 1n, e);
  }

  private iommuUnmap(e: IommuUnmapEvent): void {
    this.iommuEventsSeen = true;
    this.iommuCounts.unmaps++;
    mark(this.iommuTimeline, 'iommu_unmap', e.at, e.iova, e.size);
    this.iommuCounts.unmappedBytes += e.unmappedSize;
    if (e.size === 0n) return;
    const last = e.iova + e.size - 1n;
    const removed = this.iommuLive.removeWithin(e.iova, last);
    if (removed.length === 0 && this.iommuLive.holding(e.iova) === undefined)
      this.missingIommuMap(undefined, e.iova, e.at, 'iommu:unmap of IOVA');
    this.remember(this.iommuUnmapped, addrKey(e.iova), {
      start: e.iova,
      last,
      mapAt: removed[0]?.value.at,
      unmapAt: e.at,
    });
  }

  private fault(e: IoPageFaultEvent): void {
    const d = this.device(e.device);
    d.counts.faults++;
    mark(d.timeline, 'fault', e.at, e.iova, undefined);
    const live = d.ranges.holding(e.iova) ?? undefined;
    const iommuLive = this.iommuLive.holding(e.iova);
    if (live !== undefined || iommuLive !== undefined) {
      this.report({
        class: 'fault-on-live-mapping',
        severity: 'error',
        device: e.device,
        address: e.iova,
        size: undefined,
        message: `${e.device}: IOMMU fault (flags 0x${e.flags.toString(16).padStart(4, '0')}) on ${hex(e.iova)}, which is mapped`,
        lines: [
          ...(live === undefined ? [] : [live.value.at]),
          ...(iommuLive === undefined ? [] : [iommuLive.value.at]),
          e.at,
        ],
      });
      return;
    }
    const byIommu = latestHolding(this.iommuUnmapped, e.iova);
    const byDma = latestHolding(d.unmapped, e.iova);
    const unmap =
      byIommu === undefined
        ? byDma
        : byDma === undefined || byIommu.unmapAt.timeUs >= byDma.unmapAt.timeUs
          ? byIommu
          : byDma;
    if (unmap === undefined) {
      if (this.dropsIommuMap !== false && this.iommuEventsSeen && d.ranges.size === 0) {
        this.missingIommuMap(e.device, e.iova, e.at, 'faulting IOVA');
        return;
      }
      this.report({
        class: 'fault-never-mapped',
        severity: 'error',
        device: e.device,
        address: e.iova,
        size: undefined,
        message: `${e.device}: IOMMU fault on ${hex(e.iova)}, which the trace never mapped`,
        lines: [e.at],
      });
      return;
    }
    const since = e.at.timeUs - unmap.unmapAt.timeUs;
    const lines = new Set<TraceOrigin>();
    for (const r of [byDma, byIommu]) {
      if (r === undefined) continue;
      if (r.mapAt !== undefined) lines.add(r.mapAt);
      lines.add(r.unmapAt);
    }
    lines.add(e.at);
    this.report({
      class: 'use-after-unmap',
      severity: 'error',
      device: e.device,
      address: e.iova,
      size: unmap.last - unmap.start + 1n,
      message: `${e.device}: IOMMU fault on ${hex(e.iova)} ${since < 1000 ? `${Math.round(since)} µs` : `${(since / 1000).toFixed(1)} ms`} after its unmap at ${unmap.unmapAt.time}`,
      lines: [...lines].sort((a, b) => a.line - b.line),
      unmappedAt: unmap.unmapAt.time,
      sinceUnmapUs: since,
    });
  }

  /** Ends the replay: every mapping still live is a leak (quoting where it was made). */
  finish(): ReplayResult {
    const liveAtEnd = new Map<string, number>();
    for (const [name, d] of this.devices) {
      liveAtEnd.set(name, d.live);
      const leaked = new Set<TracedMapping>();
      for (const r of d.ranges.values()) leaked.add(r.value);
      for (const m of [...leaked].sort((a, b) => a.id - b.id)) {
        this.report({
          class: 'leak',
          severity: 'error',
          device: name,
          address: m.dma,
          size: m.size,
          message: `${name}: ${m.event.event} of ${hex(m.dma)}+${hex(m.size)} at ${m.at.time} is never unmapped`,
          lines: [m.at],
        });
      }
    }
    const devices = new Map<string, DeviceCounts>();
    for (const [name, d] of this.devices) devices.set(name, d.counts);
    const timelines = new Map<string, Timeline>();
    for (const [name, d] of this.devices) timelines.set(name, d.timeline.result());
    return {
      devices,
      iommu: this.iommuCounts,
      findings: this.findings,
      findingCounts: this.findingCounts,
      liveAtEnd,
      iommuLiveAtEnd: this.iommuLive.size,
      firstTimeUs: this.firstTimeUs,
      lastTimeUs: this.lastTimeUs,
      timelines,
      iommuTimeline: this.iommuTimeline.result(),
    };
  }
}

function latestHolding(history: UnmapHistory<AddrKey, UnmapRecord>, addr: bigint): UnmapRecord | undefined {
  let best: UnmapRecord | undefined;
  for (const r of history.values()) {
    if (r.start <= addr && addr <= r.last && (best === undefined || r.unmapAt.timeUs >= best.unmapAt.timeUs))
      best = r;
  }
  return best;
}
