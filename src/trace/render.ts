/**
 * Reports of a trace analysis: text, JSON (documented shape below; every 64-bit value is a
 * `"0x…"` string) and the project's interactive page (src/view) drawing the timelines and findings.
 *
 * JSON shape (`physr trace --json`):
 * ```
 * { file, kernel|null, lines, events, lostEvents, skippedLines, skipped: [string],
 *   unknownEvents: [{ name, count }], durationUs|null,
 *   devices: [{ device, liveAtEnd, maps, unmaps, sgMaps, sgUnmaps, sgEntries, sgSegments,
 *               truncatedSgLists, unprintedSgEntries, allocs, frees, syncs, mapErrors, faults,
 *               mappedBytes: "0x…", bouncedBytes: "0x…", peakLive, peakLiveBytes: "0x…", timeline }],
 *   iommu: { maps, unmaps, mappedBytes: "0x…", unmappedBytes: "0x…", liveAtEnd, timeline },
 *   where timeline = { total, omitted, gapAfter|null, omittedByKind: { [kind]: n },
 *     events: [{ t (µs), kind, address: "0x…"|null, size: "0x…"|null, line }] }: the first and the
 *     last events of each (at most 1000 in all), `omitted` of them left out after index `gapAfter`;
 *     kinds: map unmap map_sg unmap_sg alloc free sync fault bounce map_error iommu_map iommu_unmap
 *     (IOTLB flushes are no trace event: the comparison counts them)
 *   findingCounts: { [class]: n },
 *   findings: [{ class, severity, device|null, address: "0x…"|null, size: "0x…"|null, message,
 *                unmappedAt?, sinceUnmapUs?, lines: [{ line, time, text }] }],
 *   comparison: null | { platform, iommu, device, relocatedRanges, unknownSgEntries,
 *                truncatedLists, truncatedSgMetadataBytes,
 *                rows: [{ metric, unit, legacy, physr, ratio|null, better: "lower"|"higher",
 *                         verdict }],
 *                legacy: { failedMaps, firstFailure|null }, physr: { failedMaps, firstFailure|null } } }
 * ```
 */

import {
  renderViewHtml,
  type TraceComparisonJson,
  type TraceEventJson,
  type ViewDocument,
} from '../view/index.ts';
import type { TraceAnalysis } from './analyze.ts';
import { FINDING_CLASSES, type Finding } from './findings.ts';
import type { DesignTotals } from './model-replay.ts';
import type { Timeline, TimelineKind } from './timeline.ts';

function hex(v: bigint): string {
  return `0x${v.toString(16)}`;
}

export interface TraceComparisonRow {
  readonly metric: string;
  readonly unit: string;
  readonly legacy: number;
  readonly physr: number;
  /** physr / legacy; null when legacy is 0. */
  readonly ratio: number | null;
  /** Which way is better for this metric. */
  readonly better: 'lower';
  /** In words: which design the numbers favour. */
  readonly verdict: string;
}

const ROWS: readonly { metric: string; unit: string; get: (t: DesignTotals) => number }[] = [
  { metric: 'sg entries vs PhyrList ranges', unit: 'entries', get: (t) => t.listEntries },
  { metric: 'list metadata', unit: 'bytes', get: (t) => t.metadataBytes },
  { metric: 'IOVA allocations', unit: 'allocations', get: (t) => t.iovaAllocations },
  { metric: 'IOMMU PTE writes', unit: 'PTEs', get: (t) => t.pteWrites },
  { metric: 'IOTLB flushes', unit: 'flushes', get: (t) => t.iotlbFlushes },
  { metric: 'page-table pages allocated', unit: 'pages', get: (t) => t.tablePagesAllocated },
  { metric: 'swiotlb bounce', unit: 'bytes', get: (t) => t.bounceBytes },
  { metric: 'maps the model refused', unit: 'maps', get: (t) => t.failedMaps },
];

function verdict(legacy: number, physr: number): string {
  if (legacy === physr) return 'same';
  if (legacy === 0) return `physr ${physr} against none (lower is better: legacy better)`;
  const ratio = physr / legacy;
  return `physr ${ratio.toFixed(2)}x of legacy (lower is better: ${ratio < 1 ? 'physr' : 'legacy'} better)`;
}

export function comparisonRows(legacy: DesignTotals, physr: DesignTotals): TraceComparisonRow[] {
  return ROWS.map((r) => {
    const l = r.get(legacy);
    const p = r.get(physr);
    return {
      metric: r.metric,
      unit: r.unit,
      legacy: l,
      physr: p,
      ratio: l === 0 ? null : p / l,
      better: 'lower',
      verdict: verdict(l, p),
    };
  });
}

function findingJson(f: Finding): Record<string, unknown> {
  return {
    class: f.class,
    severity: f.severity,
    device: f.device ?? null,
    address: f.address === undefined ? null : hex(f.address),
    size: f.size === undefined ? null : hex(f.size),
    message: f.message,
    ...(f.unmappedAt === undefined ? {} : { unmappedAt: f.unmappedAt }),
    ...(f.sinceUnmapUs === undefined ? {} : { sinceUnmapUs: f.sinceUnmapUs }),
    lines: f.lines.map((l) => ({ line: l.line, time: l.time, text: l.text.trim() })),
  };
}

function timelineJson(t: Timeline): Record<string, unknown> {
  return {
    total: t.total,
    omitted: t.omitted,
    gapAfter: t.gapAfter ?? null,
    omittedByKind: Object.fromEntries(t.omittedByKind),
    events: t.entries.map((e) => ({
      t: e.timeUs,
      kind: e.kind,
      address: e.address === undefined ? null : hex(e.address),
      size: e.size === undefined ? null : hex(e.size),
      line: e.line,
    })),
  };
}

/** The report as plain JSON data (bigints as "0x…" strings). */
export function traceReportJson(a: TraceAnalysis): Record<string, unknown> {
  const c = a.comparison;
  return {
    file: a.file,
    kernel: a.kernel ?? null,
    lines: a.lines,
    events: a.events,
    lostEvents: a.lostEvents,
    skippedLines: a.skippedLines,
    skipped: a.skipped,
    unknownEvents: [...a.unknownEvents].map(([name, count]) => ({ name, count })),
    durationUs:
      a.firstTimeUs === undefined || a.lastTimeUs === undefined
        ? null
        : Math.round(a.lastTimeUs - a.firstTimeUs),
    devices: [...a.devices].map(([device, d]) => ({
      device,
      liveAtEnd: a.liveAtEnd.get(device) ?? 0,
      ...d,
      mappedBytes: hex(d.mappedBytes),
      bouncedBytes: hex(d.bouncedBytes),
      peakLiveBytes: hex(d.peakLiveBytes),
      timeline: timelineJson(a.timelines.get(device)!),
    })),
    iommu: {
      maps: a.iommu.maps,
      unmaps: a.iommu.unmaps,
      mappedBytes: hex(a.iommu.mappedBytes),
      unmappedBytes: hex(a.iommu.unmappedBytes),
      liveAtEnd: a.iommuLiveAtEnd,
      timeline: timelineJson(a.iommuTimeline),
    },
    findingCounts: Object.fromEntries(a.findingCounts),
    findings: a.findings.map(findingJson),
    comparison:
      c === undefined
        ? null
        : {
            platform: c.platform,
            iommu: c.mode,
            device: c.device,
            relocatedRanges: c.relocatedRanges,
            unknownSgEntries: c.unknownSgEntries,
            truncatedLists: c.truncatedLists,
            truncatedSgMetadataBytes: c.truncatedSgMetadataBytes,
            rows: comparisonRows(c.legacy, c.physr),
            legacy: { failedMaps: c.legacy.failedMaps, firstFailure: c.legacy.firstFailure ?? null },
            physr: { failedMaps: c.physr.failedMaps, firstFailure: c.physr.firstFailure ?? null },
          },
  };
}

export function renderTraceJson(a: TraceAnalysis): string {
  return `${JSON.stringify(traceReportJson(a), null, 2)}\n`;
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

export function renderTraceText(a: TraceAnalysis): string {
  const out: string[] = [];
  const span =
    a.firstTimeUs === undefined || a.lastTimeUs === undefined
      ? ''
      : `, ${((a.lastTimeUs - a.firstTimeUs) / 1e6).toFixed(6)} s of trace`;
  out.push(`trace ${a.file}: ${a.lines} lines, ${a.events} DMA/IOMMU events${span}`);
  if (a.kernel !== undefined) out.push(`kernel: ${a.kernel}`);
  if (a.unknownEvents.size > 0)
    out.push(
      `events not read (${[...a.unknownEvents.values()].reduce((x, y) => x + y, 0)}): ${[...a.unknownEvents].map(([n, c]) => `${n} ${c}`).join(', ')}`,
    );
  if (a.lostEvents > 0)
    out.push(`the ring buffer lost ${a.lostEvents} events: state after them may be incomplete`);
  if (a.skippedLines > 0) {
    out.push(`malformed lines skipped (--keep-going): ${a.skippedLines}`);
    for (const s of a.skipped.slice(0, 20)) out.push(`  ${s}`);
  }
  out.push('');
  out.push('devices:');
  for (const [device, d] of a.devices) {
    out.push(
      `  ${device}: ${d.maps} maps / ${d.unmaps} unmaps, ${d.sgMaps} sg maps (${d.sgEntries} entries, ${d.sgSegments} DMA segments) / ${d.sgUnmaps} sg unmaps, ${d.allocs} allocs / ${d.frees} frees, ${d.syncs} syncs, ${d.faults} faults; ${d.mappedBytes} bytes mapped, peak ${d.peakLive} live (${d.peakLiveBytes} bytes), ${a.liveAtEnd.get(device) ?? 0} live at end`,
    );
    if (d.truncatedSgLists > 0)
      out.push(
        `    ${d.truncatedSgLists} sg lists cut at [TRUNCATED]: ${d.unprintedSgEntries} entries not printed (counted from nents)`,
      );
    if (d.bouncedBytes > 0n) out.push(`    swiotlb bounced ${d.bouncedBytes} bytes`);
  }
  if (a.iommu.maps + a.iommu.unmaps > 0)
    out.push(
      `  IOMMU: ${a.iommu.maps} iommu:map (${a.iommu.mappedBytes} bytes), ${a.iommu.unmaps} iommu:unmap; ${a.iommuLiveAtEnd} IOVA ranges live at end`,
    );
  out.push('');
  const total = [...a.findingCounts.values()].reduce((x, y) => x + y, 0);
  if (total === 0) out.push('findings: none (no DMA-API misuse, no mapping live at the end)');
  else {
    out.push(`findings: ${total}`);
    for (const [cls, n] of a.findingCounts) out.push(`  ${pad(cls, 22)} ${n}  (${FINDING_CLASSES[cls]})`);
    for (const f of a.findings.slice(0, 200)) {
      out.push('');
      out.push(`${f.severity === 'unknown' ? 'unknown' : 'error'}: ${f.class}: ${f.message}`);
      for (const l of f.lines) out.push(`  ${a.file}:${l.line}: ${l.text.trim()}`);
    }
    if (a.findings.length > 200) out.push(`... ${a.findings.length - 200} more findings (see --json)`);
  }
  const c = a.comparison;
  if (c !== undefined) {
    out.push('');
    out.push(
      `what physr would change: the traced mappings replayed on ${c.platform} (IOMMU ${c.mode}) as device ${c.device}`,
    );
    out.push(
      '  legacy = dma_map_sg of the traced sg_tables; physr = one PhyrList per list, one IOVA, bulk link, one sync',
    );
    out.push('  single mappings and coherent buffers are dma_map_phys in both designs');
    const rows = comparisonRows(c.legacy, c.physr);
    out.push(`  ${pad('metric', 30)} ${pad('legacy', 12)} ${pad('physr', 12)} verdict`);
    for (const r of rows)
      out.push(
        `  ${pad(r.metric, 30)} ${pad(String(r.legacy), 12)} ${pad(String(r.physr), 12)} ${r.verdict}`,
      );
    for (const note of comparisonNotes(c)) out.push(`  ${note}`);
  }
  return `${out.join('\n')}\n`;
}

/** The caveats of a comparison, worded once for the text report and the page. */
function comparisonNotes(c: NonNullable<TraceAnalysis['comparison']>): string[] {
  const notes: string[] = [];
  if (c.truncatedLists > 0)
    notes.push(
      `${c.truncatedLists} lists cut at [TRUNCATED]: ${c.unknownSgEntries} entries unknown (not replayed by either design); their sg_tables took ${c.truncatedSgMetadataBytes} bytes counted from nents`,
    );
  if (c.relocatedRanges > 0)
    notes.push(
      `${c.relocatedRanges} ranges moved into model RAM (offset modulo 1 GiB kept): the model has no RAM there`,
    );
  for (const [name, t] of [
    ['legacy', c.legacy],
    ['physr', c.physr],
  ] as const)
    if (t.firstFailure !== undefined) notes.push(`${name}: first refused map: ${t.firstFailure}`);
  return notes;
}

/** The page's form of the comparison; none when the trace was not replayed through the model. */
function comparisonField(a: TraceAnalysis): { comparison?: TraceComparisonJson } {
  const c = a.comparison;
  if (c === undefined) return {};
  return {
    comparison: {
      setting: `${c.platform} (IOMMU ${c.mode}) as device ${c.device}`,
      rows: comparisonRows(c.legacy, c.physr).map((r) => ({
        metric: r.metric,
        legacy: r.legacy,
        physr: r.physr,
        verdict: r.verdict,
      })),
      notes: comparisonNotes(c),
    },
  };
}

/** The view's mark for each timeline kind: what it does to a mapping. */
const VIEW_KIND: Record<TimelineKind, string> = {
  map: 'map',
  map_sg: 'map',
  alloc: 'map',
  iommu_map: 'map',
  unmap: 'unmap',
  unmap_sg: 'unmap',
  free: 'unmap',
  iommu_unmap: 'unmap',
  sync: 'dma',
  bounce: 'dma',
  fault: 'fault',
  map_error: 'other',
};

function seconds(timeUs: number): string {
  return (timeUs / 1e6).toFixed(6);
}

function timelineEvents(
  who: string,
  t: Timeline,
): { timeUs: number; order: number; event: TraceEventJson }[] {
  const out = t.entries.map((e, i) => ({
    timeUs: e.timeUs,
    order: i,
    event: {
      time: seconds(e.timeUs),
      kind: VIEW_KIND[e.kind],
      text: `${who}: ${e.kind}${e.address === undefined ? '' : ` ${hex(e.address)}`}${e.size === undefined ? '' : `+${hex(e.size)}`} (line ${e.line})`,
    },
  }));
  if (t.gapAfter !== undefined) {
    const before = t.entries[t.gapAfter];
    const left = [...t.omittedByKind].map(([k, n]) => `${k} ${n}`).join(', ');
    out.push({
      timeUs: before?.timeUs ?? 0,
      order: t.gapAfter + 0.5,
      event: { kind: 'other', text: `${who}: ${t.omitted} events left out here (${left})` },
    } as (typeof out)[number]);
  }
  return out;
}

/**
 * The report as the interactive view's document: one trace section of every device's timeline and
 * the IOMMU's, merged in time order, with each finding placed at the last line it quotes.
 */
export function traceViewDocument(a: TraceAnalysis, command?: string): ViewDocument {
  const all: { timeUs: number; order: number; event: TraceEventJson }[] = [];
  for (const [device, t] of a.timelines) all.push(...timelineEvents(device, t));
  all.push(...timelineEvents('IOMMU', a.iommuTimeline));
  for (const f of a.findings) {
    const last = f.lines[f.lines.length - 1];
    all.push({
      timeUs: last?.timeUs ?? 0,
      order: Number.MAX_SAFE_INTEGER,
      event: {
        ...(last === undefined ? {} : { time: last.time }),
        kind: f.class === 'use-after-unmap' || f.class.startsWith('fault') ? 'fault' : 'other',
        text: `${f.severity === 'unknown' ? 'unknown' : 'finding'}: ${f.class}: ${f.message}`,
      },
    });
  }
  // Stable: events of one timeline keep their order; findings after the event they rest on.
  all.sort((x, y) => x.timeUs - y.timeUs || x.order - y.order);
  return {
    title: `physr trace ${a.file}`,
    ...(command === undefined ? {} : { command }),
    trace: { source: a.file, events: all.map((e) => e.event), ...comparisonField(a) },
  };
}

/** The project's interactive page (src/view) for the report. */
export async function renderTraceHtml(a: TraceAnalysis, options: { command?: string } = {}): Promise<string> {
  return renderViewHtml(traceViewDocument(a, options.command));
}
