/**
 * One map under the three designs (src/sim/designs.ts), each on its own copy of the machine: the
 * metadata each design holds (worked out by hand from the kernel's struct sizes), and that all three
 * move the same bytes to the same places.
 */
import { describe, expect, it } from 'vitest';
import { PhyrList } from '../../src/core/index.ts';
import { builtinPlatform } from '../../src/platform/index.ts';
import {
  DESIGN_NAMES,
  type DesignMapInput,
  type DesignName,
  type DesignOutcome,
  designTotals,
  runMapDesign,
} from '../../src/sim/designs.ts';
import {
  designRunLine,
  isScenarioError,
  loadScenarioFile,
  parseScenario,
  registerBuiltins,
  renderDesignComparisonText,
  resolveScenarioTarget,
  runScenario,
  type ScenarioReport,
} from '../../src/sim/index.ts';
import { expectSameBytesSamePlaces } from './design-bytes.ts';

const GiB = 1n << 30n;
const NVME = '0000:06:00.0';
const NIC = '0000:04:00.0';

function scattered(pages: number): PhyrList {
  // Every third page from 5 GiB: no two pages contiguous.
  return PhyrList.fromRanges(
    Array.from({ length: pages }, (_, i) => [5n * GiB + BigInt(i) * 0x3000n, 0x1000n] as [bigint, bigint]),
  );
}

/** Linux boots with ACS redirect on (pci_std_enable_acs): switch-local P2P needs the kernel parameter. */
const SWITCH_P2P = 'pci=disable_acs_redir=0000:02:00.0;0000:02:01.0';

function input(bdf: string, source: PhyrList, cmdline?: string): DesignMapInput {
  const bytes = new Uint8Array(Number(source.totalLength));
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + 3) & 0xff;
  return {
    platform: () => builtinPlatform('two-socket-server', cmdline === undefined ? {} : { cmdline }),
    machineOptions: { strict: true },
    bdf,
    deviceProps: {},
    source,
    bytes,
    dir: 'TO_DEVICE',
  };
}

describe('a map under sg, linux-7.1 and physr', () => {
  it('NVMe, 64 scattered pages: what each design holds, and the same bytes in the same places', () => {
    const given = input(NVME, scattered(64));
    const runs = DESIGN_NAMES.map((d) => runMapDesign(d, given));
    expectSameBytesSamePlaces(given, runs);
    const [sg, linux, physr] = runs.map((r) => r.finish());
    // sg: 64 struct scatterlist (32 B) + sg_table (16 B) retained; at peak also the 64 page pointers.
    expect(sg).toMatchObject({
      ran: true,
      api: 'dma_map_sgtable',
      metadataBytes: 64 * 32 + 16,
      peakMetadataBytes: 512 + 64 * 32 + 16,
      scratch: { 'page array': 512 },
    });
    // 256 KiB in one IOVA, cut into 64 KiB segments by the device's max segment size.
    expect(sg!.entries).toBe(4);
    // Linux 7.1 NVMe: 64 bvecs (16 B) + dma_iova_state (16 B); one IOVA, so no dma_vecs.
    expect(linux).toMatchObject({
      ran: true,
      api: 'blk_rq_dma_map_iter',
      path: 'iova',
      metadataBytes: 64 * 16 + 16,
      metadata: { bvecs: 1024, dma_iova_state: 16, dma_vecs: 0 },
      entries: 1,
    });
    // physr: 64 ranges (16 B) + 4 DMA ranges (16 B).
    expect(physr).toMatchObject({ ran: true, path: 'iova', metadataBytes: 64 * 16 + 4 * 16, entries: 4 });
    // The IOMMU work is the same in all three: one IOVA, 64 4K leaves, one invalidation at unmap.
    for (const o of [sg, linux, physr]) {
      expect(o).toMatchObject({ iovaAllocations: 1, leafPteWrites: 64, bounceBytes: 0 });
      expect(o!.iotlbFlushes).toBe(sg!.iotlbFlushes);
    }
  });

  it('a NIC: Linux 7.1 keeps dma_map_sgtable, so its numbers are the scatterlist ones, and it says so', () => {
    const given = input(NIC, scattered(8));
    const runs = DESIGN_NAMES.map((d) => runMapDesign(d, given));
    expectSameBytesSamePlaces(given, runs);
    const [sg, linux] = runs.map((r) => r.finish());
    expect(linux!.api).toBe('dma_map_sgtable');
    expect(linux!.note).toMatch(/keeps scatterlist/);
    expect(linux!.metadataBytes).toBe(sg!.metadataBytes);
  });

  it('without an IOMMU, a seam mid-page: 7.1 maps per segment and the bytes still land in place', () => {
    const source = PhyrList.fromRanges([
      [5n * GiB + 0x800n, 0x800n],
      [7n * GiB, 0x1000n],
    ]);
    const given = { ...input(NVME, source), machineOptions: { iommu: false } };
    const runs = DESIGN_NAMES.map((d) => runMapDesign(d, given));
    expectSameBytesSamePlaces(given, runs);
    const linux = runs[1]!.finish();
    expect(linux).toMatchObject({ path: 'per-segment', entries: 2, metadataBytes: 2 * 16 + 16 });
  });
});

describe('designs in a scenario', () => {
  it('each buffer map and pin step says what every design did (nvme-fragmented, map step 1)', async () => {
    registerBuiltins();
    const report = await runScenario(loadScenarioFile(resolveScenarioTarget('nvme-fragmented')));
    const runs = report.steps[1]!.designRuns!;
    expect(runs.map((r) => r.design)).toEqual(['sg', 'linux-7.1', 'physr']);
    const [sg, linux, physr] = runs;
    expect(sg).toMatchObject({
      api: 'dma_map_sgtable',
      metadataBytes: 64 * 32 + 16,
      peakMetadataBytes: 64 * 8 + 64 * 32 + 16,
    });
    expect(linux).toMatchObject({
      api: 'blk_rq_dma_map_iter',
      path: 'iova',
      metadataBytes: 64 * 16 + 16,
      entries: 1,
    });
    expect(physr).toMatchObject({ path: 'iova', metadataBytes: 64 * 16 + 4 * 16, entries: 4 });
  });

  it('runs only the designs a scenario names, and refuses an unknown or repeated one with its line', async () => {
    registerBuiltins();
    const text = (designs: string) => `name: d
platform: x86-2s
designs: ${designs}
steps:
  - allocate: { name: buf, size: 16K }
  - pin: { name: p, buffer: buf, via: sg }
`;
    const report = await runScenario(parseScenario(text('[linux-7.1]'), '/tmp/d.yaml'));
    const pin = report.steps[1]!.designRuns!;
    expect(pin).toHaveLength(1);
    expect(pin[0]).toMatchObject({ design: 'linux-7.1', api: 'pin_user_pages', metadataBytes: 4 * 8 });
    for (const bad of ['[linux-6.1]', '[sg, sg]']) {
      try {
        parseScenario(text(bad), '/tmp/d.yaml');
        throw new Error('parsed');
      } catch (error) {
        expect(isScenarioError(error)).toBe(true);
        expect((error as { location?: { line?: number } }).location?.line).toBe(3);
      }
    }
  });
});

describe('RDMA MRs and dma-buf imports under the three designs', () => {
  it('a pinned MR over a 1 GiB hugetlb page: ib_umem_get builds an sg_table in sg and 7.1 alike; physr one range', async () => {
    registerBuiltins();
    const report = await runScenario(loadScenarioFile(resolveScenarioTarget('rdma-hugetlb-1g')));
    const [sg, linux, physr] = report.steps[2]!.designRuns!;
    // drivers/infiniband/core/umem.c (unchanged through 7.1): one page of page pointers per round
    // (4096 B scratch), each round appended with sg_alloc_append_table_from_pages told how many pages
    // are left, so the first round takes a whole SG_MAX_SINGLE_ALLOC chunk (lib/scatterlist.c:
    // 4096 / 32 B = 128 entries) although the 1 GiB merges into one entry under the 2 GiB max
    // segment; + struct sg_table (16 B). ib_dma_map_sgtable_attrs: one IOVA, one 1 GiB leaf.
    for (const o of [sg, linux]) {
      expect(o).toMatchObject({
        ran: true,
        api: 'ib_umem_get',
        path: 'sg',
        metadata: { 'sg table': 128 * 32 + 16 },
        scratch: { 'page list': 4096 },
        peakMetadataBytes: 128 * 32 + 16 + 4096,
        entries: 1,
        iovaAllocations: 1,
        leafPteWrites: 1,
      });
    }
    expect(linux!.note).toMatch(/Linux 7\.1 pinned MRs still build an sg_table/);
    // physr: one range (16 B) and one DMA range (16 B), no scratch.
    expect(physr).toMatchObject({
      ran: true,
      metadataBytes: 16 + 16,
      peakMetadataBytes: 32,
      entries: 1,
      iovaAllocations: 1,
      leafPteWrites: 1,
    });
  });

  it('a VFIO BAR dma-buf: IOMMUFD takes one range in 7.1 and physr, sg has none; an RDMA dma-buf MR is an importer', async () => {
    registerBuiltins();
    const report = await runScenario(loadScenarioFile(resolveScenarioTarget('vfio-dmabuf-revoke')));
    const [sgIoas, linuxIoas, physrIoas] = report.steps[1]!.designRuns!;
    // IOMMUFD writes physical addresses into its own page table: an importer's sg_table (DMA
    // addresses) cannot feed it, and before 6.19 it had no dma-buf import at all.
    expect(sgIoas).toMatchObject({ ran: false, api: 'dma_buf_map_attachment' });
    expect(sgIoas!.reason).toMatch(/before 6\.19 IOMMUFD took no dma-buf/);
    // 6.19 iopt_map_dmabuf (drivers/iommu/iommufd/pages.c): the exporter's single phys_vec (16 B), one
    // area at the IOVA asked for; the IOAS allocates no IOVA of the DMA API's; 2 MiB = one 2M leaf.
    for (const o of [linuxIoas, physrIoas]) {
      expect(o).toMatchObject({
        ran: true,
        metadataBytes: 16,
        entries: 1,
        iovaAllocations: 0,
        leafPteWrites: 1,
      });
    }
    expect(linuxIoas!.note).toMatch(/at 0x1000000000/);
    const [sg, linux, physr] = report.steps[2]!.designRuns!;
    // BAR1 of gpu0 has P2PDMA pages: the scatterlist importer gets 512 page pointers (scratch) merged
    // into 64 KiB entries (nic1's max segment): 32 x 32 B + sg_table 16 B.
    expect(sg).toMatchObject({
      ran: true,
      metadata: { 'sg table': 32 * 32 + 16 },
      scratch: { 'page array': 512 * 8 },
      entries: 32,
    });
    // 7.1 dma_buf_phys_vec_to_sgt (drivers/dma-buf/dma-buf-mapping.c, 6.19), through the host bridge:
    // one IOVA, one DMA-only entry (32 B) + sg_table (16) + dma_buf_dma (16) + dma_iova_state (16),
    // and the exporter's phys_vec (16).
    expect(linux).toMatchObject({ ran: true, api: 'dma_buf_phys_vec_to_sgt', metadataBytes: 96, entries: 1 });
    // physr: one range (16 B) cut at the 64 KiB max segment into 32 DMA ranges (32 x 16 B).
    expect(physr).toMatchObject({ ran: true, metadataBytes: 16 + 32 * 16, entries: 32 });
  });
});

describe('designTotals: the suite per design, like against like', () => {
  const run = (design: DesignName, metadataBytes: number, ran = true): DesignOutcome => ({
    design,
    ran,
    api: 'x',
    metadataBytes,
    entries: 1,
    iovaAllocations: 1,
    leafPteWrites: 4,
    iotlbFlushes: 1,
    bounceBytes: 0,
    note: '',
  });
  const step = (designRuns: DesignOutcome[]) =>
    ({ index: 0, op: 'map', status: 'ok', expectations: [], notes: [], metrics: {}, designRuns }) as const;

  it('sums only steps every design ran, and states each ratio with its direction', () => {
    const report = {
      steps: [
        step([run('sg', 2576), run('linux-7.1', 1040), run('physr', 1088)]),
        step([run('sg', 176), run('linux-7.1', 176), run('physr', 32)]),
        // physr refused here: the step counts for no design.
        step([run('sg', 1000), run('linux-7.1', 1000), run('physr', 0, false)]),
      ],
    } as unknown as ScenarioReport;
    const { totals, ratios } = designTotals([report]);
    expect(totals.map((t) => [t.design, t.steps, t.metadataBytes])).toEqual([
      ['sg', 2, 2752],
      ['linux-7.1', 2, 1216],
      ['physr', 2, 1120],
    ]);
    const meta = ratios.filter((r) => r.metric === 'metadataBytes');
    expect(meta.map((r) => [r.from, r.to, r.ratio])).toEqual([
      ['sg', 'linux-7.1', 2752 / 1216],
      ['linux-7.1', 'physr', 1216 / 1120],
    ]);
    expect(meta[0]!.reads).toBe('sg/linux-7.1 (above 1: linux-7.1 costs less)');
    expect(ratios.find((r) => r.metric === 'bounceBytes')!.ratio).toBeUndefined();
  });

  it('counts a step that repeats an earlier step of its scenario under every design once, and says so', () => {
    const same = [run('sg', 2576), run('linux-7.1', 1040), run('physr', 1088)];
    const at = (index: number, op: string, designRuns: DesignOutcome[]) => ({
      ...step(designRuns),
      index,
      op,
    });
    const report = {
      name: 'pair',
      steps: [
        at(1, 'map', same),
        // The sg-path twin of step 2: the same three design runs.
        at(
          6,
          'map',
          same.map((r) => ({ ...r })),
        ),
        // Another op with the same numbers is other work; one number apart is other work too.
        at(8, 'register-mr', same),
        at(9, 'map', [run('sg', 2576), run('linux-7.1', 1040), run('physr', 1104)]),
      ],
    } as unknown as ScenarioReport;
    const c = designTotals([report, { ...report, name: 'again' }]);
    expect(c.steps).toBe(6);
    expect(c.totals.map((t) => t.metadataBytes)).toEqual([6 * 2576, 6 * 1040, 4 * 1088 + 2 * 1104]);
    expect(c.repeats).toEqual([
      { scenario: 'pair', step: 7, op: 'map', of: 2 },
      { scenario: 'again', step: 7, op: 'map', of: 2 },
    ]);
    expect(
      renderDesignComparisonText({ ...c, steps: 0, leftOut: [], repeats: c.repeats.slice(0, 1) }, ''),
    ).toBe(
      'counted once: pair step 7 (map) repeats step 2 under every design (the same work, the same numbers)',
    );
  });
});

describe('a BAR range exported as a dma-buf, under the three designs', () => {
  const GPU = '0000:03:00.0';

  it('a BAR without struct pages: sg has no path and says so; 7.1 and physr reach the same bytes', () => {
    // BAR 0 is not prefetchable: the built-in machine publishes no P2PDMA pages for it.
    const bar0 = builtinPlatform('two-socket-server')
      .topology.functions.get(GPU)!
      .bars.find((b) => b.index === 0)!;
    const source = PhyrList.fromRanges([[bar0.cpuAddress, 0x2_0000n]]);
    const given: DesignMapInput = { ...input(NIC, source, SWITCH_P2P), memory: 'bar' };
    const runs = DESIGN_NAMES.map((d) => runMapDesign(d, given));
    expectSameBytesSamePlaces(given, runs);
    const [sg, linux, physr] = runs.map((r) => r.finish());
    expect(sg).toMatchObject({ ran: false, api: 'dma_map_sgtable' });
    expect(sg!.reason).toMatch(/no struct pages/);
    expect(sg!.note).toMatch(/no path for this step/);
    // The report says so on the step and leaves the step out of the totals, with why.
    expect(designRunLine(sg!)).toMatch(/^sg +no path \(dma_map_sgtable\): this BAR has no struct pages/);
    const step = { index: 4, op: 'map', status: 'ok', expectations: [], notes: [], metrics: {} } as const;
    const c = designTotals([{ name: 'bar', steps: [{ ...step, designRuns: [sg!, linux!, physr!] }] }]);
    expect(c.steps).toBe(0);
    expect(renderDesignComparisonText(c, '')).toBe(`left out: bar step 5 (map), sg: ${sg!.reason}`);
    // Bus address under the switch. 7.1: one DMA-only entry (32 B) + sg_table (16) + dma_buf_dma (16),
    // plus the exporter's one phys_vec (16): it does not cut at the NIC's 64 KiB max segment size.
    expect(linux).toMatchObject({
      ran: true,
      path: 'bus-address',
      entries: 1,
      metadataBytes: 32 + 16 + 16 + 16,
    });
    // physr cuts the 128 KiB at the device's 64 KiB segment limit: 2 DMA ranges.
    expect(physr).toMatchObject({ ran: true, path: 'bus-address', entries: 2, metadataBytes: 16 + 2 * 16 });
  });

  it('a BAR with P2PDMA pages: scatterlist has a path (the pages), at its usual cost', () => {
    const source = PhyrList.fromRanges([[0x200_0000_0000n + (1n << 30n), 0x20_0000n]]);
    const given: DesignMapInput = { ...input(NIC, source), memory: 'bar' };
    const runs = DESIGN_NAMES.map((d) => runMapDesign(d, given));
    expectSameBytesSamePlaces(given, runs);
    const sg = runs[0]!.finish();
    // 512 page pointers; sg_alloc_table_from_pages merges the contiguous pages up to the 64 KiB max
    // segment: 32 entries x 32 B + sg_table (16 B).
    expect(sg).toMatchObject({
      ran: true,
      metadata: { 'sg table': 32 * 32 + 16 },
      scratch: { 'page array': 4096 },
    });
  });
});
