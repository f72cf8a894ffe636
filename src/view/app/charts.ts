/**
 * The physr-vs-scatterlist chart: one row per cost that moved, two bars (physr, scatterlist), each
 * row on its own scale (bytes and counts share no axis): a log scale where the two values differ by
 * a factor of 100 or more, linear from zero otherwise. Events (faults) are not bars: the timeline
 * shows them. Drawn only where both designs ran; the table beside it is the text alternative.
 */
import { scaleLinear, scaleLog } from 'd3-scale';
import type { RowJson, TraceComparisonJson } from '../document.ts';
import { metricLabel, RATIO_HEADING, ratioText } from '../wording.ts';
import { h, num, s } from './dom.ts';

export const PHYSR_COLOUR = '#2f6fdb';
export const SG_COLOUR = '#c2571a';

/** Rows that get bars: costs where something moved. */
export function chartedRows(rows: readonly RowJson[]): RowJson[] {
  return rows.filter((r) => r.kind === 'cost' && (r.physr > 0 || r.sg > 0));
}

/** Whether a row is drawn on a log scale: every value positive and the largest 100x the smallest or more. */
function logScaleFor(values: readonly number[]): boolean {
  const lo = Math.min(...values);
  return lo > 0 && Math.max(...values) / lo >= 100;
}

const LABEL = 330;
/** Every comparison chart's width (px). */
const WIDTH = 800;
const BAR = 13;
const ROW = 2 * BAR + 16;

/** An empty chart of `height` pixels, labelled by its `<title>` (the chart's text for screen readers). */
export function chartSvg(cls: string, height: number, title: string): SVGElement {
  const id = `chart-${Math.random().toString(36).slice(2, 9)}`;
  const svg = s('svg', {
    class: cls,
    role: 'img',
    'aria-labelledby': id,
    width: WIDTH,
    height,
    viewBox: `0 0 ${WIDTH} ${height}`,
  });
  svg.append(s('title', { id }, title));
  return svg;
}

/** One bar of a chart row. */
export interface ChartBar {
  readonly design: string;
  readonly value: number;
  readonly colour: string;
  /** The bar's tooltip. */
  readonly title: string;
}

/**
 * Draws rows of bars into `svg`, one row a metric, each on its own scale (bytes and counts share no
 * axis): log where every value is positive and they are 100x or more apart, linear from zero
 * otherwise; the label, the scale's name and each bar's value in text beside it.
 */
export function drawBarRows(
  svg: SVGElement,
  rows: readonly { readonly metric: string; readonly label: string; readonly bars: readonly ChartBar[] }[],
  bar: number,
  rowHeight: number,
): void {
  const span = WIDTH - LABEL - 90;
  rows.forEach((row, i) => {
    const y = 4 + i * rowHeight;
    const values = row.bars.map((b) => b.value);
    const log = logScaleFor(values);
    const hi = Math.max(...values);
    const x = log
      ? scaleLog()
          .domain([Math.min(...values) / 2, hi])
          .range([0, span])
      : scaleLinear().domain([0, hi]).range([0, span]);
    svg.append(s('text', { x: 0, y: y + bar + 4 }, row.label));
    svg.append(s('text', { x: 0, y: y + 2 * bar + 2, class: 'scale-note' }, log ? 'log scale' : 'linear'));
    row.bars.forEach((b, k) => {
      const w = Math.max(x(b.value), b.value > 0 ? 1 : 0);
      const by = y + k * (bar + 2);
      svg.append(
        s(
          'rect',
          {
            class: 'bar',
            'data-design': b.design,
            'data-metric': row.metric,
            x: LABEL,
            y: by,
            width: w.toFixed(1),
            height: bar,
            fill: b.colour,
          },
          s('title', {}, b.title),
        ),
      );
      svg.append(s('text', { x: LABEL + w + 4, y: by + bar - 2 }, num(b.value)));
    });
  });
}

/** The chart (an SVG in a figure), or a note saying why there is none. */
export function comparisonChart(
  rows: readonly RowJson[],
  designs: readonly string[],
  title: string,
): HTMLElement {
  if (designs.length < 2) {
    return h(
      'p',
      { class: 'muted chart-none' },
      'No bars: only one design ran here, so there is nothing to compare (the table lists its costs).',
    );
  }
  const shown = chartedRows(rows);
  if (shown.length === 0) return h('p', { class: 'muted chart-none' }, 'No compared cost moved.');
  const height = shown.length * ROW + 6;
  const svg = chartSvg(
    'chart',
    height,
    `${title}: ${shown.map((r) => `${r.metric} physr ${r.physr}, scatterlist ${r.sg}`).join('; ')}`,
  );
  drawBarRows(
    svg,
    shown.map((row) => ({
      metric: row.metric,
      label: metricLabel(row),
      bars: [
        {
          design: 'physr',
          value: row.physr,
          colour: PHYSR_COLOUR,
          title: `physr: ${num(row.physr)} ${row.unit}`,
        },
        { design: 'sg', value: row.sg, colour: SG_COLOUR, title: `scatterlist: ${num(row.sg)} ${row.unit}` },
      ],
    })),
    BAR,
    ROW,
  );
  return h(
    'figure',
    { class: 'chart-figure' },
    svg,
    h(
      'figcaption',
      {},
      h('span', { class: 'swatch', style: `background:${PHYSR_COLOUR}` }),
      'physr ',
      h('span', { class: 'swatch', style: `background:${SG_COLOUR}` }),
      'scatterlist — shorter is cheaper; each row has its own scale. The table is the same data as text.',
    ),
  );
}

/** The rows as a table: the columns of the designs that ran, the ratio only where both did. */
export function comparisonTable(rows: readonly RowJson[], designs: readonly string[]): HTMLTableElement {
  const both = designs.length === 2;
  const columns = designs.length === 0 ? ['physr', 'sg'] : designs;
  const name = (d: string): string => (d === 'physr' ? 'physr' : 'scatterlist');
  return h(
    'table',
    { class: 'comparison' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { scope: 'col' }, 'metric'),
        ...columns.map((d) => h('th', { scope: 'col' }, name(d))),
        both && h('th', { scope: 'col' }, RATIO_HEADING),
      ),
    ),
    h(
      'tbody',
      {},
      ...rows.map((r) =>
        h(
          'tr',
          {},
          h('th', { scope: 'row' }, metricLabel(r)),
          ...columns.map((d) => h('td', { class: 'n' }, num(d === 'physr' ? r.physr : r.sg))),
          both && h('td', { class: 'n' }, ratioText(r)),
        ),
      ),
    ),
  );
}

/** A trace's "what physr would change": the traced design against physr, with each row's verdict. */
export function traceComparisonTable(comparison: TraceComparisonJson): HTMLElement {
  return h(
    'div',
    { class: 'trace-comparison' },
    h('h3', {}, `What physr would change: replayed on ${comparison.setting}`),
    h(
      'table',
      { class: 'comparison' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', { scope: 'col' }, 'metric'),
          h('th', { scope: 'col' }, 'legacy (as traced)'),
          h('th', { scope: 'col' }, 'physr'),
          h('th', { scope: 'col' }, 'verdict (lower is better)'),
        ),
      ),
      h(
        'tbody',
        {},
        ...comparison.rows.map((r) =>
          h(
            'tr',
            {},
            h('th', { scope: 'row' }, r.metric),
            h('td', { class: 'n' }, num(r.legacy)),
            h('td', { class: 'n' }, num(r.physr)),
            h('td', {}, r.verdict),
          ),
        ),
      ),
    ),
    ...(comparison.notes ?? []).map((note) => h('p', { class: 'note' }, note)),
  );
}
