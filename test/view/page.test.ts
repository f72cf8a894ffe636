/**
 * The interactive page in a real Chromium (Debian's, driven by playwright-core): what a person
 * checks. The run page opens with the pass/fail line; charts have one pair of bars per cost that
 * moved and none where one design ran; faults show on the timeline; picking two devices in the tree
 * (by mouse or keyboard) or a matrix cell shows the kernel's verdict and draws the path; no console
 * error and no request beyond the page itself. Pages and screenshots land in test-artifacts/view.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTopology, topologySection } from '../../src/cli/commands/topo.ts';
import {
  loadScenarioFile,
  registerBuiltins,
  renderRunHtml,
  resolveScenarioTarget,
  runSuite,
} from '../../src/sim/index.ts';
import { renderViewHtml, type ViewDocument } from '../../src/view/index.ts';
import { announceSkip, artifactDir, BROWSER_REQUIRED, chromiumPath, INSTALL_HINT } from './browser.ts';

const executablePath = chromiumPath();
if (executablePath === undefined && !BROWSER_REQUIRED) announceSkip();
const suite = executablePath === undefined ? describe.skip : describe;

describe('browser availability', () => {
  // .ci/run sets PHYSR_REQUIRE_BROWSER=1: there a missing Chromium is a failed test, not a skip.
  it.runIf(BROWSER_REQUIRED)('a Chromium is installed (PHYSR_REQUIRE_BROWSER=1)', () => {
    expect(executablePath, `no Chromium: ${INSTALL_HINT}`).toBeDefined();
  });
});

let browser: Browser;
const dir = artifactDir();

/** Opens a page file, recording console errors, page errors and every request it makes. */
async function open(
  html: string,
  name: string,
): Promise<{ page: Page; problems: string[]; requests: string[] }> {
  const file = join(dir, `${name}.html`);
  writeFileSync(file, html);
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(String(e)));
  page.on('request', (r) => requests.push(r.url()));
  const url = pathToFileURL(file).href;
  await page.goto(url);
  return { page, problems, requests: requests.filter((r) => r !== url) };
}

async function shoot(page: Page, name: string, fullPage = true): Promise<void> {
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage });
}

suite('the interactive page in Chromium', () => {
  beforeAll(async () => {
    if (executablePath === undefined)
      throw new Error(`PHYSR_REQUIRE_BROWSER=1 but no Chromium: ${INSTALL_HINT}`);
    browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
  }, 30_000);
  afterAll(async () => {
    await browser?.close();
  });

  it('a run: summary first, bars only where both designs ran, faults as events, address spaces', async () => {
    registerBuiltins();
    const names = ['swiotlb-32bit', 'iotlb-lazy', 'range-list-metadata'];
    const report = await runSuite(names.map((n) => loadScenarioFile(resolveScenarioTarget(n))));
    const { page, problems, requests } = await open(await renderRunHtml(report), 'run');
    await shoot(page, 'run', false);
    await page.evaluate(() => {
      for (const d of document.querySelectorAll('details')) d.open = true;
    });

    // The pass/fail line is the first thing after the title.
    const first = await page
      .locator('main > *')
      .evaluateAll((els) => els.slice(0, 2).map((e) => e.textContent));
    expect(first[0]).toBe('physr run report');
    expect(first[1]).toMatch(
      /^✓ 3 scenarios: 3 passed, 0 failed, 0 errors; \d+ steps; \d+ expectations met, 0 failed$/,
    );
    const summaryTop = (await page.locator('#summary-line').boundingBox())!.y;
    expect(summaryTop).toBeLessThan((await page.locator('#suite').boundingBox())!.y);
    expect(summaryTop).toBeLessThan((await page.locator('#scenarios').boundingBox())!.y);

    // Suite: metadata at peak, metadata retained, entries to device, CPU-side entries, bounce bytes
    // moved (the IOMMU rows did not: swiotlb under passthrough, core-only lists) → 5 pairs of bars.
    expect(await page.locator('#suite rect.bar').count()).toBe(10);
    expect(await page.locator('#suite rect.bar[data-design="sg"]').count()).toBe(5);
    expect(await page.locator('#suite th', { hasText: 'sg/physr (above 1: physr cheaper)' }).count()).toBe(1);

    // The headline, before the physr-vs-scatterlist table: sg, linux-7.1 and physr on the same maps,
    // a bar per design for each total that moved, both ratios headed by their direction.
    const c = report.designComparison;
    expect(c.designs).toEqual(['sg', 'linux-7.1', 'physr']);
    const moved = (
      [
        'peakMetadataBytes',
        'metadataBytes',
        'entries',
        'iovaAllocations',
        'leafPteWrites',
        'iotlbFlushes',
        'bounceBytes',
      ] as const
    ).filter((k) => c.totals.some((t) => t[k] > 0)).length;
    expect(moved).toBeGreaterThan(3);
    expect(await page.locator('#designs rect.bar').count()).toBe(3 * moved);
    expect(await page.locator('#designs rect.bar[data-design="linux-7.1"]').count()).toBe(moved);
    expect((await page.locator('#designs').boundingBox())!.y).toBeLessThan(
      (await page.locator('#suite').boundingBox())!.y,
    );
    for (const heading of [
      'sg/linux-7.1 (above 1: linux-7.1 costs less)',
      'linux-7.1/physr (above 1: physr costs less)',
    ])
      expect(await page.locator('#designs th', { hasText: heading }).count()).toBe(1);
    // Per step, a line per design: the NVMe map on 7.1 goes through blk_rq_dma_map_iter.
    expect(
      await page
        .locator('#scenario-swiotlb-32bit .design-steps li[data-design="linux-7.1"]')
        .first()
        .textContent(),
    ).toMatch(/^linux-7\.1 blk_rq_dma_map_iter, per-segment: /);

    // iotlb-lazy ran only physr: no bars, no scatterlist column; its late write is a fault event.
    const lazy = page.locator('#scenario-iotlb-lazy');
    expect(await lazy.locator('svg:not(.design-chart) rect.bar').count()).toBe(0);
    await expect.poll(() => lazy.locator('.chart-none').textContent()).toContain('only one design ran');
    expect(await lazy.locator('table.comparison th', { hasText: 'scatterlist' }).count()).toBe(0);
    expect(await lazy.locator('.timeline-strip .event-fault').count()).toBe(1);
    expect(await lazy.locator('.timeline-strip .event-flush').count()).toBe(1);
    expect(await lazy.locator('.timeline-list li.kind-fault').textContent()).toContain('dma-write [physr]');

    // swiotlb-32bit: one card per design; the physr map shows its bounce slot.
    const swiotlb = page.locator('#scenario-swiotlb-32bit');
    expect(await swiotlb.locator('.address-card').count()).toBe(2);
    expect(await swiotlb.locator('.address-card[data-mapping="m"]').textContent()).toContain('via swiotlb');
    expect(
      await swiotlb.locator('.address-card[data-mapping="m"] .lane', { hasText: 'swiotlb slots' }).count(),
    ).toBe(1);

    expect(problems).toEqual([]);
    expect(requests).toEqual([]);
    await page.close();
  }, 60_000);

  it('a cost 100x apart is drawn on a log scale; a row where nothing moved gets no bars', async () => {
    const row = (metric: string, physr: number, sg: number) => ({
      metric,
      unit: 'bytes',
      physr,
      sg,
      kind: 'cost' as const,
    });
    const doc: ViewDocument = {
      title: 'log scale',
      run: {
        scenarios: [],
        summary: {
          scenarios: 0,
          passed: 0,
          failed: 0,
          errors: 0,
          steps: 0,
          expectationsMet: 0,
          expectationsFailed: 0,
        },
        comparison: [
          row('metadata at peak', 32, 8208),
          row('metadata retained', 32, 48),
          row('bounce bytes', 0, 0),
          { ...row('faults', 1, 0), kind: 'event' },
        ],
        comparedScenarios: ['made-up'],
      },
    };
    const { page, problems } = await open(await renderViewHtml(doc), 'log-scale');
    expect(await page.locator('#suite rect.bar').count()).toBe(4);
    const notes = await page.locator('#suite svg text.scale-note').allTextContents();
    expect(notes).toEqual(['log scale', 'linear']);
    // On the log scale physr's 32 B bar is still visible (linear would give it 32/8208 of the span).
    const physrWidth = Number(
      await page.locator('#suite rect.bar[data-design="physr"]').first().getAttribute('width'),
    );
    expect(physrWidth).toBeGreaterThan(20);
    expect(problems).toEqual([]);
    await page.close();
  }, 30_000);

  it('topology: picking two devices by click or keyboard shows the verdict and draws the path', async () => {
    // Booted with redirect off on the switch ports (x86-2s boots with ACS redirect on, as Linux does).
    const loaded = loadTopology({
      builtin: 'x86-2s',
      cmdline: 'pci=disable_acs_redir=0000:02:00.0;0000:02:01.0',
    });
    const html = await renderViewHtml({ title: 'topology', topology: topologySection(loaded) });
    const { page, problems, requests } = await open(html, 'topology');
    const verdict = page.locator('.verdict');

    // gpu0 and nic0 sit behind the same PEX switch: bus address, 4 hops, no host bridge.
    await page.locator('g.node[data-bdf="0000:03:00.0"]').click();
    await page.locator('g.node[data-bdf="0000:04:00.0"]').click();
    await expect.poll(() => verdict.textContent()).toContain('Verdict: bus-address');
    expect(await verdict.textContent()).toContain('distance 4');
    expect(await verdict.textContent()).toContain('0000:01:00.0 is the common upstream device');
    // The path gpu0 → downstream port → upstream port → downstream port → nic0: four links.
    expect(await page.locator('path.link.path').count()).toBe(4);
    await shoot(page, 'topology-gpu0-nic0');

    // By keyboard: nic1 on the other socket, then gpu0 — through the host bridges.
    await page.locator('g.node[data-bdf="0000:81:00.0"]').focus();
    await page.keyboard.press('Enter');
    await page.locator('g.node[data-bdf="0000:03:00.0"]').focus();
    await page.keyboard.press(' ');
    await expect.poll(() => verdict.textContent()).toContain('Verdict: through-host-bridge');
    expect(await page.locator('g.node.picked').count()).toBe(2);

    // The matrix: one row and one column per endpoint; a cell picks its pair.
    expect(await page.locator('table.p2p-matrix tbody tr').count()).toBe(4);
    await page.locator('button[data-provider="0000:04:00.0"][data-client="0000:03:00.0"]').click();
    await expect
      .poll(() => verdict.textContent())
      .toContain('nic0 RDMA NIC 0000:04:00.0 → gpu0 GPU 0000:03:00.0');
    expect(await verdict.textContent()).toContain('Verdict: bus-address');

    expect(problems).toEqual([]);
    expect(requests).toEqual([]);
    await page.close();
  }, 30_000);

  it('a P2P matrix and a trace, as later commands will hand them over', async () => {
    const decision = {
      provider: '0000:01:00.0',
      client: '0000:02:00.0',
      mapType: 'not-supported',
      distance: -1,
      path: [],
      reason: 'host bridge 0000:00:00.0 is not on the allowlist',
    };
    const doc: ViewDocument = {
      title: 'matrix and trace',
      p2pMatrix: { source: 'made-up', decisions: [decision] },
      trace: {
        events: [
          { time: 1, kind: 'map', text: 'map 4K' },
          { time: 2, kind: 'dma', text: 'write' },
          { time: 3, kind: 'unmap', text: 'unmap' },
          { time: 4, kind: 'fault', text: 'write after unmap' },
          { time: 5, kind: 'revoke', text: 'dma-buf revoked' },
        ],
        comparison: {
          setting: 'x86-2s (IOMMU lazy) as device 0000:03:00.0',
          rows: [
            { metric: 'list metadata', legacy: 5456, physr: 2848, verdict: 'physr 0.52x of legacy' },
            { metric: 'IOMMU PTE writes', legacy: 7, physr: 7, verdict: 'same' },
          ],
          notes: ['2 lists cut at [TRUNCATED]'],
        },
      },
    };
    const { page, problems } = await open(await renderViewHtml(doc), 'matrix-trace');
    await page.locator('#p2p-matrix button', { hasText: 'refused' }).click();
    await expect
      .poll(() => page.locator('#p2p-matrix .verdict').textContent())
      .toContain('not on the allowlist');
    expect(await page.locator('#trace .timeline-strip .event').count()).toBe(5);
    expect(await page.locator('#trace .timeline-strip .event-fault').count()).toBe(1);
    // What physr would change: one table row a metric, with its numbers and verdict, and the caveats.
    const rows = page.locator('#trace .trace-comparison tbody tr');
    expect(await rows.count()).toBe(2);
    expect(await rows.first().textContent()).toBe('list metadata5,4562,848physr 0.52x of legacy');
    expect(await page.locator('#trace .trace-comparison').textContent()).toContain(
      '2 lists cut at [TRUNCATED]',
    );
    await shoot(page, 'matrix-trace');
    expect(problems).toEqual([]);
    await page.close();
  }, 30_000);
});
