/**
 * The suite's numbers count only what the kernel holds (builtin-scenarios.test.ts bounds every
 * step's scatterlist charge by kernel-sg-bytes.ts), a scenario whose
 * maps were all refused compares nothing, the lazy flush is its design's cost, ratios say which way
 * is better, and scenarios report the name `physr list` shows.
 */
import { basename } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  builtinScenarioNames,
  designTiming,
  loadScenarioFile,
  registerBuiltins,
  renderRunText,
  renderScenarioText,
  resolveScenarioTarget,
  runScenario,
  runSuite,
  type ScenarioReport,
} from '../../src/sim/index.ts';
import { sgAllocTableBytes, sgAppendTableMaxBytes, UMEM_PAGE_LIST } from './kernel-sg-bytes.ts';

registerBuiltins();

const reports = new Map<string, ScenarioReport>();
async function report(name: string): Promise<ScenarioReport> {
  let r = reports.get(name);
  if (r === undefined) {
    r = await runScenario(loadScenarioFile(resolveScenarioTarget(name)));
    reports.set(name, r);
  }
  return r;
}

describe('independent kernel sizes', () => {
  it('sg_alloc_table chains every 127 entries', () => {
    expect(sgAllocTableBytes(1)).toBe(48);
    expect(sgAllocTableBytes(128)).toBe(16 + 4096);
    expect(sgAllocTableBytes(129)).toBe(16 + 32 * 130);
    expect(sgAllocTableBytes(256)).toBe(16 + 32 * 258);
    expect(sgAppendTableMaxBytes(1)).toBe(16 + 4096);
    expect(sgAppendTableMaxBytes(129)).toBe(16 + 8192);
  });
});

describe('scatterlist metadata (every built-in scenario is checked in builtin-scenarios.test.ts)', () => {
  it('rdma-hugetlb-1g: one page of pointers at peak, one sg chunk retained', async () => {
    const rows = (await report('rdma-hugetlb-1g')).comparison;
    const peak = rows.find((row) => row.metric === 'metadata at peak')!;
    const retained = rows.find((row) => row.metric === 'metadata retained')!;
    // ib_umem_get: a page of slots (one entry, more pages announced) + the page_list page.
    expect(retained.sg).toBe(sgAppendTableMaxBytes(1));
    expect(peak.sg).toBe(sgAppendTableMaxBytes(1) + UMEM_PAGE_LIST);
    expect(peak.physr).toBe(32);
    // The step says both figures where it happened.
    expect(renderScenarioText(await report('rdma-hugetlb-1g'))).toContain(
      `scatterlist metadata: ${retained.sg} B retained, ${peak.sg} B at peak (scratch freed before the step ends)`,
    );
  });
});

describe('like with like', () => {
  it('a scenario whose maps were all refused ran neither design', async () => {
    const r = await report('laptop-no-p2p');
    expect(r.designs).toEqual([]);
    expect(r.steps.filter((s) => s.refused !== undefined).map((s) => s.refused!.errno)).toEqual([
      'EINVAL',
      'EREMOTEIO',
    ]);
  });

  it('the lazy flush is credited to the design whose unmap queued it', async () => {
    const r = await report('iotlb-lazy');
    const flush = r.steps.find((s) => s.op === 'flush')!;
    expect(flush.path).toBe('physr');
    expect(r.comparison.find((row) => row.metric === 'IOTLB flushes')!.physr).toBeGreaterThanOrEqual(1);
  });

  it('entries compare what each design hands the device, and the CPU-side lists apart', async () => {
    const rows = (await report('nvme-fragmented')).comparison;
    const device = rows.find((row) => row.metric === 'entries to device')!;
    const cpu = rows.find((row) => row.metric === 'entries, CPU side')!;
    // 64 scattered 4K pages: 64 sg entries and 64 physical ranges on the CPU side; the IOMMU merges
    // both into one IOVA stretch cut by the 64K max segment.
    expect(cpu).toMatchObject({ physr: 64, sg: 64 });
    expect(device.physr).toBe(device.sg);
    expect(device.physr).toBeLessThan(cpu.physr);
  });

  it('every scenario reports itself by its `physr list` name (the file name)', async () => {
    for (const name of builtinScenarioNames()) {
      expect(basename(resolveScenarioTarget(name), '.yaml')).toBe(name);
      expect(loadScenarioFile(resolveScenarioTarget(name)).name).toBe(name);
    }
  });
});

describe('timing', () => {
  it('median and range of the repetitions', () => {
    expect(designTiming([3, 1, 2])).toMatchObject({ median: 2, min: 1, max: 3 });
    expect(designTiming([4, 1, 2, 3])).toMatchObject({ median: 2.5, min: 1, max: 4 });
  });

  it('runSuite times each design only when asked, over the scenarios that ran both', async () => {
    const scenarios = ['swiotlb-32bit', 'iotlb-strict'].map((n) =>
      loadScenarioFile(resolveScenarioTarget(n)),
    );
    expect((await runSuite(scenarios)).timing).toBeUndefined();
    const timed = await runSuite(scenarios, { timingRepetitions: 3 });
    expect(timed.timing?.repetitions).toBe(3);
    expect(timed.timing?.physr.samples).toHaveLength(3);
    expect(timed.timing?.sg.samples).toHaveLength(3);
    expect(timed.timing?.steps).toEqual(['pin', 'map', 'register-mr', 'unmap', 'flush']);
  });
});

describe('the text report says which way is better and hides empty columns', () => {
  it('ratio heading with direction; a physr-only scenario has no scatterlist column', async () => {
    const both = await runSuite([loadScenarioFile(resolveScenarioTarget('swiotlb-32bit'))]);
    expect(renderRunText(both)).toContain('sg/physr (above 1: physr cheaper)');
    const only = await runSuite([loadScenarioFile(resolveScenarioTarget('iotlb-strict'))]);
    const text = renderRunText(only);
    expect(text).toContain('costs (only the physr design runs here)');
    // The scenario's own steps ran physr only: its table has no scatterlist column (the design runs
    // above it do name scatterlist: each map also ran under sg on its own machine).
    expect(text.slice(text.indexOf('costs (only the physr design runs here)'))).not.toContain('scatterlist');
    expect(text).toMatch(/faults \(events, not a cost\)\s+1\n/);
  });
});
