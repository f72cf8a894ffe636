/**
 * The plain data model of a run: scenarios → steps → outcome, expectations and metrics, plus the
 * physr-vs-scatterlist comparison. Renderers (text, JSON, HTML) only read this; nothing here is
 * time-dependent, so a seeded run gives the same report byte for byte.
 */
import { COUNTER, type Errno, type MetricsSnapshot } from '../core/index.ts';
import type { SummaryWords } from '../view/wording.ts';
import { type DesignComparison, type DesignOutcome, designTotals } from './designs.ts';
import type { StepKind } from './scenario-schema.ts';

export type { DesignComparison, DesignOutcome };

/** Which design a step exercised: the proposal (physr) or today's scatterlist path (sg). */
export type DesignPath = 'physr' | 'sg';

export interface ExpectationReport {
  /** What was expected, e.g. `bytes = seq`, `iommu.pte_writes = 3`, `error EINVAL`. */
  readonly what: string;
  readonly met: boolean;
  /** What was observed, or why it does not match. */
  readonly detail: string;
}

export type StepStatus = 'ok' | 'failed' | 'error' | 'skipped';

export interface StepReport {
  readonly index: number;
  readonly op: StepKind;
  readonly line?: number;
  readonly status: StepStatus;
  readonly path?: DesignPath;
  readonly expectations: readonly ExpectationReport[];
  /** Set when the step was refused without an `expect: { error }` saying so. */
  readonly error?: { readonly errno: Errno; readonly reason: string };
  /** Set when the step was refused as its `expect: { error }` said: it ran neither design. */
  readonly refused?: { readonly errno: Errno; readonly reason: string };
  readonly notes: readonly string[];
  /** Counters this step moved. */
  readonly metrics: MetricsSnapshot;
  /** For a map: where the bytes are and what the device was given (for the address-space view). */
  readonly layout?: MappingLayout;
  /** What each compared design did for this step, each on its own copy of the machine (designs.ts). */
  readonly designRuns?: readonly DesignOutcome[];
}

/** An [address, length] pair. */
export type RangePair = readonly [bigint, bigint];

/**
 * A mapping's address spaces: its physical ranges, the DMA (IOVA or bus) ranges the device got, and
 * the swiotlb slots it bounced through. Lists are cut at LAYOUT_MAX_RANGES (the counts are whole).
 */
export interface MappingLayout {
  readonly name: string;
  readonly design: DesignPath;
  readonly iovaLayout?: 'packed' | 'aligned';
  readonly via: string;
  readonly physCount: number;
  readonly phys: readonly RangePair[];
  readonly dmaCount: number;
  readonly dma: readonly RangePair[];
  readonly bounce: readonly RangePair[];
}

/** Ranges a layout keeps per list: enough to draw, bounded for a 1 GiB map of 4K pages. */
export const LAYOUT_MAX_RANGES = 256;

/**
 * One compared quantity. `cost` rows are what a design pays (lower is better: the ratio sg/physr
 * above 1 means physr is cheaper); `event` rows count things that happened (faults), which are
 * outcomes to look at, not costs to divide.
 */
export interface ComparisonRow {
  readonly metric: string;
  readonly unit: string;
  readonly physr: number;
  readonly sg: number;
  readonly kind: 'cost' | 'event';
}

export type ScenarioStatus = 'passed' | 'failed' | 'error';

export interface ScenarioFailure {
  readonly step: number;
  readonly op: StepKind;
  readonly line?: number;
  readonly reason: string;
}

export interface ScenarioReport {
  readonly name: string;
  readonly description?: string;
  readonly file: string;
  readonly platform: string;
  readonly seed: bigint;
  readonly iommuMode: 'strict' | 'lazy';
  readonly status: ScenarioStatus;
  /** The first step that failed or errored, with why. */
  readonly failure?: ScenarioFailure;
  readonly steps: readonly StepReport[];
  /** Counters the whole scenario moved. */
  readonly metrics: MetricsSnapshot;
  /** Which designs the scenario's steps ran (a step's `path`). */
  readonly designs: readonly Design[];
  readonly comparison: readonly ComparisonRow[];
  /** The scenario's maps, pins, MR registrations and imports under each design it names (absent when no step ran them). */
  readonly designComparison?: DesignComparison;
}

export type Design = 'physr' | 'sg';

/** The counts the pass/fail line reads (scenarios, steps, expectations). */
export type RunSummary = SummaryWords;

/** CPU time of one design's map+unmap steps over the compared scenarios, per repetition (ms). */
export interface DesignTiming {
  readonly samples: readonly number[];
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

/**
 * The model's CPU time for map+unmap (the steps in `steps`), per design, summed over the scenarios
 * that ran both designs; each repetition reruns them. This is how long the TypeScript model took,
 * not how long the kernel takes.
 */
export interface RunTiming {
  readonly repetitions: number;
  readonly steps: readonly StepKind[];
  readonly physr: DesignTiming;
  readonly sg: DesignTiming;
}

export interface RunReport {
  readonly scenarios: readonly ScenarioReport[];
  readonly summary: RunSummary;
  /** Present when the run was timed (`physr run`; absent in seeded, byte-for-byte reports). */
  readonly timing?: RunTiming;
  /**
   * The comparison summed over the scenarios that ran both designs (`comparedScenarios`): a scenario
   * that runs only one design has nothing to compare it with, and would tilt the sum.
   */
  readonly comparison: readonly ComparisonRow[];
  readonly comparedScenarios: readonly string[];
  /** sg vs Linux 7.1 vs physr over every step all three ran (the headline comparison). */
  readonly designComparison: DesignComparison;
}

/**
 * The comparison's rows. Metadata and entry counters are per design (summed over every step); the
 * other counters are shared by both paths, so they are split by the path of the step that moved
 * them. See README "What the summary counts" for why each is what the kernel pays.
 */
const COMPARED: readonly {
  metric: string;
  unit: string;
  physr: readonly string[];
  sg: readonly string[];
  byPath: boolean;
  kind: 'cost' | 'event';
}[] = [
  {
    // Each step's high-water mark: what it built and keeps, plus scratch held only while building.
    metric: 'metadata at peak',
    unit: 'bytes',
    physr: [COUNTER.physrMetadataBytes],
    sg: [COUNTER.sgMetadataBytes, COUNTER.sgScratchBytes],
    byPath: false,
    kind: 'cost',
  },
  {
    metric: 'metadata retained',
    unit: 'bytes',
    physr: [COUNTER.physrMetadataBytes],
    sg: [COUNTER.sgMetadataBytes],
    byPath: false,
    kind: 'cost',
  },
  {
    // What each design hands the device: dma_map_sg's segments vs physr's DMA ranges.
    metric: 'entries to device',
    unit: 'DMA segments / DMA ranges',
    physr: [COUNTER.physrDmaRanges],
    sg: [COUNTER.sgMappedNents],
    byPath: false,
    kind: 'cost',
  },
  {
    // The CPU-side lists: sg entries (orig_nents) vs physical ranges.
    metric: 'entries, CPU side',
    unit: 'sg entries / physical ranges',
    physr: [COUNTER.physrRanges],
    sg: [COUNTER.sgEntries],
    byPath: false,
    kind: 'cost',
  },
  ...(
    [
      ['PTE writes', 'writes', COUNTER.pteWrites],
      ['table pages', 'pages', COUNTER.tablePagesAllocated],
      ['IOTLB flushes', 'flushes', COUNTER.iotlbFlushes],
      ['IOVA allocations', 'allocations', COUNTER.iovaAllocations],
      ['bounce bytes', 'bytes', COUNTER.bounceBytes],
    ] as const
  ).map(([metric, unit, counter]) => ({
    metric,
    unit,
    physr: [counter],
    sg: [counter],
    byPath: true,
    kind: 'cost' as const,
  })),
  {
    metric: 'faults',
    unit: 'events',
    physr: [COUNTER.iommuFaults],
    sg: [COUNTER.iommuFaults],
    byPath: true,
    kind: 'event',
  },
];

function sumOf(metrics: MetricsSnapshot, names: readonly string[]): number {
  let total = 0;
  for (const name of names) total += metrics[name] ?? 0;
  return total;
}

/** The physr-vs-scatterlist rows for a scenario's steps. */
export function compareSteps(steps: readonly StepReport[]): ComparisonRow[] {
  return COMPARED.map((row) => {
    let physr = 0;
    let sg = 0;
    for (const step of steps) {
      if (row.byPath) {
        if (step.path === 'physr') physr += sumOf(step.metrics, row.physr);
        if (step.path === 'sg') sg += sumOf(step.metrics, row.sg);
      } else {
        physr += sumOf(step.metrics, row.physr);
        sg += sumOf(step.metrics, row.sg);
      }
    }
    return { metric: row.metric, unit: row.unit, physr, sg, kind: row.kind };
  });
}

/**
 * The designs the scenario really ran, physr first: a step counts when it took a design's path and
 * was not refused (a scenario whose every map was refused ran neither, and compares nothing).
 */
export function designsOf(steps: readonly StepReport[]): Design[] {
  const ran = (s: StepReport): boolean =>
    s.refused === undefined && s.error === undefined && s.status !== 'skipped';
  return (['physr', 'sg'] as const).filter((d) => steps.some((s) => s.path === d && ran(s)));
}

/** Row-wise sum of several comparisons (all built by {@link compareSteps}, same row order). */
export function sumComparisons(tables: readonly (readonly ComparisonRow[])[]): ComparisonRow[] {
  return COMPARED.map((row, i) => {
    let physr = 0;
    let sg = 0;
    for (const table of tables) {
      physr += table[i]?.physr ?? 0;
      sg += table[i]?.sg ?? 0;
    }
    return { metric: row.metric, unit: row.unit, physr, sg, kind: row.kind };
  });
}

/**
 * A step's metadata per design: what it keeps for the mapping's lifetime (retained) and the most it
 * held at once (peak: retained plus the scratch it freed before returning). Designs it built none
 * for are left out.
 */
export function stepMetadata(step: StepReport): { design: Design; retained: number; peak: number }[] {
  const out: { design: Design; retained: number; peak: number }[] = [];
  const physr = step.metrics[COUNTER.physrMetadataBytes] ?? 0;
  if (physr > 0) out.push({ design: 'physr', retained: physr, peak: physr });
  const sg = step.metrics[COUNTER.sgMetadataBytes] ?? 0;
  const scratch = step.metrics[COUNTER.sgScratchBytes] ?? 0;
  if (sg + scratch > 0) out.push({ design: 'sg', retained: sg, peak: sg + scratch });
  return out;
}

/** Median and range of timing samples (ms). */
export function designTiming(samples: readonly number[]): DesignTiming {
  const sorted = [...samples].sort((a, b) => a - b);
  const n = sorted.length;
  const median = n === 0 ? 0 : n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
  return { samples, median, min: sorted[0] ?? 0, max: sorted[n - 1] ?? 0 };
}

export function summarizeRun(scenarios: readonly ScenarioReport[]): RunReport {
  let steps = 0;
  let met = 0;
  let failedExpectations = 0;
  for (const scenario of scenarios) {
    steps += scenario.steps.length;
    for (const step of scenario.steps) {
      for (const e of step.expectations) {
        if (e.met) met++;
        else failedExpectations++;
      }
    }
  }
  const compared = scenarios.filter((s) => s.designs.length === 2);
  return {
    scenarios,
    summary: {
      scenarios: scenarios.length,
      passed: scenarios.filter((s) => s.status === 'passed').length,
      failed: scenarios.filter((s) => s.status === 'failed').length,
      errors: scenarios.filter((s) => s.status === 'error').length,
      steps,
      expectationsMet: met,
      expectationsFailed: failedExpectations,
    },
    comparison: sumComparisons(compared.map((s) => s.comparison)),
    comparedScenarios: compared.map((s) => s.name),
    designComparison: designTotals(scenarios),
  };
}

/** True when every scenario passed (the CLI's exit status). */
export function runPassed(report: RunReport): boolean {
  return report.summary.passed === report.summary.scenarios;
}
