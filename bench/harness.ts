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

/** How long warm-up may go on before measuring anyway. */
const WARMUP_MAX_CALLS = 60;
const WARMUP_MAX_SECONDS = 4;
/** Warm-up ends when the last WINDOW values agree within this factor (max/min). */
const SETTLE_WINDOW = 5;
const SETTLE_FACTOR = 1.3;

/**
 * Calls `sample` until its values settle: the first calls run several times slower while the JIT
 * tiers up, so warm-up lasts until the last few values agree within 30% (at least `ctx.warmup`
 * calls, at most 60 calls or 4 s). Returns the calls made.
 */
export async function warmUp(ctx: BenchContext, sample: () => number | Promise<number>): Promise<number> {
  if (ctx.smoke) return 0;
  const recent: number[] = [];
  const start = process.hrtime.bigint();
  let calls = 0;
  while (calls < WARMUP_MAX_CALLS && Number(process.hrtime.bigint() - start) / 1e9 < WARMUP_MAX_SECONDS) {
    recent.push(await sample());
    calls++;
    if (recent.length > SETTLE_WINDOW) recent.shift();
    if (calls >= ctx.warmup && recent.length === SETTLE_WINDOW) {
      const lo = Math.min(...recent);
      const hi = Math.max(...recent);
      if (lo > 0 && hi / lo <= SETTLE_FACTOR) break;
    }
  }
  return calls;
}

/**
 * Runs `sample` after a warm-up that lasts until its values settle (see warmUp), then `runs`
 * times, and makes a figure of the measured values. `sample` returns the value of one run (e.g.
 * ops per second, or bytes per range).
 */
export async function measure(
  ctx: BenchContext,
  name: string,
  unit: string,
  sample: () => number | Promise<number>,
  extra: { target?: Target; note?: string } = {},
): Promise<Figure> {
  await warmUp(ctx, sample);
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

/**
 * CPU seconds (user + system, every thread of the process: GC helpers included) that fn takes. For
 * figures compared across sizes on a shared machine, where wall time mostly measures the neighbours.
 */
export function cpuSeconds(fn: () => void): number {
  const start = process.cpuUsage();
  fn();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

/** Forces a full GC when node runs with --expose-gc (bench/main.ts re-executes itself with it). */
export function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined) {
    gc();
    gc();
  }
}

/** JS heap plus ArrayBuffer bytes in use: what the model's own data structures hold. */
export function heapBytes(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** Two designs timed in one process, interleaved: each one's times and the ratio a/b. */
export interface Comparison {
  readonly a: Figure;
  readonly b: Figure;
  /** Median of the per-round ratios time(a) / time(b), with their min..max as the spread. */
  readonly ratio: Figure;
}

/**
 * Times `a` and `b` alternately in one process (after warming both up together until each
 * settles), so machine noise and JIT state hit both alike, and reports each round's ratio
 * time(a)/time(b): its median against `target`, its min..max as the spread.
 */
export async function compareInterleaved(
  ctx: BenchContext,
  names: { readonly a: string; readonly b: string; readonly ratio: string },
  a: () => void,
  b: () => void,
  target?: Target,
): Promise<Comparison> {
  const pair = (): number => timeSeconds(a) / timeSeconds(b);
  await warmUp(ctx, () => timeSeconds(a) * 1e3);
  await warmUp(ctx, () => timeSeconds(b) * 1e3);
  await warmUp(ctx, pair);
  const ta: number[] = [];
  const tb: number[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < ctx.runs; i++) {
    // Alternate which goes first, so neither always runs on a cache the other warmed.
    collectGarbage();
    const first = i % 2 === 0;
    const x = first ? timeSeconds(a) : 0;
    const y = timeSeconds(b);
    const x2 = first ? x : timeSeconds(a);
    ta.push(x2 * 1e3);
    tb.push(y * 1e3);
    ratios.push(x2 / y);
  }
  const r = summarize(ratios);
  return {
    a: figure(names.a, 'ms', ta),
    b: figure(names.b, 'ms', tb),
    ratio: figure(names.ratio, 'x', ratios, {
      ...(target === undefined ? {} : { target }),
      note: `spread ${r.min.toFixed(2)}..${r.max.toFixed(2)} over ${ratios.length} interleaved rounds`,
    }),
  };
}
