/**
 * The benchmark harness. A benchmark is a named function that returns figures; each figure is the
 * median of several measured runs after a warm-up, with min and max to show the machine's noise.
 * Targets the project holds itself to are reported next to the figure, met or not.
 */

export interface Target {
  /** `>=` for throughput-like figures, `<=` for cost-like ones. */
  readonly op: '>=' | '<=';
  readonly value: number;
  readonly label: string;
}

export interface Figure {
  readonly name: string;
  readonly unit: string;
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly runs: number;
  readonly target?: Target;
  readonly met?: boolean;
  /** Free-form detail shown in the table (e.g. "vs sg 3.2x"). */
  readonly note?: string;
}

export interface BenchContext {
  /** Measured runs per figure (after `warmup` unmeasured ones). */
  readonly runs: number;
  readonly warmup: number;
  /** Smoke mode (the test suite): one tiny iteration, sizes scaled down, figures not meaningful. */
  readonly smoke: boolean;
  /** Scale a problem size down in smoke mode. */
  size(full: number, smoke: number): number;
}

export interface Benchmark {
  readonly name: string;
  readonly description: string;
  run(ctx: BenchContext): Promise<Figure[]> | Figure[];
}

export function createContext(options: { smoke: boolean; runs?: number; warmup?: number }): BenchContext {
  const smoke = options.smoke;
  return {
    smoke,
    runs: smoke ? 1 : (options.runs ?? 7),
    warmup: smoke ? 0 : (options.warmup ?? 1),
    size: (full, small) => (smoke ? small : full),
  };
}

/** Median/min/max of a list of samples. */
export function summarize(samples: readonly number[]): { median: number; min: number; max: number } {
  if (samples.length === 0) throw new Error('no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]! };
}

/**
 * Runs `sample` warmup+runs times and makes a figure of the measured values. `sample` returns the
 * value of one run (e.g. ops per second, or bytes per range).
 */
export async function measure(
  ctx: BenchContext,
  name: string,
  unit: string,
  sample: () => number | Promise<number>,
  extra: { target?: Target; note?: string } = {},
): Promise<Figure> {
  for (let i = 0; i < ctx.warmup; i++) await sample();
  const samples: number[] = [];
  for (let i = 0; i < ctx.runs; i++) samples.push(await sample());
  return figure(name, unit, samples, extra);
}

/** A figure from samples already taken. */
export function figure(
  name: string,
  unit: string,
  samples: readonly number[],
  extra: { target?: Target; note?: string } = {},
): Figure {
  const stats = summarize(samples);
  const met = extra.target === undefined ? undefined : meets(stats.median, extra.target);
  return { name, unit, ...stats, runs: samples.length, ...extra, ...(met === undefined ? {} : { met }) };
}

export function meets(value: number, target: Target): boolean {
  return target.op === '>=' ? value >= target.value : value <= target.value;
}

/** Seconds taken by `fn`, from the monotonic clock. */
export function timeSeconds(fn: () => void): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** Forces a full GC when node runs with --expose-gc (bench/main.ts re-executes itself with it). */
export function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined) {
    gc();
    gc();
  }
}
