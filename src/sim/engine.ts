/**
 * The scenario engine: resolves the platform, runs the steps in order through their registered
 * executors, checks each step's expectations, and records per-step and per-scenario metrics.
 *
 * Outcomes: a step is `ok`, `failed` (an expectation not met: the scenario fails but later steps
 * still run, so one run shows every broken expectation), `error` (refused without `expect: { error }`,
 * or no executor: later steps are `skipped`, since they depend on what it should have made).
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import {
  type DmaTraceSink,
  formatHex,
  isPhysrError,
  Metrics,
  type MetricsSnapshot,
  metricsDelta,
  PhysrError,
  SeededRandom,
} from '../core/index.ts';
import { designTotals } from './designs.ts';
import { firstMismatch, formatPattern } from './pattern.ts';
import {
  type PlatformInstance,
  platformFactory,
  platformLoader,
  type StepResult,
  stepExecutor,
} from './registry.ts';
import {
  compareSteps,
  type DesignPath,
  designsOf,
  designTiming,
  type ExpectationReport,
  type RunReport,
  type ScenarioFailure,
  type ScenarioReport,
  type StepReport,
  summarizeRun,
} from './report.ts';
import { type Scenario, scenarioError } from './scenario-loader.ts';
import type { CounterExpectation, Expectation, Step, StepKind } from './scenario-schema.ts';
import { createContext } from './sim-context.ts';

export interface RunOptions {
  /** Overrides every scenario's seed (`physr run --seed`). */
  readonly seed?: bigint;
  /**
   * Times each design's map+unmap steps over this many runs of the scenarios that ran both designs
   * (the report's run is the first; the others rerun them for timing only). Absent: no timing, and
   * the report is the same byte for byte for the same seed.
   */
  readonly timingRepetitions?: number;
  /** Called before each step (and once more at the end of each scenario with `index === total`). */
  readonly onStep?: (scenario: Scenario, index: number, total: number) => void | Promise<void>;
  /** Receives the model's DMA activity as trace records (`physr run --trace-out`). */
  readonly traceSink?: DmaTraceSink;
}

/**
 * The scenario's platform: a built-in by name, or a file / sysfs capture through a registered
 * loader (paths relative to the scenario file). An unknown name is a located ENOENT.
 */
export function resolvePlatform(
  scenario: Scenario,
  options: { seed: bigint; metrics: Metrics },
): PlatformInstance {
  const spec = scenario.platform;
  if (typeof spec === 'string' || 'builtin' in spec) {
    const name = typeof spec === 'string' ? spec : spec.builtin;
    const factory = platformFactory(name);
    if (factory === undefined) {
      throw scenarioError(
        scenario.source,
        typeof spec === 'string' ? ['platform'] : ['platform', 'builtin'],
        'ENOENT',
        `unknown platform "${name}" (physr list shows them)`,
      );
    }
    if (typeof spec === 'string' || spec.cmdline === undefined) return factory.create(options);
    try {
      return factory.create({ ...options, cmdline: spec.cmdline });
    } catch (error) {
      if (!isPhysrError(error)) throw error;
      throw scenarioError(scenario.source, ['platform', 'cmdline'], error.errno, error.reason);
    }
  }
  const kind = 'file' in spec ? 'file' : 'sysfs';
  const given = 'file' in spec ? spec.file : spec.sysfs;
  const loader = platformLoader(kind);
  if (loader === undefined) {
    throw scenarioError(
      scenario.source,
      ['platform', kind],
      'EOPNOTSUPP',
      `platforms from a ${kind} are not supported yet`,
    );
  }
  const path = isAbsolute(given) ? given : resolve(dirname(scenario.source.file), given);
  try {
    return loader(path, options);
  } catch (error) {
    if (!isPhysrError(error) || error.location !== undefined) throw error;
    throw scenarioError(scenario.source, ['platform', kind], error.errno, error.reason);
  }
}

/** Checks that every scenario's platform resolves, before anything runs (a located error if not). */
export function checkPlatforms(scenarios: readonly Scenario[]): void {
  for (const scenario of scenarios)
    resolvePlatform(scenario, { seed: scenario.seed, metrics: new Metrics() });
}

function counterText(expected: CounterExpectation): string {
  if (expected.min !== undefined && expected.min === expected.max) return `= ${expected.min}`;
  const parts: string[] = [];
  if (expected.min !== undefined) parts.push(`>= ${expected.min}`);
  if (expected.max !== undefined) parts.push(`<= ${expected.max}`);
  return parts.join(' and ') || 'any';
}

/** Checks counter expectations against a metrics delta (counters absent from it are 0). */
export function checkCounters(
  expected: Readonly<Record<string, CounterExpectation>>,
  moved: MetricsSnapshot,
): ExpectationReport[] {
  return Object.entries(expected).map(([name, want]) => {
    const value = moved[name] ?? 0;
    const met =
      (want.min === undefined || value >= want.min) && (want.max === undefined || value <= want.max);
    return { what: `${name} ${counterText(want)}`, met, detail: `${name} = ${value}` };
  });
}

function checkStep(
  expect: Expectation | undefined,
  result: StepResult | undefined,
  refusal: PhysrError | undefined,
  moved: MetricsSnapshot,
): ExpectationReport[] {
  const out: ExpectationReport[] = [...(result?.expectations ?? [])];
  if (expect?.error !== undefined) {
    out.push({
      what: `refused with ${expect.error}`,
      met: refusal?.errno === expect.error,
      detail: refusal === undefined ? 'the step succeeded' : `${refusal.errno}: ${refusal.reason}`,
    });
  }
  const observed = result?.observed;
  if (expect?.bytes !== undefined) {
    const what = `bytes = ${formatPattern(expect.bytes)}`;
    if (observed?.bytes === undefined) {
      out.push({ what, met: false, detail: 'the step read no bytes' });
    } else {
      const offset = observed.offset ?? 0n;
      const at = firstMismatch(expect.bytes, offset, observed.bytes);
      out.push(
        at < 0
          ? { what, met: true, detail: `${observed.bytes.length} bytes match` }
          : {
              what,
              met: false,
              detail: `byte at offset ${formatHex(offset + BigInt(at))} is 0x${observed.bytes[at]!.toString(16).padStart(2, '0')}`,
            },
      );
    }
  }
  const fault = observed?.fault;
  if (expect?.fault !== undefined) {
    out.push({
      what: expect.fault ? 'faults' : 'no fault',
      met: (fault !== undefined) === expect.fault,
      detail: fault ?? 'no fault',
    });
  } else if (fault !== undefined) {
    out.push({ what: 'no fault', met: false, detail: `unexpected fault: ${fault}` });
  }
  if (expect?.counters !== undefined) out.push(...checkCounters(expect.counters, moved));
  return out;
}

function stepExpect(step: Step): Expectation | undefined {
  return 'expect' in step.body ? step.body.expect : undefined;
}

function stepVia(step: Step): DesignPath | undefined {
  return 'via' in step.body ? step.body.via : undefined;
}

/** The steps whose CPU time is the "map+unmap" time of a design (pinning and the lazy flush included). */
export const TIMED_STEPS: readonly StepKind[] = ['pin', 'map', 'register-mr', 'unmap', 'flush'];

/** Runs one scenario to a report. Platform problems are thrown (located); step problems are reported. */
export async function runScenario(scenario: Scenario, options: RunOptions = {}): Promise<ScenarioReport> {
  return (await runScenarioTimed(scenario, options)).report;
}

/** runScenario, plus the process CPU time (ms) each design's TIMED_STEPS took. */
async function runScenarioTimed(
  scenario: Scenario,
  options: RunOptions,
): Promise<{ report: ScenarioReport; time: Record<DesignPath, number> }> {
  const time: Record<DesignPath, number> = { physr: 0, sg: 0 };
  const seed = options.seed ?? scenario.seed;
  const metrics = new Metrics();
  metrics.traceSink = options.traceSink;
  const platform = resolvePlatform(scenario, { seed, metrics });
  const iommuMode = scenario.iommu.mode ?? platform.defaultIommuMode ?? 'strict';
  const context = createContext({
    scenario,
    platform,
    metrics,
    random: new SeededRandom(seed),
    seed,
    iommuMode,
  });
  const steps: StepReport[] = [];
  let failure: ScenarioFailure | undefined;
  let stopped = false;
  for (const step of scenario.steps) {
    await options.onStep?.(scenario, step.index, scenario.steps.length);
    const base = {
      index: step.index,
      op: step.kind,
      ...(step.line === undefined ? {} : { line: step.line }),
    };
    if (stopped) {
      steps.push({ ...base, status: 'skipped', expectations: [], notes: [], metrics: {} });
      continue;
    }
    const before = metrics.snapshot();
    const setupBefore = context.setupMetrics.snapshot();
    const expect = stepExpect(step);
    let result: StepResult | undefined;
    let refusal: PhysrError | undefined;
    const started = process.cpuUsage();
    try {
      const executor = stepExecutor(step.kind);
      if (executor === undefined)
        throw new PhysrError('ENOTSUPP', `no executor is registered for step "${step.kind}"`);
      result = (await executor(step.body, context, step)) ?? undefined;
    } catch (error) {
      if (!isPhysrError(error)) throw error;
      refusal = error;
    }
    const spent = process.cpuUsage(started);
    const elapsed = (spent.user + spent.system) / 1000;
    const moved = withoutSetup(
      metricsDelta(before, metrics.snapshot()),
      metricsDelta(setupBefore, context.setupMetrics.snapshot()),
    );
    const path = result?.path ?? stepVia(step);
    const pathField = path === undefined ? {} : { path };
    if (path !== undefined && TIMED_STEPS.includes(step.kind)) time[path] += elapsed;
    const notes = result?.notes ?? [];
    if (refusal !== undefined && expect?.error === undefined) {
      steps.push({
        ...base,
        ...pathField,
        status: 'error',
        expectations: [],
        error: { errno: refusal.errno, reason: refusal.reason },
        notes,
        metrics: moved,
      });
      failure ??= toFailure(step, `${refusal.errno}: ${refusal.reason}`);
      stopped = true;
      continue;
    }
    const expectations = checkStep(expect, result, refusal, moved);
    const broken = expectations.find((e) => !e.met);
    if (broken !== undefined) {
      failure ??= toFailure(step, `expected ${broken.what}: ${broken.detail}`);
    }
    steps.push({
      ...base,
      ...pathField,
      status: broken === undefined ? 'ok' : 'failed',
      ...(refusal === undefined ? {} : { refused: { errno: refusal.errno, reason: refusal.reason } }),
      expectations,
      notes,
      metrics: moved,
      ...(result?.layout === undefined ? {} : { layout: result.layout }),
      ...(result?.designRuns === undefined ? {} : { designRuns: result.designRuns }),
    });
  }
  await options.onStep?.(scenario, scenario.steps.length, scenario.steps.length);
  const status = steps.some((s) => s.status === 'error')
    ? 'error'
    : steps.some((s) => s.status === 'failed')
      ? 'failed'
      : 'passed';
  const report: ScenarioReport = {
    name: scenario.name,
    ...(scenario.description === undefined ? {} : { description: scenario.description }),
    file: scenario.source.file,
    platform: platform.name,
    seed,
    iommuMode,
    status,
    ...(failure === undefined ? {} : { failure }),
    steps,
    metrics: context.scenarioMetrics(),
    designs: designsOf(steps),
    comparison: compareSteps(steps),
    ...(steps.some((s) => s.designRuns !== undefined)
      ? { designComparison: designTotals([{ name: scenario.name, steps }], scenario.designs) }
      : {}),
  };
  return { report, time };
}

/** A step's counters less what device probing moved during it (see SimContext.setupMetrics). */
function withoutSetup(moved: MetricsSnapshot, setup: MetricsSnapshot): MetricsSnapshot {
  const out: Record<string, number> = {};
  for (const [name, value] of Object.entries(moved)) {
    const left = value - (setup[name] ?? 0);
    if (left !== 0) out[name] = left;
  }
  return out;
}

function toFailure(step: Step, reason: string): ScenarioFailure {
  return { step: step.index, op: step.kind, ...(step.line === undefined ? {} : { line: step.line }), reason };
}

/**
 * Runs scenarios in order and summarizes them; with `timingRepetitions`, also times each design's
 * map+unmap steps over the scenarios that ran both (rerunning those, without progress callbacks).
 */
export async function runSuite(scenarios: readonly Scenario[], options: RunOptions = {}): Promise<RunReport> {
  const reports: ScenarioReport[] = [];
  const first: Record<DesignPath, number> = { physr: 0, sg: 0 };
  const compared: Scenario[] = [];
  for (const scenario of scenarios) {
    const { report, time } = await runScenarioTimed(scenario, options);
    reports.push(report);
    if (report.designs.length === 2) {
      compared.push(scenario);
      first.physr += time.physr;
      first.sg += time.sg;
    }
  }
  const summary = summarizeRun(reports);
  const repetitions = options.timingRepetitions;
  if (repetitions === undefined || repetitions < 1 || compared.length === 0) return summary;
  const samples: Record<DesignPath, number[]> = { physr: [first.physr], sg: [first.sg] };
  const quiet: RunOptions = options.seed === undefined ? {} : { seed: options.seed };
  for (let rep = 1; rep < repetitions; rep++) {
    const total: Record<DesignPath, number> = { physr: 0, sg: 0 };
    for (const scenario of compared) {
      const { time } = await runScenarioTimed(scenario, quiet);
      total.physr += time.physr;
      total.sg += time.sg;
    }
    samples.physr.push(total.physr);
    samples.sg.push(total.sg);
  }
  return {
    ...summary,
    timing: {
      repetitions,
      steps: TIMED_STEPS,
      physr: designTiming(samples.physr),
      sg: designTiming(samples.sg),
    },
  };
}
