/**
 * A self-contained HTML report: one file, inline CSS, inline SVG bar charts of the physr-vs-
 * scatterlist comparison, no scripts and no external assets. Every piece of text is escaped.
 */

import {
  comparisonHeading,
  metricLabel,
  RATIO_HEADING,
  ratioText,
  renderSummaryLine,
  renderTimingText,
  suiteComparisonHeading,
} from './render-text.ts';
import type { ComparisonRow, Design, RunReport, ScenarioReport, StepReport } from './report.ts';

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

const CSS = `
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#1d2330;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2.5rem;border-bottom:1px solid #d5d9e2}
table{border-collapse:collapse;margin:.6rem 0}td,th{padding:.2rem .6rem;text-align:left;vertical-align:top}
th{background:#eef1f6}tr:nth-child(even) td{background:#f8f9fb}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#16794c}.failed,.error{color:#b42318}.skipped{color:#6b7280}.muted{color:#6b7280}
.summary{font-weight:600;padding:.6rem;border-radius:6px;background:#eef1f6}
ul{margin:.2rem 0;padding-left:1.2rem}svg text{font:12px system-ui,sans-serif;fill:#1d2330}
.legend span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 1rem;vertical-align:middle}
`;

const PHYSR_COLOUR = '#2f6fdb';
const SG_COLOUR = '#e0883a';

/** Horizontal bars, two per metric (physr, scatterlist), each metric on its own scale. */
export function comparisonChart(rows: readonly ComparisonRow[], title: string): string {
  const shown = rows.filter((r) => r.physr !== 0 || r.sg !== 0);
  if (shown.length === 0) return '<p class="muted">No compared counter moved.</p>';
  const label = 210;
  const width = 600;
  const bar = 14;
  const rowHeight = 2 * bar + 14;
  const height = shown.length * rowHeight + 8;
  const parts = shown.map((r, i) => {
    const y = 4 + i * rowHeight;
    const max = Math.max(r.physr, r.sg);
    const scale = (v: number): number =>
      max === 0 ? 0 : Math.max((v / max) * (width - label - 70), v > 0 ? 1 : 0);
    return [
      `<text x="0" y="${y + bar + 3}">${escapeHtml(metricLabel(r))}</text>`,
      `<rect x="${label}" y="${y}" width="${scale(r.physr).toFixed(1)}" height="${bar}" fill="${PHYSR_COLOUR}"><title>physr: ${r.physr}</title></rect>`,
      `<text x="${label + scale(r.physr) + 4}" y="${y + bar - 3}">${r.physr}</text>`,
      `<rect x="${label}" y="${y + bar + 2}" width="${scale(r.sg).toFixed(1)}" height="${bar}" fill="${SG_COLOUR}"><title>scatterlist: ${r.sg}</title></rect>`,
      `<text x="${label + scale(r.sg) + 4}" y="${y + 2 * bar - 1}">${r.sg}</text>`,
    ].join('');
  });
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" role="img" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    `<title>${escapeHtml(title)}</title>${parts.join('')}</svg>`
  );
}

/** The rows as a table: the columns of the designs that ran; the ratio only where both did. */
function comparisonTable(
  rows: readonly ComparisonRow[],
  designs: readonly Design[] = ['physr', 'sg'],
): string {
  const both = designs.length === 2;
  const columns = designs.length === 0 ? (['physr', 'sg'] as const) : designs;
  const body = rows
    .map(
      (r) =>
        `<tr><td>${escapeHtml(metricLabel(r))}</td>${columns
          .map((d) => `<td class="n">${d === 'physr' ? r.physr : r.sg}</td>`)
          .join('')}${both ? `<td class="n">${escapeHtml(ratioText(r))}</td>` : ''}</tr>`,
    )
    .join('');
  const heads = columns.map((d) => `<th>${d === 'physr' ? 'physr' : 'scatterlist'}</th>`).join('');
  return `<table><tr><th>metric</th>${heads}${both ? `<th>${escapeHtml(RATIO_HEADING)}</th>` : ''}</tr>${body}</table>`;
}

const MARK = { ok: '✓', failed: '✗', error: '!', skipped: '–' } as const;

function stepRow(step: StepReport): string {
  const details: string[] = [...step.notes.map((n) => `<li>${escapeHtml(n)}</li>`)];
  for (const e of step.expectations) {
    details.push(
      e.met
        ? `<li class="ok">✓ ${escapeHtml(e.what)}</li>`
        : `<li class="failed">✗ expected ${escapeHtml(e.what)}: ${escapeHtml(e.detail)}</li>`,
    );
  }
  if (step.error !== undefined) {
    details.push(`<li class="error">${escapeHtml(`${step.error.errno}: ${step.error.reason}`)}</li>`);
  }
  return (
    `<tr><td class="${step.status}">${MARK[step.status]}</td><td class="n">${step.index + 1}</td>` +
    `<td>${escapeHtml(step.op)}</td><td class="n">${step.line ?? ''}</td><td>${escapeHtml(step.path ?? '')}</td>` +
    `<td><ul>${details.join('')}</ul></td></tr>`
  );
}

function scenarioSection(s: ScenarioReport): string {
  const failure =
    s.failure === undefined
      ? ''
      : `<p class="failed">Failed at step ${s.failure.step + 1} (${escapeHtml(s.failure.op)}${
          s.failure.line === undefined ? '' : `, line ${s.failure.line}`
        }): ${escapeHtml(s.failure.reason)}</p>`;
  return [
    `<section><h2><span class="${s.status === 'passed' ? 'ok' : 'failed'}">${s.status === 'passed' ? '✓' : '✗'}</span> ${escapeHtml(s.name)}</h2>`,
    s.description === undefined ? '' : `<p>${escapeHtml(s.description)}</p>`,
    `<p class="muted">platform ${escapeHtml(s.platform)} · seed ${escapeHtml(String(s.seed))} · IOTLB ${escapeHtml(s.iommuMode)} · ${escapeHtml(s.file)}</p>`,
    failure,
    `<table><tr><th></th><th>#</th><th>step</th><th>line</th><th>path</th><th>what happened</th></tr>${s.steps.map(stepRow).join('')}</table>`,
    `<h3>${escapeHtml(comparisonHeading(s))}</h3>`,
    comparisonChart(s.comparison, `${s.name}: ${comparisonHeading(s)}`),
    comparisonTable(s.comparison, s.designs),
    '</section>',
  ].join('\n');
}

export function renderRunHtml(report: RunReport, title = 'physr run report'): string {
  const overall =
    report.scenarios.length > 1
      ? `<section><h2>${escapeHtml(suiteComparisonHeading(report))}</h2>${
          report.comparedScenarios.length === 0
            ? ''
            : comparisonChart(report.comparison, 'the scenarios that ran both designs') +
              comparisonTable(report.comparison)
        }</section>`
      : '';
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>${CSS}</style></head><body>`,
    `<h1>${escapeHtml(title)}</h1>`,
    `<p class="summary">${escapeHtml(renderSummaryLine(report))}</p>`,
    `<p class="legend">bars:<span style="background:${PHYSR_COLOUR}"></span>physr<span style="background:${SG_COLOUR}"></span>scatterlist</p>`,
    overall,
    ...renderTimingText(report.timing).map((line) => `<p>${escapeHtml(line)}</p>`),
    ...report.scenarios.map(scenarioSection),
    '</body></html>',
    '',
  ].join('\n');
}
