/**
 * The three-way comparison in text: sg, Linux 7.1 and physr on the same maps (designs.ts). Per step a
 * line per design (its API, path and numbers, or why it has no path); per scenario and for the
 * suite a table of the designs' totals over the steps every one of them ran, with the two ratios
 * sg → 7.1 and 7.1 → physr, each headed by the direction it reads in.
 */
import { DESIGN_METRICS, designRatioHeading, designRatioText, plural } from '../view/wording.ts';
import type { DesignComparison, DesignOutcome } from './designs.ts';

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

/** One design's line for a step: what it called, how it mapped, what it cost; or why it did not. */
export function designRunLine(run: DesignOutcome): string {
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
  const how = run.path === undefined ? run.api : `${run.api}, ${run.path}`;
  return `${name} ${how}: ${numbers.join(', ')} — ${run.note}`;
}

/** The heading of a design comparison: which designs, over how many steps of which scenarios. */
export function designComparisonHeading(c: DesignComparison): string {
  const names = c.designs.join(' vs ');
  if (c.steps === 0) return `${names}: no step ran every one of them, nothing to compare`;
  const where =
    c.scenarios.length > 1 ? ` of ${plural(c.scenarios.length, 'scenario')} (${c.scenarios.join(', ')})` : '';
  return `${names} on the same maps, over the ${plural(c.steps, 'step')}${where} every one of them ran`;
}

/** The totals table with both ratios, then each step left out and why; indented by `indent`. */
export function renderDesignComparisonText(c: DesignComparison, indent = '  '): string {
  const lines: string[] = [];
  if (c.steps > 0) {
    const pairs = [...new Map(c.ratios.map((r) => [`${r.from}/${r.to}`, r])).values()];
    const total = (design: string, metric: string): number => {
      const t = c.totals.find((x) => x.design === design) as unknown as Record<string, number> | undefined;
      return t?.[metric] ?? 0;
    };
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
  for (const l of c.leftOut) {
    lines.push(
      `left out: ${l.scenario ? `${l.scenario} ` : ''}step ${l.step} (${l.op}), ${l.design}: ${l.why}`,
    );
  }
  return lines.map((line) => indent + line).join('\n');
}
