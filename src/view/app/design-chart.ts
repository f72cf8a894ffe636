/**
 * The three-way comparison on the page: sg, Linux 7.1 and physr on the same maps. A chart with one
 * bar per compared design (a design not compared gets no bar) per cost that moved, each row on its
 * own scale (log where the values are 100x or more apart); the table beside it with the two ratios
 * sg → 7.1 and 7.1 → physr headed by their direction; the steps left out and why; and per step a
 * line per design.
 */
import type { DesignComparisonJson, DesignTotalsJson, StepJson } from '../document.ts';
import {
  DESIGN_METRICS,
  DESIGN_RATIO_PAIRS,
  type DesignMetric,
  designLeftOutLine,
  designRatioHeading,
  designRatioText,
  designRepeatLine,
  designRunLine,
} from '../wording.ts';
import { chartSvg, drawBarRows, PHYSR_COLOUR, SG_COLOUR } from './charts.ts';
import { h, num } from './dom.ts';

export const LINUX71_COLOUR = '#2a8a4a';

const COLOURS: Readonly<Record<string, string>> = {
  sg: SG_COLOUR,
  'linux-7.1': LINUX71_COLOUR,
  physr: PHYSR_COLOUR,
};

const BAR = 11;

function value(c: DesignComparisonJson, design: string, metric: DesignMetric): number {
  const t: DesignTotalsJson | undefined = c.totals.find((x) => x.design === design);
  return t?.[metric] ?? 0;
}

/** The chart, or a note saying why there is none. */
export function designChart(c: DesignComparisonJson, title: string): HTMLElement {
  if (c.steps === 0) {
    return h('p', { class: 'muted chart-none' }, 'No bars: no step ran under every compared design.');
  }
  const shown = DESIGN_METRICS.filter(([key]) => c.designs.some((d) => value(c, d, key) > 0));
  if (shown.length === 0) return h('p', { class: 'muted chart-none' }, 'No compared cost moved.');
  const row = c.designs.length * (BAR + 2) + 14;
  const height = shown.length * row + 6;
  const svg = chartSvg(
    'chart design-chart',
    height,
    `${title}: ${shown.map(([key, label]) => `${label} ${c.designs.map((d) => `${d} ${value(c, d, key)}`).join(', ')}`).join('; ')}`,
  );
  drawBarRows(
    svg,
    shown.map(([key, label]) => ({
      metric: key,
      label,
      bars: c.designs.map((design) => {
        const v = value(c, design, key);
        return { design, value: v, colour: COLOURS[design] ?? '#777', title: `${design}: ${num(v)}` };
      }),
    })),
    BAR,
    row,
  );
  return h(
    'figure',
    { class: 'chart-figure' },
    svg,
    h(
      'figcaption',
      {},
      ...c.designs.flatMap((d) => [
        h('span', { class: 'swatch', style: `background:${COLOURS[d] ?? '#777'}` }),
        `${d} `,
      ]),
      '— shorter is cheaper; each row has its own scale. The table is the same data as text.',
    ),
  );
}

/** The totals as a table with the ratios whose two designs were both compared; then what was left out. */
export function designTable(c: DesignComparisonJson): HTMLElement {
  const pairs = DESIGN_RATIO_PAIRS.filter(([a, b]) => c.designs.includes(a) && c.designs.includes(b));
  const table =
    c.steps === 0
      ? null
      : h(
          'table',
          { class: 'comparison designs' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', { scope: 'col' }, 'metric'),
              ...c.designs.map((d) => h('th', { scope: 'col' }, d)),
              ...pairs.map(([a, b]) => h('th', { scope: 'col' }, designRatioHeading(a, b))),
            ),
          ),
          h(
            'tbody',
            {},
            ...DESIGN_METRICS.map(([key, label]) =>
              h(
                'tr',
                {},
                h('th', { scope: 'row' }, label),
                ...c.designs.map((d) => h('td', { class: 'n' }, num(value(c, d, key)))),
                ...pairs.map(([a, b]) =>
                  h('td', { class: 'n' }, designRatioText(value(c, a, key), value(c, b, key))),
                ),
              ),
            ),
          ),
        );
  const notes = [...c.leftOut.map(designLeftOutLine), ...(c.repeats ?? []).map(designRepeatLine)];
  const left =
    notes.length === 0 ? null : h('ul', { class: 'left-out' }, ...notes.map((line) => h('li', {}, line)));
  return h('div', {}, table, left);
}

/** Per step that ran under the designs, a line per design: what it called and what it cost. */
export function designSteps(steps: readonly StepJson[]): HTMLElement | null {
  const withRuns = steps.filter((st) => st.designRuns !== undefined && st.designRuns.length > 0);
  if (withRuns.length === 0) return null;
  return h(
    'ul',
    { class: 'design-steps' },
    ...withRuns.map((st) =>
      h(
        'li',
        {},
        `step ${st.index + 1} (${st.op}${st.line === undefined ? '' : `, line ${st.line}`})`,
        h(
          'ul',
          {},
          ...(st.designRuns ?? []).map((r) => h('li', { 'data-design': r.design }, designRunLine(r))),
        ),
      ),
    ),
  );
}
