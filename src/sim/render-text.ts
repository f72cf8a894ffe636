/** The plain-text report: per scenario what happened, every expectation, the comparison, a summary. */

import {
  comparisonHeading as headingFor,
  metricLabel,
  plural,
  RATIO_HEADING,
  ratioText,
  summaryLine,
} from '../view/wording.ts';
import { designComparisonHeading, designRunLine, renderDesignComparisonText } from './render-designs.ts';
import {
  type ComparisonRow,
  type Design,
  type DesignTiming,
  type RunReport,
  type RunTiming,
  type ScenarioReport,
  type StepReport,
  type StepStatus,
  stepMetadata,
} from './report.ts';

/**
 * Ops that map or pin memory. Each is rerun under the designs, except a map of an earlier pin (the
 * pin step carries the designs' pins) and any step of a scenario without a machine.
 */
const UNCOMPARED_OPS: ReadonlySet<string> = new Set(['map', 'import', 'register-mr', 'pin']);
const NOT_UNDER_DESIGNS =
  'sg, linux-7.1, physr: not run under each design (the three-way runs cover maps of buffers and dma-bufs, pins, MR registrations and dma-buf imports; a map of a pin is counted at its pin)';

const MARK: Record<StepStatus, string> = { ok: '✓', failed: '✗', error: '!', skipped: '-' };

export { metricLabel, RATIO_HEADING, ratioText };

function table(rows: readonly (readonly string[])[], rightAligned: readonly boolean[]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => [...(r[c] ?? '')].length)));
  return rows.map((r) =>
    r
      .map((cell, c) => {
        const pad = ' '.repeat(widths[c]! - [...cell].length);
        return rightAligned[c] ? pad + cell : cell + pad;
      })
      .join('  ')
      .trimEnd(),
  );
}

/**
 * The comparison table, indented by `indent`: physr, scatterlist and the ratio where both designs
 * ran; only the column of the design that ran otherwise (an empty column would read as "free").
 */
export function renderComparisonText(
  rows: readonly ComparisonRow[],
  indent = '  ',
  designs: readonly Design[] = ['physr', 'sg'],
): string {
  const both = designs.length === 2;
  const columns = designs.length === 0 ? (['physr', 'sg'] as const) : designs;
  const header = ['metric', ...columns.map((d) => (d === 'physr' ? 'physr' : 'scatterlist'))];
  const body = table(
    [
      both ? [...header, RATIO_HEADING] : header,
      ...rows.map((r) => {
        const cells = [metricLabel(r), ...columns.map((d) => String(d === 'physr' ? r.physr : r.sg))];
        return both ? [...cells, ratioText(r)] : cells;
      }),
    ],
    [false, true, true, true],
  );
  return body.map((line) => indent + line).join('\n');
}

/** The suite's timing line(s): median and range per design, labelled as the model's CPU time. */
export function renderTimingText(timing: RunTiming | undefined): string[] {
  if (timing === undefined) return [];
  const one = (t: DesignTiming): string =>
    `median ${t.median.toFixed(2)} ms (min ${t.min.toFixed(2)}, max ${t.max.toFixed(2)})`;
  return [
    `map+unmap time of the model (its CPU time, not the kernel's), over ${plural(timing.repetitions, 'repetition')} of the compared scenarios (steps: ${timing.steps.join(', ')}):`,
    `  physr        ${one(timing.physr)}`,
    `  scatterlist  ${one(timing.sg)}`,
  ];
}

function stepLines(step: StepReport): string[] {
  const where = step.line === undefined ? '' : `line ${step.line}`;
  const head =
    `  ${MARK[step.status]} ${String(step.index + 1).padStart(2)}  ${step.op.padEnd(16)} ${where.padEnd(9)} ${
      step.path ?? ''
    }`.trimEnd();
  const lines = [head];
  for (const note of step.notes) lines.push(`        ${note}`);
  for (const m of stepMetadata(step)) {
    const name = m.design === 'sg' ? 'scatterlist' : 'physr';
    lines.push(
      m.peak === m.retained
        ? `        ${name} metadata: ${m.retained} B retained (= peak)`
        : `        ${name} metadata: ${m.retained} B retained, ${m.peak} B at peak (scratch freed before the step ends)`,
    );
  }
  for (const run of step.designRuns ?? []) lines.push(`        ${designRunLine(run)}`);
  if (step.designRuns === undefined && UNCOMPARED_OPS.has(step.op) && step.status === 'ok')
    lines.push(`        ${NOT_UNDER_DESIGNS}`);
  for (const e of step.expectations) {
    lines.push(e.met ? `        ✓ ${e.what}` : `        ✗ expected ${e.what}: ${e.detail}`);
  }
  if (step.error !== undefined) lines.push(`        ! ${step.error.errno}: ${step.error.reason}`);
  return lines;
}

export function renderScenarioText(scenario: ScenarioReport): string {
  const status =
    scenario.status === 'passed' ? '✓ passed' : scenario.status === 'failed' ? '✗ FAILED' : '! ERROR';
  const lines = [
    `${scenario.name}  ${status}`,
    ...(scenario.description === undefined ? [] : [`  ${scenario.description}`]),
    `  platform ${scenario.platform}, seed ${scenario.seed}, IOTLB ${scenario.iommuMode}, ${scenario.file}`,
    ...scenario.steps.flatMap(stepLines),
  ];
  if (scenario.failure !== undefined) {
    const f = scenario.failure;
    lines.push(
      `  failed at step ${f.step + 1} (${f.op}${f.line === undefined ? '' : `, line ${f.line}`}): ${f.reason}`,
    );
  }
  lines.push(...scenarioDesignsText(scenario, '  '));
  lines.push(
    `  ${comparisonHeading(scenario)}:`,
    renderComparisonText(scenario.comparison, '    ', scenario.designs),
  );
  return lines.join('\n');
}

/** A scenario's three-way table under its heading (nothing when no step ran under the designs). */
function scenarioDesignsText(scenario: ScenarioReport, indent: string): string[] {
  const c = scenario.designComparison;
  if (c === undefined) return [];
  const body = renderDesignComparisonText(c, `${indent}  `);
  return [`${indent}${designComparisonHeading(c)}${body === '' ? '' : ':'}`, ...(body === '' ? [] : [body])];
}

/** The suite's three-way comparison: the headline. */
function suiteDesignsText(report: RunReport): string {
  const c = report.designComparison;
  const body = renderDesignComparisonText(c);
  return body === '' ? designComparisonHeading(c) : `${designComparisonHeading(c)}:\n${body}`;
}

/** What a scenario's table compares: both designs, or the one it ran. */
export function comparisonHeading(scenario: ScenarioReport): string {
  return headingFor(scenario.designs);
}

/** The suite's comparison with its heading (just the heading when no scenario ran both designs). */
function suiteComparisonText(report: RunReport): string {
  const heading = suiteComparisonHeading(report);
  return report.comparedScenarios.length === 0
    ? heading
    : `${heading}:\n${renderComparisonText(report.comparison)}`;
}

/** The heading of the suite's comparison: which scenarios it sums. */
export function suiteComparisonHeading(report: RunReport): string {
  const names = report.comparedScenarios;
  return names.length === 0
    ? 'no scenario ran both designs: nothing to compare across the suite'
    : `physr vs scatterlist over the ${names.length} scenario${names.length === 1 ? '' : 's'} that ran both designs (${names.join(', ')})`;
}

export function renderSummaryLine(report: RunReport): string {
  return summaryLine(report.summary);
}

/**
 * The whole report, summary first: the pass/fail line, the suite's comparison and timing, then each
 * scenario; the pass/fail line again at the end, where a terminal leaves the eye.
 */
export function renderRunText(report: RunReport): string {
  const head = [renderSummaryLine(report)];
  if (report.scenarios.length > 1) head.push(suiteDesignsText(report), suiteComparisonText(report));
  const timing = renderTimingText(report.timing);
  if (timing.length > 0) head.push(timing.join('\n'));
  const parts = [...head, ...report.scenarios.map(renderScenarioText)];
  if (report.scenarios.length > 1) parts.push(renderSummaryLine(report));
  return `${parts.join('\n\n')}\n`;
}

/** Only the comparisons (`physr compare`). */
export function renderComparisonOnly(report: RunReport): string {
  const parts = report.scenarios.map((s) =>
    [
      `${s.name} (${s.platform}), ${comparisonHeading(s)}:\n${renderComparisonText(s.comparison, '  ', s.designs)}`,
      ...scenarioDesignsText(s, ''),
    ].join('\n'),
  );
  if (report.scenarios.length > 1) parts.push(suiteDesignsText(report), suiteComparisonText(report));
  return `${parts.join('\n\n')}\n`;
}
