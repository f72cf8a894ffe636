import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import {
  parseScenario,
  type RunReport,
  registerCoreSteps,
  renderRunHtml,
  renderRunJson,
  renderRunText,
  runSuite,
  scenarioJsonSchemaText,
} from '../../src/sim/index.ts';

registerCoreSteps();

async function sampleRun(): Promise<RunReport> {
  const scenario = parseScenario(
    'name: cost\ndescription: "<b>bold</b> & \\"quoted\\""\nplatform: core-only\nseed: 0xfffffffffffffff1\nsteps:\n' +
      '  - build-list: { name: l, ranges: [ { addr: 0x1000, len: 4K }, { addr: 0x3000, len: 4K } ] }\n' +
      '  - compare-metadata: { list: l }\n' +
      '  - expect-counters: { counters: { core.physr_ranges: 9 } }\n',
    'cost.yaml',
  );
  return runSuite([scenario]);
}

describe('reports', () => {
  test('text: aligned comparison, marks, failure and summary line', async () => {
    const text = renderRunText(await sampleRun());
    expect(text).toContain('cost  ✗ FAILED');
    expect(text).toMatch(/metadata retained \(bytes\)\s+32\s+80\s+2\.50x/);
    expect(text).toContain('sg/physr (above 1: physr cheaper)');
    // The pass/fail line opens the report.
    expect(text.split('\n')[0]).toBe(
      '✗ 1 scenario: 0 passed, 1 failed, 0 errors; 3 steps; 0 expectations met, 1 failed',
    );
    expect(text).toContain('✗ expected core.physr_ranges = 9: core.physr_ranges = 2');
    expect(text).toContain('failed at step 3 (expect-counters, line 8)');
  });

  test('JSON: the same data, 64-bit values as hex strings', async () => {
    const report = await sampleRun();
    const json = JSON.parse(renderRunJson(report));
    expect(json.scenarios[0].seed).toBe('0xfffffffffffffff1');
    expect(json.scenarios[0].failure).toEqual({
      step: 2,
      op: 'expect-counters',
      line: 8,
      reason: expect.any(String),
    });
    expect(json.comparison[1]).toEqual({
      metric: 'metadata retained',
      unit: 'bytes',
      physr: 32,
      sg: 80,
      kind: 'cost',
    });
    expect(json.summary.failed).toBe(1);
  });

  test('HTML: one self-contained page, the run as JSON in it, nothing fetched, nothing unescaped', async () => {
    const html = await renderRunHtml(await sampleRun());
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).toContain('<style>');
    // Only inline scripts: no src=, no link, no URL to fetch (the SVG namespace names no resource).
    const urls = html
      .replaceAll('http://www.w3.org/2000/svg', '')
      .match(/<script[^>]*\bsrc=|<link|https?:\/\/\S{0,40}/g);
    expect(urls).toBeNull();
    const data = /<script type="application\/json" id="physr-data">(.*?)<\/script>/s.exec(html)![1]!;
    const doc = JSON.parse(data);
    expect(doc.run.summary).toMatchObject({ scenarios: 1, failed: 1 });
    expect(doc.run.scenarios[0].description).toBe('<b>bold</b> & "quoted"');
    // The description's markup travels as JSON escapes, never as markup in the page.
    expect(html).not.toContain('<b>bold</b>');
  });
});

describe('scenarios/schema.json', () => {
  test('the committed file equals a fresh generation (run npm run schema)', () => {
    const committed = readFileSync(new URL('../../scenarios/schema.json', import.meta.url), 'utf8');
    expect(committed).toBe(scenarioJsonSchemaText());
  });
});
