/**
 * The report's words, shared by the text report (src/sim) and the page (src/view/app) so both say
 * the same thing: a row's label, its ratio with the direction that is better, the pass/fail line.
 * Plain functions over JSON-shaped rows: no DOM, no model code.
 */

/** A comparison row as both the report model and its JSON have it. */
export interface RowWords {
  readonly metric: string;
  readonly unit: string;
  readonly physr: number;
  readonly sg: number;
  readonly kind: 'cost' | 'event';
}

/** The ratio column's heading: which way is better. */
export const RATIO_HEADING = 'sg/physr (above 1: physr cheaper)';

/** "1 range", "2 ranges". */
export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}

/** A row's name with its unit, unless the unit only repeats it; events say they are no cost. */
export function metricLabel(row: RowWords): string {
  if (row.kind === 'event') return `${row.metric} (events, not a cost)`;
  return row.unit === row.metric ? row.metric : `${row.metric} (${row.unit})`;
}

/** `sg / physr` as a factor; `—` for events and 0/0, `∞` when only physr is 0. */
export function ratioText(row: RowWords): string {
  if (row.kind === 'event') return '—';
  if (row.physr === 0) return row.sg === 0 ? '—' : '∞';
  return `${(row.sg / row.physr).toFixed(2)}x`;
}

export interface SummaryWords {
  readonly scenarios: number;
  readonly passed: number;
  readonly failed: number;
  readonly errors: number;
  readonly steps: number;
  readonly expectationsMet: number;
  readonly expectationsFailed: number;
}

/** The pass/fail line that opens every report. */
export function summaryLine(s: SummaryWords): string {
  return (
    `${s.passed === s.scenarios ? '✓' : '✗'} ${plural(s.scenarios, 'scenario')}: ${s.passed} passed, ${s.failed} failed, ` +
    `${plural(s.errors, 'error')}; ${plural(s.steps, 'step')}; ` +
    `${s.expectationsMet} expectations met, ${s.expectationsFailed} failed`
  );
}

/** What a scenario's comparison covers, from the designs it ran. */
export function comparisonHeading(designs: readonly string[]): string {
  if (designs.length === 2) return 'physr vs scatterlist';
  if (designs.length === 0) return 'costs (no step ran either design to completion)';
  return `costs (only the ${designs[0] === 'physr' ? 'physr' : 'scatterlist'} design runs here)`;
}

/** The three designs, in report order: today's scatterlist, Linux 7.1, the proposal. */
export const DESIGN_ORDER = ['sg', 'linux-7.1', 'physr'] as const;

/** The two steps the three-way comparison measures: what upstream gained, what the rest would add. */
export const DESIGN_RATIO_PAIRS = [
  ['sg', 'linux-7.1'],
  ['linux-7.1', 'physr'],
] as const;

/** A design ratio's column heading with its direction: "sg/linux-7.1 (above 1: linux-7.1 costs less)". */
export function designRatioHeading(from: string, to: string): string {
  return `${from}/${to} (above 1: ${to} costs less)`;
}

/** The totals a three-way comparison lists, in order, with their labels. */
export const DESIGN_METRICS = [
  ['peakMetadataBytes', 'metadata at peak (bytes)'],
  ['metadataBytes', 'metadata retained (bytes)'],
  ['entries', 'entries handed to the device'],
  ['iovaAllocations', 'IOVA allocations'],
  ['leafPteWrites', 'PTE writes (leaf entries)'],
  ['iotlbFlushes', 'IOTLB flushes'],
  ['bounceBytes', 'bounce bytes'],
] as const;

export type DesignMetric = (typeof DESIGN_METRICS)[number][0];

/** `a / b` as a factor; `—` for 0/0, `∞` when only b is 0. */
export function designRatioText(a: number, b: number): string {
  if (b === 0) return a === 0 ? '—' : '∞';
  return `${(a / b).toFixed(2)}x`;
}

/** What a design did for a step, as the report's JSON has it (DesignOutcome in src/sim/designs.ts). */
export interface DesignRunWords {
  readonly design: string;
  /** False when the design has no path for the step, or refused it (then `reason` says why). */
  readonly ran: boolean;
  /** The kernel interface the design used. */
  readonly api: string;
  /** How it mapped: iova, per-segment, bus-address, sg... */
  readonly path?: string;
  /** Bytes retained while the mapping lives; the most held at once (retained plus scratch). */
  readonly metadataBytes?: number;
  readonly peakMetadataBytes?: number;
  /** DMA ranges handed to the device. */
  readonly entries?: number;
  readonly iovaAllocations?: number;
  readonly leafPteWrites?: number;
  readonly iotlbFlushes?: number;
  readonly bounceBytes?: number;
  readonly errno?: string;
  readonly reason?: string;
  readonly note: string;
}

/** One design's line for a step: what it called, how it mapped, what it cost; or why it did not. */
export function designRunLine(run: DesignRunWords): string {
  const name = run.design.padEnd(9);
  if (!run.ran) {
    const what = run.errno === undefined ? `no path (${run.api})` : `refused ${run.errno}`;
    return `${name} ${what}: ${run.reason ?? run.note}`;
  }
  const retained = run.metadataBytes ?? 0;
  const peak = run.peakMetadataBytes ?? retained;
  const numbers = [
    peak === retained ? `${retained} B metadata` : `${retained} B metadata retained, ${peak} B at peak`,
    ...(run.path === undefined
      ? [plural(run.entries ?? 0, 'entry', 'entries')]
      : [
          `${plural(run.entries ?? 0, 'entry', 'entries')} to the device`,
          plural(run.iovaAllocations ?? 0, 'IOVA'),
          plural(run.leafPteWrites ?? 0, 'PTE write'),
          plural(run.iotlbFlushes ?? 0, 'IOTLB flush', 'IOTLB flushes'),
          `${run.bounceBytes ?? 0} bounce B`,
        ]),
  ];
  // "mixed" and "per-range" are the model's bookkeeping, not words a reader can use: the note says
  // how the ranges got there ("via host bridge", "via swiotlb").
  const how =
    run.path === undefined || run.path === 'mixed' || run.path === 'per-range'
      ? run.api
      : `${run.api}, ${run.path}`;
  return `${name} ${how}: ${numbers.join(', ')} — ${run.note}`;
}

/** The heading of a design comparison: which designs, over how many steps of which scenarios. */
export function designComparisonHeading(c: {
  readonly designs: readonly string[];
  readonly steps: number;
  readonly scenarios: readonly string[];
}): string {
  const names = c.designs.join(' vs ');
  if (c.steps === 0) return `${names}: no step ran every one of them, nothing to compare`;
  const where =
    c.scenarios.length > 1 ? ` of ${plural(c.scenarios.length, 'scenario')} (${c.scenarios.join(', ')})` : '';
  return `${names} on the same maps, over the ${plural(c.steps, 'step')}${where} every one of them ran`;
}

/** A step left out of the design totals, and why. */
export function designLeftOutLine(l: {
  readonly scenario: string;
  readonly step: number;
  readonly op: string;
  readonly design: string;
  readonly why: string;
}): string {
  return `left out: ${l.scenario ? `${l.scenario} ` : ''}step ${l.step} (${l.op}), ${l.design}: ${l.why}`;
}

/** A step counted once in the design totals: it repeats an earlier step's work under every design. */
export function designRepeatLine(r: {
  readonly scenario: string;
  readonly step: number;
  readonly op: string;
  readonly of: number;
}): string {
  return `counted once: ${r.scenario ? `${r.scenario} ` : ''}step ${r.step} (${r.op}) repeats step ${r.of} under every design (the same work, the same numbers)`;
}
