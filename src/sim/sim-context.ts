/**
 * What a step executor works with: the scenario, its platform, one Metrics object for the whole
 * scenario, a seeded PRNG, and the named objects earlier steps created (buffers, mappings, dma-bufs).
 */
import { fail, Metrics, type MetricsSnapshot, metricsDelta, type SeededRandom } from '../core/index.ts';
import type { PlatformInstance } from './registry.ts';
import type { Scenario } from './scenario-loader.ts';

/** Named objects steps create and later steps refer to (`name:` / `buffer:` fields). */
export class ObjectStore {
  private readonly objects = new Map<string, { kind: string; value: unknown }>();

  /** Adds an object; EEXIST if the name is taken (names are unique within a scenario). */
  define(name: string, kind: string, value: unknown): void {
    const existing = this.objects.get(name);
    if (existing !== undefined) fail('EEXIST', `"${name}" already names a ${existing.kind}`);
    this.objects.set(name, { kind, value });
  }

  /** The object `name` of `kind`: ENOENT if absent, EINVAL if it is another kind of thing. */
  get<T>(name: string, kind: string, guard: (value: unknown) => value is T): T {
    const entry = this.objects.get(name);
    if (entry === undefined) fail('ENOENT', `no ${kind} named "${name}" (create it in an earlier step)`);
    if (entry.kind !== kind || !guard(entry.value))
      fail('EINVAL', `"${name}" is a ${entry.kind}, not a ${kind}`);
    return entry.value;
  }

  kindOf(name: string): string | undefined {
    return this.objects.get(name)?.kind;
  }

  delete(name: string): boolean {
    return this.objects.delete(name);
  }

  names(): string[] {
    return [...this.objects.keys()];
  }
}

export interface SimContext {
  readonly scenario: Scenario;
  readonly platform: PlatformInstance;
  readonly metrics: Metrics;
  readonly random: SeededRandom;
  readonly seed: bigint;
  readonly iommuMode: 'strict' | 'lazy';
  readonly objects: ObjectStore;
  /**
   * Counters moved by probing devices (iommu_probe_device and the group's default domain with its
   * top-level table): boot-time work the kernel does before any driver maps, so the engine leaves it
   * out of the step that happened to touch a device first. Otherwise whichever design ran first
   * would pay for it in the comparison.
   */
  readonly setupMetrics: Metrics;
  /** Counters moved since the scenario began. */
  scenarioMetrics(): MetricsSnapshot;
}

export function createContext(
  fields: Omit<SimContext, 'scenarioMetrics' | 'objects' | 'setupMetrics'>,
): SimContext {
  const start = fields.metrics.snapshot();
  return {
    ...fields,
    objects: new ObjectStore(),
    setupMetrics: new Metrics(),
    scenarioMetrics: () => metricsDelta(start, fields.metrics.snapshot()),
  };
}
