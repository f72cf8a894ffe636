/**
 * A device's events over time, for a view to draw: bounded, keeping the first `head` events and the
 * last `tail` (a ring), with how many of each kind were left out between them. Held in typed arrays,
 * so recording an event allocates nothing and a long trace costs no more memory than a short one.
 *
 * Kinds are the trace's own events: maps, unmaps, sg maps, allocations, syncs, faults, swiotlb
 * bounces, failed maps, and (for the IOMMU's timeline, which the iommu: events print without a
 * device) iommu:map and iommu:unmap. IOTLB flushes are not trace events in any kernel from 6.12 to
 * 7.1 (include/trace/events/iommu.h): they are not on the timeline; the model comparison counts them.
 */

export const TIMELINE_KINDS = [
  'map',
  'unmap',
  'map_sg',
  'unmap_sg',
  'alloc',
  'free',
  'sync',
  'fault',
  'bounce',
  'map_error',
  'iommu_map',
  'iommu_unmap',
] as const;

export type TimelineKind = (typeof TIMELINE_KINDS)[number];

const KIND_INDEX = new Map<TimelineKind, number>(TIMELINE_KINDS.map((k, i) => [k, i]));

export interface TimelineEntry {
  /** Trace timestamp in microseconds. */
  readonly timeUs: number;
  readonly kind: TimelineKind;
  /** DMA address or IOVA (for unmap_sg, the mapping's first DMA address when it was found). */
  readonly address: bigint | undefined;
  readonly size: bigint | undefined;
  /** Line of the trace the event is on. */
  readonly line: number;
}

export interface Timeline {
  /** Events recorded, in trace order. */
  readonly entries: readonly TimelineEntry[];
  /** Events seen (recorded or not). */
  readonly total: number;
  /** Events left out between the first and the last ones kept. */
  readonly omitted: number;
  /** Index in `entries` after which the omitted events were (undefined when none were). */
  readonly gapAfter: number | undefined;
  readonly omittedByKind: ReadonlyMap<TimelineKind, number>;
}

const U64_MAX = (1n << 64n) - 1n;
const HAS_ADDRESS = 1;
const HAS_SIZE = 2;

/** Records a timeline of at most `head + tail` events. */
export class TimelineRecorder {
  private readonly capacity: number;
  private readonly times: Float64Array;
  private readonly lines: Float64Array;
  private readonly kinds: Uint8Array;
  private readonly flags: Uint8Array;
  private readonly addresses: BigUint64Array;
  private readonly sizes: BigUint64Array;
  private readonly seen = new Float64Array(TIMELINE_KINDS.length);
  private total = 0;

  constructor(
    private readonly head: number,
    private readonly tail: number,
  ) {
    this.capacity = head + tail;
    this.times = new Float64Array(this.capacity);
    this.lines = new Float64Array(this.capacity);
    this.kinds = new Uint8Array(this.capacity);
    this.flags = new Uint8Array(this.capacity);
    this.addresses = new BigUint64Array(this.capacity);
    this.sizes = new BigUint64Array(this.capacity);
  }

  /** Slot of event number `n`: the first `head` in place, the rest in a ring after them. */
  private slot(n: number): number {
    return n < this.head ? n : this.head + ((n - this.head) % this.tail);
  }

  add(
    timeUs: number,
    kind: TimelineKind,
    address: bigint | undefined,
    size: bigint | undefined,
    line: number,
  ) {
    const k = KIND_INDEX.get(kind)!;
    this.seen[k]!++;
    if (this.capacity === 0) {
      this.total++;
      return;
    }
    const i = this.tail === 0 && this.total >= this.head ? -1 : this.slot(this.total);
    this.total++;
    if (i < 0) return;
    this.times[i] = timeUs;
    this.lines[i] = line;
    this.kinds[i] = k;
    // A size above 64 bits (the sum of a list's sizes can be) is recorded as unknown, not cut.
    const sized = size !== undefined && size <= U64_MAX;
    this.flags[i] = (address === undefined ? 0 : HAS_ADDRESS) | (sized ? HAS_SIZE : 0);
    this.addresses[i] = address ?? 0n;
    this.sizes[i] = sized ? size : 0n;
  }

  result(): Timeline {
    const kept = Math.min(this.total, this.capacity);
    const firstTail = this.total - (kept - Math.min(this.total, this.head));
    const order: number[] = [];
    for (let n = 0; n < Math.min(this.total, this.head); n++) order.push(n);
    for (let n = Math.max(firstTail, this.head); n < this.total; n++) order.push(n);
    const entries: TimelineEntry[] = [];
    const keptByKind = new Float64Array(TIMELINE_KINDS.length);
    for (const n of order) {
      const i = this.slot(n);
      const f = this.flags[i]!;
      keptByKind[this.kinds[i]!]!++;
      entries.push({
        timeUs: this.times[i]!,
        kind: TIMELINE_KINDS[this.kinds[i]!]!,
        address: f & HAS_ADDRESS ? this.addresses[i]! : undefined,
        size: f & HAS_SIZE ? this.sizes[i]! : undefined,
        line: this.lines[i]!,
      });
    }
    const omittedByKind = new Map<TimelineKind, number>();
    TIMELINE_KINDS.forEach((kind, k) => {
      const left = this.seen[k]! - keptByKind[k]!;
      if (left > 0) omittedByKind.set(kind, left);
    });
    const omitted = this.total - entries.length;
    return {
      entries,
      total: this.total,
      omitted,
      gapAfter: omitted > 0 ? Math.min(this.total, this.head) - 1 : undefined,
      omittedByKind,
    };
  }
}
