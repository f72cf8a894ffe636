/**
 * The three-way comparison in each output form, on real built-in scenario runs: the text report and
 * `physr compare` show the columns sg, linux-7.1, physr and both ratios headed by their direction;
 * each step says per design what it called and what it cost; the JSON carries the same totals.
 * Totals are checked against the steps' own design runs summed here.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type DesignOutcome,
  loadScenarioFile,
  type RunReport,
  registerBuiltins,
  renderComparisonOnly,
  renderRunJson,
  renderRunText,
  resolveScenarioTarget,
  runSuite,
  type StepReport,
} from '../../src/sim/index.ts';

const SG_TO_71 = 'sg/linux-7.1 (above 1: linux-7.1 costs less)';
const TO_PHYSR = 'linux-7.1/physr (above 1: physr costs less)';

let report: RunReport;

beforeAll(async () => {
  registerBuiltins();
  const names = ['nvme-fragmented', 'p2p-gpu-nic-switch'];
  report = await runSuite(names.map((n) => loadScenarioFile(resolveScenarioTarget(n))));
}, 60_000);

/**
 * Each scenario maps the same kind of buffer by its physr path (step 2), then by its sg path (step 7
 * of nvme-fragmented, step 6 of p2p-gpu-nic-switch): the design reruns of the twin are the same
 * three runs, so the totals count the pair once.
 */
const TWINS = [
  { scenario: 'nvme-fragmented', step: 7, op: 'map', of: 2 },
  { scenario: 'p2p-gpu-nic-switch', step: 6, op: 'map', of: 2 },
];

/** Retained metadata per design over the steps every design ran (twins once), summed from the step reports. */
function retainedByDesign(
  scenarios: readonly { name: string; steps: readonly StepReport[] }[],
): Record<string, number> {
  const out: Record<string, number> = { sg: 0, 'linux-7.1': 0, physr: 0 };
  const steps = scenarios.flatMap((s) =>
    s.steps.filter((st) => !TWINS.some((t) => t.scenario === s.name && t.step === st.index + 1)),
  );
  for (const step of steps) {
    const runs: readonly DesignOutcome[] = step.designRuns ?? [];
    if (runs.length !== 3 || runs.some((r) => !r.ran)) continue;
    for (const r of runs) out[r.design]! += r.metadataBytes!;
  }
  return out;
}

function row(text: string, label: string): string[] {
  const line = text.split('\n').find((l) => l.trimStart().startsWith(label));
  expect(line, label).toBeDefined();
  return line!
    .slice(line!.indexOf(label) + label.length)
    .trim()
    .split(/\s+/);
}

describe('the three-way comparison in reports', () => {
  it('text: the suite table has the three columns and both ratios, each with its direction', () => {
    const text = renderRunText(report);
    const header = text.split('\n').find((l) => l.includes(SG_TO_71))!;
    expect(header).toMatch(
      /metric\s+sg\s+linux-7\.1\s+physr\s+sg\/linux-7\.1 \(above 1: linux-7\.1 costs less\)\s+linux-7\.1\/physr \(above 1: physr costs less\)/,
    );
    // The suite table is the first one, before the physr-vs-scatterlist table.
    expect(text.indexOf(SG_TO_71)).toBeLessThan(text.indexOf('sg/physr (above 1: physr cheaper)'));
    expect(text).toContain(
      'counted once: nvme-fragmented step 7 (map) repeats step 2 under every design (the same work, the same numbers)',
    );
    const want = retainedByDesign(report.scenarios);
    const [sg, linux, physr, up, rest] = row(text, 'metadata retained (bytes)');
    expect([Number(sg), Number(linux), Number(physr)]).toEqual([want.sg, want['linux-7.1'], want.physr]);
    expect(up).toBe(`${(want.sg! / want['linux-7.1']!).toFixed(2)}x`);
    expect(rest).toBe(`${(want['linux-7.1']! / want.physr!).toFixed(2)}x`);
  });

  it('text: each map step has a line per design, and the NVMe map says 7.1 used blk_rq_dma_map_iter with one IOVA', () => {
    const text = renderRunText(report);
    const nvme = text.slice(text.indexOf('nvme-fragmented  ✓'), text.indexOf('p2p-gpu-nic-switch  ✓'));
    expect(nvme).toMatch(
      /\n {8}sg {8}dma_map_sgtable, sg: 2064 B metadata retained, 2576 B at peak, 4 entries to the device, 1 IOVA/,
    );
    expect(nvme).toMatch(
      /\n {8}linux-7\.1 blk_rq_dma_map_iter, iova: 1040 B metadata, 1 entry to the device, 1 IOVA, 64 PTE writes.* one IOVA/,
    );
    expect(nvme).toMatch(
      /\n {8}physr {5}dma_map_phyrs \(proposal\), iova: 1088 B metadata, 4 entries to the device/,
    );
    // physr's lines say how the ranges reached the device in the step lines' words, never the
    // model's internal path names ("mixed", "per-range").
    expect(text).not.toMatch(/via (mixed|per-range)|\(proposal\), (mixed|per-range):/);
    expect(text).toMatch(
      /physr: 1 range → 4 DMA ranges via IOMMU \(one IOVA\)|physr: \d+ ranges? → \d+ DMA ranges? via /,
    );
    // The dma-buf importer on 7.1 builds a DMA-only sg_table from the exporter's phys_vec.
    const p2p = text.slice(text.indexOf('p2p-gpu-nic-switch  ✓'));
    expect(p2p).toContain('linux-7.1 dma_buf_phys_vec_to_sgt');
  });

  it('compare: each scenario and the suite show the three designs and both ratios', () => {
    const text = renderComparisonOnly(report);
    expect(text.split(SG_TO_71).length - 1).toBe(3);
    expect(text.split(TO_PHYSR).length - 1).toBe(3);
    expect(text).toMatch(
      /sg vs linux-7\.1 vs physr on the same maps, over the \d+ steps of 2 scenarios \(nvme-fragmented, p2p-gpu-nic-switch\)/,
    );
  });

  it('JSON: the suite totals per design and both ratio directions, equal to the steps summed', () => {
    const json = JSON.parse(renderRunJson(report)) as {
      designComparison: {
        designs: string[];
        totals: { design: string; metadataBytes: number }[];
        ratios: { from: string; to: string; metric: string; reads: string; ratio: number }[];
        repeats: { scenario: string; step: number; op: string; of: number }[];
      };
    };
    const c = json.designComparison;
    expect(c.designs).toEqual(['sg', 'linux-7.1', 'physr']);
    expect(c.repeats).toEqual(TWINS);
    const want = retainedByDesign(report.scenarios);
    expect(c.totals.map((t) => [t.design, t.metadataBytes])).toEqual(Object.entries(want));
    const meta = c.ratios.filter((r) => r.metric === 'metadataBytes');
    expect(meta.map((r) => [r.from, r.to, r.reads])).toEqual([
      ['sg', 'linux-7.1', SG_TO_71],
      ['linux-7.1', 'physr', TO_PHYSR],
    ]);
    expect(meta[0]!.ratio).toBe(want.sg! / want['linux-7.1']!);
  });
});
