/**
 * The plain data model of a run: scenarios → steps → outcome, expectations and metrics, plus the
 * physr-vs-scatterlist comparison. Renderers (text, JSON, HTML) only read this; nothing here is
 * time-dependent, so a seeded run gives the same report byte for byte.
 */
import { COUNTER, type Errno, type MetricsSnapshot } from '../core/index.ts';
import type { DesignOutcome } from './designs.ts';
import type { StepKind } from './scenario-schema.ts';

export type { DesignOutcome };

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
  readonly notes: readonly string[];
  /** Counters this step moved. */
  readonly metrics: MetricsSnapshot;
  /** What each compared design did for this step, each on its own copy of the machine (designs.ts). */
  readonly designRuns?: readonly DesignOutcome[];
}

export interface ComparisonRow {
  readonly metric: string;
  readonly unit: string;
  readonly physr: number;
  readonly sg: number;
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
}

export type Design = 'physr' | 'sg';

export interface RunSummary {
  readonly scenarios: number;
  readonly passed: number;
  readonly failed: number;
  readonly errors: number;
  readonly steps: number;
  readonly expectationsMet: number;
  readonly expectationsFailed: number;
}

export interface RunReport {
  readonly scenarios: readonly ScenarioReport[];
  readonly summary: RunSummary;
  /**
   * The comparison summed over the scenarios that ran both designs (`comparedScenarios`): a scenario
   * that runs only one design has nothing to compare it with, and would tilt the sum.
   */
  readonly comparison: readonly ComparisonRow[];
  readonly comparedScenarios: readonly string[];
}

/**
 * The comparison's rows. Metadata and entry counts have separate counters per design; the other
 * counters are shared by both paths, so they are split by the path of the step that moved them.
 */
const COMPARED: readonly {
  metric: string;
  unit: string;
  physr: string;
  sg: string;
  byPath: boolean;
}[] = [
  {
    metric: 'metadata',
    unit: 'bytes',
    physr: COUNTER.physrMetadataBytes,
    sg: COUNTER.sgMetadataBytes,
    byPath: false,
  },
  { metric: 'entries', unit: 'entries', physr: COUNTER.physrRanges, sg: COUNTER.sgEntries, byPath: false },
  { metric: 'PTE writes', unit: 'writes', physr: COUNTER.pteWrites, sg: COUNTER.pteWrites, byPath: true },
  {
    metric: 'table pages',
    unit: 'pages',
    physr: COUNTER.tablePagesAllocated,
    sg: COUNTER.tablePagesAllocated,
    byPath: true,
  },
  {
    metric: 'IOTLB flushes',
    unit: 'flushes',
    physr: COUNTER.iotlbFlushes,
    sg: COUNTER.iotlbFlushes,
    byPath: true,
  },
  {
    metric: 'IOVA allocations',
    unit: 'allocations',
    physr: COUNTER.iovaAllocations,
    sg: COUNTER.iovaAllocations,
    byPath: true,
  },
  {
    metric: 'bounce bytes',
    unit: 'bytes',
    physr: COUNTER.bounceBytes,
    sg: COUNTER.bounceBytes,
    byPath: true,
  },
  { metric: 'faults', unit: 'faults', physr: COUNTER.iommuFaults, sg: COUNTER.iommuFaults, byPath: true },
];

/** The physr-vs-scatterlist rows for a scenario's steps. */
export function compareSteps(steps: readonly StepReport[]): ComparisonRow[] {
  return COMPARED.map((row) => {
    let physr = 0;
    let sg = 0;
    for (const step of steps) {
      if (row.byPath) {
        if (step.path === 'physr') physr += step.metrics[row.physr] ?? 0;
        if (step.path === 'sg') sg += step.metrics[row.sg] ?? 0;
      } else {
        physr += step.metrics[row.physr] ?? 0;
        sg += step.metrics[row.sg] ?? 0;
      }
    }
    return { metric: row.metric, unit: row.unit, physr, sg };
  });
}

/** The designs some step ran, physr first. */
export function designsOf(steps: readonly StepReport[]): Design[] {
  return (['physr', 'sg'] as const).filter((d) => steps.some((s) => s.path === d));
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
    return { metric: row.metric, unit: row.unit, physr, sg };
  });
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
  };
}

/** True when every scenario passed (the CLI's exit status). */
export function runPassed(report: RunReport): boolean {
  return report.summary.passed === report.summary.scenarios;
}
