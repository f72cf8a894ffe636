import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { captureCli } from './capture.ts';

const GPU = '../shared/data/captures/gpu-vm-6.18/dma-trace.txt';
const SNIPPET = '../shared/data/captures/trace-snippets/iommu-use-after-unmap-6.12.txt';

describe('physr trace', () => {
  it('reports the 6.18 GPU trace clean, with the comparison side by side', async () => {
    const r = await captureCli(['trace', GPU, '--iommu', 'strict']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('findings: none');
    expect(r.stdout).toMatch(
      /list metadata\s+5456\s+2848\s+physr 0\.52x of legacy \(lower is better: physr better\)/,
    );
  });
  it('--json: findings with their lines, 64-bit values as 0x strings; --fail-on-findings exits 1', async () => {
    const r = await captureCli(['trace', SNIPPET, '--json', '--no-model', '--fail-on-findings']);
    expect(r.status).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.comparison).toBeNull();
    expect(j.findings).toHaveLength(1);
    expect(j.findings[0]).toMatchObject({
      class: 'use-after-unmap',
      device: '0000:c2:00.0',
      address: '0xfe980000',
      size: '0x80000',
      unmappedAt: '327.747766',
    });
    expect(j.findings[0].lines.map((l: { line: number }) => l.line)).toEqual([4, 5, 6, 7, 8]);
    expect(j.devices[0].mappedBytes).toBe('0x80000');
  });
  it('a malformed line exits 2 with file:line: event: reason; --keep-going skips it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'physr-cli-trace-'));
    const file = join(dir, 't.txt');
    writeFileSync(
      file,
      [
        '  a-1 [000] .....  1.000001: dma_map_phys: 0000:00:06.0 dir=TO_DEVICE dma_addr=1000 size=4096 phys_addr=1000 attrs=',
        '  a-1 [000] .....  1.000002: dma_unmap_phys: 0000:00:06.0 dir=TO_DEVICE dma_addr=1000 size=oops attrs=',
      ].join('\n'),
    );
    const bad = await captureCli(['trace', file, '--no-model']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe(`physr: ${file}:2: dma_unmap_phys: EINVAL: size=oops is not a decimal number\n`);
    const kept = await captureCli(['trace', file, '--no-model', '--keep-going']);
    expect(kept.status).toBe(0);
    expect(kept.stderr).toContain(`skipped ${file}:2: dma_unmap_phys`);
    expect(kept.stdout).toContain(
      'leak: 0000:00:06.0: dma_map_phys of 0x1000+0x1000 at 1.000001 is never unmapped',
    );
  });
  it('refuses a directory, an unknown platform and a missing --html directory before any work', async () => {
    expect((await captureCli(['trace', tmpdir()])).stderr).toContain('is a directory, not a regular file');
    const p = await captureCli(['trace', GPU, '--platform', 'mainframe']);
    expect(p.status).toBe(2);
    expect(p.stderr).toContain('no built-in platform "mainframe"');
    const h = await captureCli(['trace', GPU, '--html', '/nonexistent/dir/r.html']);
    expect(h.status).toBe(2);
  });
  it('--html writes the interactive page with the trace section (timelines and findings)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'physr-cli-trace-'));
    const out = join(dir, 'r.html');
    const r = await captureCli(['trace', SNIPPET, '--html', out, '--platform', 'amd-server']);
    expect(r.status).toBe(0);
    const html = readFileSync(out, 'utf8');
    const json = /<script type="application\/json" id="physr-data">(.*?)<\/script>/s.exec(html)![1]!;
    const doc = JSON.parse(json);
    expect(doc.command).toBe(`physr trace ${SNIPPET} --platform amd-server`);
    expect(doc.trace.source).toBe(SNIPPET);
    expect(doc.trace.events.map((e: { kind: string }) => e.kind)).toEqual([
      'map',
      'map',
      'unmap',
      'unmap',
      'fault',
      'fault',
    ]);
    // Replayed on amd-server: the page carries the same comparison rows as the text report.
    expect(doc.trace.comparison.setting).toMatch(/^amd-server \(IOMMU \w+\) as device /);
    expect(doc.trace.comparison.rows.map((row: { metric: string }) => row.metric)).toContain('list metadata');
    expect(html).not.toMatch(/<script src=|<link /);
  });
});

describe('physr run --trace-out', () => {
  it('writes trace text that physr trace reads back, and refuses a missing directory before running', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'physr-cli-trace-'));
    const out = join(dir, 'run.trace');
    const run = await captureCli(['run', 'iotlb-strict', '--trace-out', out]);
    expect(run.status).toBe(0);
    const text = readFileSync(out, 'utf8');
    expect(text).toContain('# scenario iotlb-strict');
    const back = await captureCli(['trace', out, '--json', '--no-model']);
    const j = JSON.parse(back.stdout);
    expect(j.findingCounts).toEqual({ 'use-after-unmap': 1 });
    expect((await captureCli(['run', 'iotlb-strict', '--trace-out', '/nonexistent/x.trace'])).status).toBe(2);
  });
});
