/**
 * Registries the engine reads: step executors per step kind, and platforms by name (or loaders for
 * `platform: { file }` / `{ sysfs }`). Layers above core fill them as their pieces land; the engine
 * knows only these interfaces.
 */
import { fail, type Metrics, type MetricsSnapshot } from '../core/index.ts';
import type { Bdf, PlatformModel } from '../platform/index.ts';
import type { DesignOutcome, DesignPath, ExpectationReport, MappingLayout } from './report.ts';
import type { Step, StepBody, StepKind } from './scenario-schema.ts';
import type { SimContext } from './sim-context.ts';

/** What a step observed, for the engine to check against the step's `expect`. */
export interface StepObservation {
  /** Bytes read, starting at buffer offset `offset` (checked against `expect.bytes`). */
  readonly bytes?: Uint8Array;
  readonly offset?: bigint;
  /** A fault the access raised (checked against `expect.fault`; unexpected faults fail). */
  readonly fault?: string;
}

export interface StepResult {
  /** Which design the step exercised; defaults to the step's `via` field when it has one. */
  readonly path?: DesignPath;
  readonly observed?: StepObservation;
  /** Checks the executor made itself (e.g. `check`, `expect-counters`). */
  readonly expectations?: readonly ExpectationReport[];
  /** One-line facts for the report (e.g. "2 ranges, 32 B"). */
  readonly notes?: readonly string[];
  /** A map's address spaces (see MappingLayout). */
  readonly layout?: MappingLayout;
  /** The same step under each design the scenario compares (map, pin, register-mr and import steps; see designs.ts). */
  readonly designRuns?: readonly DesignOutcome[];
}

export type StepExecutor<K extends StepKind> = (
  body: StepBody<K>,
  context: SimContext,
  step: Extract<Step, { kind: K }>,
) => StepResult | undefined | Promise<StepResult | undefined>;

type ExecutorTable = { [K in StepKind]?: StepExecutor<K> };
const executors: ExecutorTable = {};

/** Registers the executor of a step kind; EEXIST if one is registered (unless `replace`). */
export function registerStep<K extends StepKind>(
  kind: K,
  executor: StepExecutor<K>,
  options: { replace?: boolean } = {},
): void {
  if (executors[kind] !== undefined && options.replace !== true) {
    fail('EEXIST', `step "${kind}" already has an executor`);
  }
  executors[kind] = executor as ExecutorTable[K];
}

export function unregisterStep(kind: StepKind): boolean {
  const had = executors[kind] !== undefined;
  delete executors[kind];
  return had;
}

/** The executor for a step, typed for any step (the engine dispatches on `step.kind`). */
export function stepExecutor(kind: StepKind): StepExecutor<StepKind> | undefined {
  return executors[kind] as StepExecutor<StepKind> | undefined;
}

export function registeredStepKinds(): StepKind[] {
  return (Object.keys(executors) as StepKind[]).sort();
}

/**
 * The hardware of a platform: the platform layer's model (topology, memory map, bytes, folios),
 * device labels (gpu0, nic0, nvme0…) and what was assumed where a capture said nothing. The DMA
 * layer's Machine is built over it per scenario, once the IOTLB mode is known.
 */
export interface SimPlatform {
  readonly model: PlatformModel;
  /** Label → BDF, e.g. gpu0 → 0000:03:00.0. */
  readonly labels: ReadonlyMap<string, Bdf>;
  readonly assumptions: readonly string[];
}

/** A machine a scenario runs on; `machine` is absent for platforms without hardware (core-only). */
export interface PlatformInstance {
  readonly name: string;
  readonly description: string;
  /** The IOTLB mode when the scenario does not choose (the kernel's default for the arch). */
  readonly defaultIommuMode?: 'strict' | 'lazy';
  readonly machine?: SimPlatform;
}

export interface PlatformOptions {
  readonly seed: bigint;
  readonly metrics: Metrics;
  /** Kernel command line the built-in platform boots with (`pci=disable_acs_redir=...`). */
  readonly cmdline?: string;
}

export interface PlatformFactory {
  readonly description: string;
  create(options: PlatformOptions): PlatformInstance;
}

export type PlatformLoader = (path: string, options: PlatformOptions) => PlatformInstance;

const platforms = new Map<string, PlatformFactory>();
const loaders = new Map<'file' | 'sysfs', PlatformLoader>();

export function registerPlatform(
  name: string,
  factory: PlatformFactory,
  options: { replace?: boolean } = {},
): void {
  if (platforms.has(name) && options.replace !== true)
    fail('EEXIST', `platform "${name}" is already registered`);
  platforms.set(name, factory);
}

export function unregisterPlatform(name: string): boolean {
  return platforms.delete(name);
}

export function platformFactory(name: string): PlatformFactory | undefined {
  return platforms.get(name);
}

/** Built-in platforms, sorted by name. */
export function listPlatforms(): { name: string; description: string }[] {
  return [...platforms.entries()]
    .map(([name, f]) => ({ name, description: f.description }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

export function registerPlatformLoader(kind: 'file' | 'sysfs', loader: PlatformLoader): void {
  loaders.set(kind, loader);
}

export function platformLoader(kind: 'file' | 'sysfs'): PlatformLoader | undefined {
  return loaders.get(kind);
}

export type { MetricsSnapshot };
