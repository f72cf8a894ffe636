/**
 * What physr would change: every mapping the trace made, replayed through the model twice on the
 * machine the user picks, through the public DMA API only:
 *  - legacy, as traced: dma_map_sg of an sg_table holding the traced entries (sg_table metadata,
 *    entries, per-entry or merged IOVAs, PTE writes, IOTLB flushes);
 *  - physr: a PhyrList of the same physical ranges (contiguous entries merged by the builder),
 *    mapped with dmaMapPhyrList: one IOVA through the two-step IOVA API, bulk link, one sync.
 * Single mappings and coherent allocations are one dma_map_phys in both designs (physr changes
 * lists, not single ranges), so they add the same costs to both sides.
 * Unmaps happen where the trace unmaps. A list cut at `[TRUNCATED]` is replayed for its printed
 * entries; its unprinted entries are counted from nents and reported as unknown.
 *
 * The trace's physical addresses are used as they are when the model's RAM holds them; otherwise
 * they are moved into the model's largest RAM bank keeping their offset modulo 1 GiB (so page-size
 * alignment, and with it the IOMMU's page-size choice, is kept).
 */
import {
  COUNTER,
  isPhysrError,
  type MetricsSnapshot,
  PhyrListBuilder,
  type SgTable,
  sgAllocTable,
} from '../core/index.ts';
import {
  type DmaDevice,
  type DmaDirection,
  type DmaMapping,
  dmaMapPhyrList,
  dmaMapSg,
  dmaUnmap,
  dmaUnmapSg,
  type Machine,
  mapPhys,
} from '../dma/index.ts';
import type { Bdf } from '../platform/index.ts';
import type { TraceOrigin } from './events.ts';
import type { TracedMapping } from './replay.ts';

const GiB = 1n << 30n;
const PAGE_SHIFT = 12n;
const PAGE_MASK = 0xfffn;

export type TraceDesign = 'legacy' | 'physr';

/** How the user wants the model machine's IOMMU (iommu.strict=, iommu.passthrough=, iommu=off). */
export type IommuMode = 'strict' | 'lazy' | 'passthrough' | 'off';

export interface ModelTarget {
  /** A fresh machine for one design (each design gets its own, so counts never mix). */
  readonly machine: () => Machine;
  /** The model device every traced device's mappings are replayed on. */
  readonly device: Bdf;
  readonly mode: IommuMode;
  /** The model device's dma_set_max_seg_size; default UINT_MAX (what GPU and RDMA drivers set). */
  readonly maxSegmentSize?: bigint;
}

/** UINT_MAX: the largest scatterlist segment (dma_set_max_seg_size(dev, UINT_MAX)). */
export const MAX_SEGMENT_DEFAULT = 0xffff_ffffn;

/** One design's totals, read from its machine's Metrics plus what the replay counted itself. */
export interface DesignTotals {
  readonly maps: number;
  readonly failedMaps: number;
  readonly firstFailure: string | undefined;
  /** Legacy: scatterlist entries; physr: PhyrList ranges (sg mappings only). */
  readonly listEntries: number;
  readonly metadataBytes: number;
  readonly iovaAllocations: number;
  readonly pteWrites: number;
  readonly iotlbFlushes: number;
  readonly tablePagesAllocated: number;
  readonly bounceBytes: number;
  readonly metrics: MetricsSnapshot;
}

export interface ModelComparison {
  readonly mode: IommuMode;
  readonly device: Bdf;
  readonly legacy: DesignTotals;
  readonly physr: DesignTotals;
  /** Ranges moved into model RAM because the model has no RAM at the traced address. */
  readonly relocatedRanges: number;
  /** sg entries of truncated lists the trace does not print: replayed by neither design. */
  readonly unknownSgEntries: number;
  readonly truncatedLists: number;
  /** Scatterlist metadata those lists really took, counted from nents (not in legacy.metadataBytes). */
  readonly truncatedSgMetadataBytes: number;
}

class DesignRun {
  readonly machine: Machine;
  readonly device: DmaDevice;
  maps = 0;
  failedMaps = 0;
  firstFailure: string | undefined;
  listEntries = 0;
  readonly live = new Map<number, { mapping?: DmaMapping; sgt?: SgTable; dir: DmaDirection }>();

  constructor(
    readonly design: TraceDesign,
    target: ModelTarget,
  ) {
    this.machine = target.machine();
    this.device = this.machine.device(target.device, {
      // Traced GPU/RDMA drivers raise the PCI default of 64 KiB (dma_set_max_seg_size): the traced
      // lists hold longer segments, which the legacy path would otherwise split or refuse.
      maxSegmentSize: target.maxSegmentSize ?? MAX_SEGMENT_DEFAULT,
      ...(target.mode === 'passthrough' ? { passthrough: true } : {}),
    });
  }

  fail(error: unknown, at: TraceOrigin): void {
    if (!isPhysrError(error)) throw error;
    this.failedMaps++;
    this.firstFailure ??= `line ${at.line}: ${error.errno}: ${error.reason}`;
  }

  totals(): DesignTotals {
    const m = this.machine.metrics;
    const metadata =
      this.design === 'legacy' ? m.get(COUNTER.sgMetadataBytes) : m.get(COUNTER.physrMetadataBytes);
    return {
      maps: this.maps,
      failedMaps: this.failedMaps,
      firstFailure: this.firstFailure,
      listEntries: this.listEntries,
      metadataBytes: metadata,
      iovaAllocations: m.get(COUNTER.iovaAllocations),
      pteWrites: m.get(COUNTER.pteWrites),
      iotlbFlushes: m.get(COUNTER.iotlbFlushes),
      tablePagesAllocated: m.get(COUNTER.tablePagesAllocated),
      bounceBytes: m.get(COUNTER.bounceBytes),
      metrics: m.snapshot(),
    };
  }
}

function toMapDir(dir: string | undefined): DmaDirection {
  return dir === 'TO_DEVICE' || dir === 'FROM_DEVICE' ? dir : 'BIDIRECTIONAL';
}

/** The physical ranges of a traced mapping, in list order (sg: printed entries only). */
export function tracedRanges(m: TracedMapping): { ranges: [bigint, bigint][]; estimated: boolean } {
  const e = m.event;
  if (e.kind !== 'map_sg') {
    const phys = e.kind === 'map' ? e.phys : (e.physAddrs?.[0] ?? e.dma);
    return { ranges: [[phys, e.size]], estimated: e.kind === 'alloc' && e.physAddrs === undefined };
  }
  const n = e.physAddrs.length;
  if (e.ents === e.nents && e.sizes.length === n) {
    return { ranges: e.physAddrs.map((p, i) => [p, e.sizes[i]!]), estimated: false };
  }
  // The DMA segments merged entries (IOMMU): each entry's length is not printed. Entries are taken
  // to run to the next page boundary, the last taking what is left of the printed total.
  let total = 0n;
  for (const s of e.sizes) total += s;
  const ranges: [bigint, bigint][] = [];
  for (let i = 0; i < n; i++) {
    const p = e.physAddrs[i]!;
    const len = i + 1 < n ? (((p | PAGE_MASK) + 1n - p) as bigint) : total > 0n ? total : 0x1000n;
    total -= len;
    ranges.push([p, len > 0n ? len : 0x1000n]);
  }
  return { ranges, estimated: true };
}

/** Replays traced mappings through both designs; feed it from TraceReplay's onMap/onUnmap. */
export class ModelReplay {
  private readonly runs: readonly DesignRun[];
  private relocatedRanges = 0;
  private unknownSgEntries = 0;
  private truncatedLists = 0;
  private truncatedSgMetadataBytes = 0;
  private readonly bank: { start: bigint; span: bigint };

  constructor(private readonly target: ModelTarget) {
    this.runs = [new DesignRun('legacy', target), new DesignRun('physr', target)];
    this.bank = largestBank(this.runs[0]!.machine);
  }

  private place(phys: bigint, size: bigint): bigint {
    const mm = this.runs[0]!.machine.platform.memoryMap;
    const last = phys + size - 1n;
    const region = mm.lookup(phys);
    if (region !== undefined && region.kind === 'ram' && last <= region.last) return phys;
    this.relocatedRanges++;
    return this.bank.start + (phys % this.bank.span);
  }

  onMap(m: TracedMapping): void {
    const e = m.event;
    const dir = toMapDir(m.dir);
    const { ranges } = tracedRanges(m);
    const placed = ranges.map(([p, s]) => [this.place(p, s), s] as const);
    if (e.kind === 'map_sg' && e.truncated) {
      this.truncatedLists++;
      this.unknownSgEntries += e.nents - e.physAddrs.length;
      this.truncatedSgMetadataBytes += sgAllocTable(e.nents).metadataBytes;
    }
    for (const run of this.runs) {
      run.maps++;
      try {
        if (placed.length === 0) continue;
        if (e.kind !== 'map_sg') {
          // A single mapping or coherent buffer is one dma_map_phys in both designs.
          const [p, s] = placed[0]!;
          run.live.set(m.id, { mapping: mapPhys(run.device, p, s, dir), dir });
        } else if (run.design === 'legacy') {
          const sgt = sgAllocTable(placed.length);
          const slots = sgt.entrySlots(placed.length);
          placed.forEach(([p, s], i) => {
            sgt.setPage(slots[i]!, p >> PAGE_SHIFT, Number(s), Number(p & PAGE_MASK));
          });
          run.listEntries += placed.length;
          dmaMapSg(run.device, sgt, dir);
          run.live.set(m.id, { sgt, dir });
        } else {
          const b = new PhyrListBuilder();
          for (const [p, s] of placed) b.append(p, s);
          const list = b.build();
          run.listEntries += list.count;
          run.machine.metrics.add(COUNTER.physrRanges, list.count);
          run.machine.metrics.add(COUNTER.physrMetadataBytes, list.metadataBytes);
          run.live.set(m.id, { mapping: dmaMapPhyrList(run.device, list, dir), dir });
        }
      } catch (error) {
        run.fail(error, m.at);
      }
    }
  }

  onUnmap(m: TracedMapping, at: TraceOrigin): void {
    for (const run of this.runs) {
      const h = run.live.get(m.id);
      if (h === undefined) continue;
      run.live.delete(m.id);
      try {
        if (h.sgt !== undefined) dmaUnmapSg(run.device, h.sgt, h.dir);
        else if (h.mapping !== undefined) dmaUnmap(h.mapping);
      } catch (error) {
        run.fail(error, at);
      }
    }
  }

  finish(): ModelComparison {
    // Lazy domains: what the flush queue still holds is flushed when its timer fires.
    for (const run of this.runs) run.machine.flushQueues();
    return {
      mode: this.target.mode,
      device: this.target.device,
      legacy: this.runs[0]!.totals(),
      physr: this.runs[1]!.totals(),
      relocatedRanges: this.relocatedRanges,
      unknownSgEntries: this.unknownSgEntries,
      truncatedLists: this.truncatedLists,
      truncatedSgMetadataBytes: this.truncatedSgMetadataBytes,
    };
  }
}

function largestBank(machine: Machine): { start: bigint; span: bigint } {
  let best: { start: bigint; span: bigint } | undefined;
  for (const r of machine.platform.memoryMap.regions()) {
    if (r.kind !== 'ram') continue;
    const start = (r.start + GiB - 1n) & ~(GiB - 1n);
    if (r.last < start) continue;
    const span = ((r.last + 1n - start) / GiB) * GiB;
    if (span > 0n && (best === undefined || span > best.span)) best = { start, span };
  }
  if (best === undefined) return { start: 0n, span: GiB };
  return best;
}
