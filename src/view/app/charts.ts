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

/** Whether a row is drawn on a log scale: both values positive and 100x or more apart. */
export function usesLogScale(row: RowJson): boolean {
  const lo = Math.min(row.physr, row.sg);
  const hi = Math.max(row.physr, row.sg);
  return lo > 0 && hi / lo >= 100;
}

const LABEL = 330;
/** Every comparison chart's width (px). */
export const CHART_WIDTH = 800;
const WIDTH = CHART_WIDTH;
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
  const span = WIDTH - LABEL - 90;
  const svg = chartSvg(
    'chart',
    height,
    `${title}: ${shown.map((r) => `${r.metric} physr ${r.physr}, scatterlist ${r.sg}`).join('; ')}`,
  );
  shown.forEach((row, i) => {
    const y = 4 + i * ROW;
    const log = usesLogScale(row);
    const hi = Math.max(row.physr, row.sg);
    const x = log
      ? scaleLog()
          .domain([Math.min(row.physr, row.sg) / 2, hi])
          .range([0, span])
      : scaleLinear().domain([0, hi]).range([0, span]);
    svg.append(s('text', { x: 0, y: y + BAR + 4 }, metricLabel(row)));
    svg.append(s('text', { x: 0, y: y + 2 * BAR + 2, class: 'scale-note' }, log ? 'log scale' : 'linear'));
    for (const [k, design, value, colour] of [
      [0, 'physr', row.physr, PHYSR_COLOUR],
      [1, 'sg', row.sg, SG_COLOUR],
    ] as const) {
      const w = Math.max(x(value), value > 0 ? 1 : 0);
      const by = y + k * (BAR + 2);
      svg.append(
        s(
          'rect',
          {
            class: 'bar',
            'data-design': design,
            'data-metric': row.metric,
            x: LABEL,
            y: by,
            width: w.toFixed(1),
            height: BAR,
            fill: colour,
          },
          s('title', {}, `${design === 'physr' ? 'physr' : 'scatterlist'}: ${num(value)} ${row.unit}`),
        ),
      );
      svg.append(s('text', { x: LABEL + w + 4, y: by + BAR - 2 }, num(value)));
    }
  });
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
