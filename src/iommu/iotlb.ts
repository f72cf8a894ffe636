/**
 * An IOTLB: the IOMMU's cache of translations, filled on use and tagged by domain (the domain id /
 * DID / ASID), so a group moving between domains needs no flush. Entries are whole leaves. The cache
 * keeps what it was filled with until it is invalidated: after an unmap without an invalidation a
 * device still reaches the old page through it (the lazy-mode window).
 * Eviction is least-recently-used when the capacity is reached.
 */
import { COUNTER, type Metrics } from '../core/index.ts';
import type { Prot } from './prot.ts';

export interface IotlbEntry {
  readonly domainId: number;
  readonly leafIova: bigint;
  readonly pageSize: bigint;
  /** Physical address of the leaf's first byte. */
  readonly phys: bigint;
  readonly prot: Prot;
}

export class Iotlb {
  readonly capacity: number;
  private readonly metrics: Metrics;
  /** Insertion order is recency order (re-inserted on every hit). */
  private readonly entries = new Map<string, IotlbEntry>();

  constructor(metrics: Metrics, capacity = 4096) {
    this.metrics = metrics;
    this.capacity = capacity;
  }

  get size(): number {
    return this.entries.size;
  }

  /** A cached leaf covering `iova` in the domain, trying each page size the domain uses. */
  lookup(domainId: number, iova: bigint, pageSizes: readonly bigint[]): IotlbEntry | undefined {
    for (const size of pageSizes) {
      const key = keyOf(domainId, iova - (iova & (size - 1n)));
      const entry = this.entries.get(key);
      if (entry !== undefined && entry.pageSize === size) {
        this.entries.delete(key);
        this.entries.set(key, entry);
        return entry;
      }
    }
    return undefined;
  }

  insert(entry: IotlbEntry): void {
    const key = keyOf(entry.domainId, entry.leafIova);
    this.entries.delete(key);
    if (this.entries.size >= this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(key, entry);
  }

  /** One invalidation command for `[start, last]` of a domain; returns entries dropped. */
  invalidateRange(domainId: number, start: bigint, last: bigint): number {
    this.metrics.add(COUNTER.iotlbFlushes);
    let dropped = 0;
    for (const [key, e] of this.entries) {
      if (e.domainId === domainId && e.leafIova <= last && e.leafIova + e.pageSize - 1n >= start) {
        this.entries.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  /** One invalidation of everything a domain has cached (flush_iotlb_all). */
  invalidateDomain(domainId: number): number {
    this.metrics.add(COUNTER.iotlbFlushes);
    let dropped = 0;
    for (const [key, e] of this.entries) {
      if (e.domainId === domainId) {
        this.entries.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  /** Entries a domain has cached (for inspection and tests). */
  entriesOf(domainId: number): IotlbEntry[] {
    return [...this.entries.values()].filter((e) => e.domainId === domainId);
  }
}

function keyOf(domainId: number, leafIova: bigint): string {
  return `${domainId}:${leafIova.toString(16)}`;
}
