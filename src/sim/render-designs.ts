/**
 * The three-way comparison in text: sg, Linux 7.1 and physr on the same maps (designs.ts). Per step a
 * line per design (its API, path and numbers, or why it has no path); per scenario and for the
 * suite a table of the designs' totals over the steps every one of them ran, with the two ratios
 * sg → 7.1 and 7.1 → physr, each headed by the direction it reads in; then what was left out or
 * counted once.
 */
import {
  DESIGN_METRICS,
  type DesignMetric,
  designLeftOutLine,
  designRatioHeading,
  designRatioText,
  designRepeatLine,
} from '../view/wording.ts';
import type { DesignComparison } from './designs.ts';

export { designComparisonHeading, designRunLine } from '../view/wording.ts';

/** Pads cells into columns (left-aligned first column, the rest right-aligned). */
function columns(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => [...(r[c] ?? '')].length)));
  return rows.map((r) =>
    r
      .map((cell, c) => {
        const pad = ' '.repeat(widths[c]! - [...cell].length);
        return c === 0 ? cell + pad : pad + cell;
      })
      .join('  ')
      .trimEnd(),
  );
}

/** The totals table with both ratios, then each step left out and why; indented by `indent`. */
export function renderDesignComparisonText(c: DesignComparison, indent = '  '): string {
  const lines: string[] = [];
  if (c.steps > 0) {
    const pairs = [...new Map(c.ratios.map((r) => [`${r.from}/${r.to}`, r])).values()];
    const total = (design: string, metric: DesignMetric): number =>
      c.totals.find((x) => x.design === design)?.[metric] ?? 0;
    lines.push(
      ...columns([
        ['metric', ...c.designs, ...pairs.map((p) => designRatioHeading(p.from, p.to))],
        ...DESIGN_METRICS.map(([key, label]) => [
          label,
          ...c.designs.map((d) => String(total(d, key))),
          ...pairs.map((p) => designRatioText(total(p.from, key), total(p.to, key))),
        ]),
      ]),
    );
    lines.push('faults: none in these counts (the design runs map and unmap; no device touches them)');
  }
  lines.push(...c.leftOut.map(designLeftOutLine), ...c.repeats.map(designRepeatLine));
  return lines.map((line) => indent + line).join('\n');
}
