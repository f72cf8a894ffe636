/**
 * The page's entry: reads the JSON embedded in the page (script#physr-data) and builds the sections
 * it has: run summary first (pass/fail line, suite comparison, the model's timing), then each
 * scenario (timeline, comparison, address spaces), the topology, a P2P matrix, a trace.
 */
import type { RunJson, ScenarioJson, ViewDocument } from '../document.ts';
import { comparisonHeading, designComparisonHeading, plural, summaryLine } from '../wording.ts';
import { addressSpaces } from './address.ts';
import { comparisonChart, comparisonTable, traceComparisonTable } from './charts.ts';
import { designChart, designSteps, designTable } from './design-chart.ts';
import { h } from './dom.ts';
import { stepTimeline, traceTimeline } from './timeline.ts';
import { matrixView, topologyView } from './topology.ts';

function timingBlock(run: RunJson): HTMLElement | null {
  const t = run.timing;
  if (t === undefined) return null;
  const row = (name: string, d: { median: number; min: number; max: number }) =>
    h(
      'tr',
      {},
      h('th', { scope: 'row' }, name),
      h('td', { class: 'n' }, d.median.toFixed(2)),
      h('td', { class: 'n' }, d.min.toFixed(2)),
      h('td', { class: 'n' }, d.max.toFixed(2)),
    );
  return h(
    'section',
    { id: 'timing', 'aria-labelledby': 'timing-h' },
    h('h3', { id: 'timing-h' }, 'Map+unmap time of the model'),
    h(
      'p',
      {},
      `The TypeScript model's CPU time (not the kernel's) in the ${t.steps.join(', ')} steps of the compared scenarios, over ${plural(t.repetitions, 'repetition')} in this run.`,
    ),
    h(
      'table',
      {},
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', {}, 'design'),
          h('th', {}, 'median ms'),
          h('th', {}, 'min ms'),
          h('th', {}, 'max ms'),
        ),
      ),
      h('tbody', {}, row('physr', t.physr), row('scatterlist', t.sg)),
    ),
  );
}

/** The headline: sg vs Linux 7.1 vs physr on the same maps over the suite. */
function designsSection(run: RunJson): HTMLElement | null {
  const c = run.designComparison;
  if (c === undefined) return null;
  return h(
    'section',
    { id: 'designs', 'aria-labelledby': 'designs-h' },
    h('h2', { id: 'designs-h' }, designComparisonHeading(c)),
    designChart(c, 'the three designs over the suite'),
    designTable(c),
  );
}

function suiteSection(run: RunJson): HTMLElement {
  const names = run.comparedScenarios;
  const heading =
    names.length === 0
      ? 'No scenario ran both designs: nothing to compare across the suite'
      : `physr vs scatterlist over the ${plural(names.length, 'scenario')} that ran both designs`;
  return h(
    'section',
    { id: 'suite', 'aria-labelledby': 'suite-h' },
    h('h2', { id: 'suite-h' }, heading),
    names.length === 0 ? null : h('p', { class: 'muted' }, names.join(', ')),
    names.length === 0 ? null : comparisonChart(run.comparison, ['physr', 'sg'], 'the suite'),
    names.length === 0 ? null : comparisonTable(run.comparison, ['physr', 'sg']),
    timingBlock(run),
  );
}

function scenarioSection(s: ScenarioJson, open: boolean): HTMLElement {
  const mark = s.status === 'passed' ? '✓' : s.status === 'failed' ? '✗' : '!';
  const spaces = addressSpaces(s.steps);
  return h(
    'details',
    { class: `scenario status-${s.status}`, id: `scenario-${s.name}`, open },
    h(
      'summary',
      {},
      h('span', { class: `mark ${s.status}` }, mark),
      ` ${s.name}`,
      h('span', { class: 'muted' }, ` — ${s.description ?? ''}`),
    ),
    h('p', { class: 'muted' }, `platform ${s.platform} · seed ${s.seed} · IOTLB ${s.iommuMode} · ${s.file}`),
    s.failure === undefined
      ? null
      : h(
          'p',
          { class: 'failed' },
          `Failed at step ${s.failure.step + 1} (${s.failure.op}${s.failure.line === undefined ? '' : `, line ${s.failure.line}`}): ${s.failure.reason}`,
        ),
    h('h3', {}, 'Steps'),
    stepTimeline(s.steps),
    ...(s.designComparison === undefined
      ? []
      : [
          h('h3', {}, designComparisonHeading(s.designComparison)),
          designChart(s.designComparison, s.name),
          designTable(s.designComparison),
          designSteps(s.steps),
        ]),
    h('h3', {}, comparisonHeading(s.designs)),
    comparisonChart(s.comparison, s.designs, s.name),
    comparisonTable(s.comparison, s.designs),
    spaces === null ? null : h('h3', {}, 'Address spaces'),
    spaces,
  );
}

function runSections(run: RunJson): HTMLElement[] {
  const onlyOne = run.scenarios.length === 1;
  const sections = [
    h(
      'p',
      {
        class: `summary ${run.summary.passed === run.summary.scenarios ? 'pass' : 'fail'}`,
        id: 'summary-line',
      },
      summaryLine(run.summary),
    ),
    designsSection(run),
    suiteSection(run),
    h(
      'section',
      { id: 'scenarios', 'aria-labelledby': 'scenarios-h' },
      h('h2', { id: 'scenarios-h' }, 'Scenarios'),
      ...run.scenarios.map((s) => scenarioSection(s, onlyOne || s.status !== 'passed')),
    ),
  ];
  return sections.filter((e): e is HTMLElement => e !== null);
}

export function renderDocument(doc: ViewDocument, into: HTMLElement): void {
  const parts: HTMLElement[] = [h('h1', {}, doc.title ?? 'physr')];
  if (doc.command !== undefined) parts.push(h('p', { class: 'muted' }, h('code', {}, doc.command)));
  if (doc.run !== undefined) parts.push(...runSections(doc.run));
  if (doc.topology !== undefined) {
    parts.push(
      h(
        'section',
        { id: 'topology', 'aria-labelledby': 'topology-h' },
        h('h2', { id: 'topology-h' }, `Topology: ${doc.topology.source}`),
        topologyView(doc.topology),
      ),
    );
  }
  if (doc.p2pMatrix !== undefined) {
    parts.push(
      h(
        'section',
        { id: 'p2p-matrix', 'aria-labelledby': 'matrix-h' },
        h(
          'h2',
          { id: 'matrix-h' },
          `P2P matrix${doc.p2pMatrix.source === undefined ? '' : `: ${doc.p2pMatrix.source}`}`,
        ),
        matrixView(doc.p2pMatrix.decisions),
      ),
    );
  }
  if (doc.trace !== undefined) {
    parts.push(
      h(
        'section',
        { id: 'trace', 'aria-labelledby': 'trace-h' },
        h('h2', { id: 'trace-h' }, `Trace${doc.trace.source === undefined ? '' : `: ${doc.trace.source}`}`),
        ...(doc.trace.comparison === undefined ? [] : [traceComparisonTable(doc.trace.comparison)]),
        traceTimeline(doc.trace.events),
      ),
    );
  }
  into.replaceChildren(...parts);
}

const data = document.getElementById('physr-data');
const root = document.getElementById('physr-root');
if (data !== null && root !== null)
  renderDocument(JSON.parse(data.textContent ?? '{}') as ViewDocument, root);
